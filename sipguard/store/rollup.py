"""The names and shapes of the per-minute traffic rollups and of stored drill runs.

A rollup row is (minute, dimension, key, value): "in the minute starting at `minute`, `value` of
`dimension` for `key`". Narrow rows keep the table stable when a new dimension appears, and a
report sums them with one GROUP BY. The keys of every dimension are closed sets (methods, reasons,
ISO country codes, response classes), never attacker text, so the table stays small: about 60
rows per busy minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Dimension", "DrillRecord", "RollupRow", "minute_of"]


class Dimension(StrEnum):
    """What a rollup row counts. The key's meaning is given per dimension."""

    # messages that came in, key "<side>:<METHOD>" for requests and "<side>:response" for answers,
    # side being "outside" or "inside" (the PBX); every message, whatever became of it
    MESSAGES = "messages"
    # answers forwarded toward the phones and trunks, key the class "1xx" .. "6xx"
    RESPONSES = "responses"
    # requests from outside by the source's country, key ISO 3166-1 alpha-2 or "??" (unknown)
    COUNTRIES = "countries"
    # messages dropped, key the reason (banned, rate_limited, rule, malformed, ...)
    DROPS = "drops"
    # messages answered with an error by sipguard itself, key the reason
    REJECTS = "rejects"
    # successful registrations (a 2xx to a REGISTER from outside), key ""
    REGISTRATIONS = "registrations"
    # calls answered (a 2xx to an initial INVITE), key ""
    CALLS = "calls"
    # call minutes in progress during the minute (the integral of active calls), key ""
    CALL_MINUTES = "call_minutes"
    # 401/403/407 answers to requests with credentials from untrusted sources, key ""
    AUTH_FAILURES = "auth_failures"


@dataclass(frozen=True, slots=True)
class RollupRow:
    """One cell of the per-minute record."""

    minute: int  # epoch seconds at the start of the minute (a multiple of 60)
    dimension: Dimension
    key: str
    value: float


@dataclass(frozen=True, slots=True)
class DrillRecord:
    """One run of `sipguard drill`, as stored. `results` is the drill's JSON report."""

    id: int
    started_at: float
    finished_at: float
    target: str
    policy_sha256: str
    passed: int
    failed: int
    results: str


def minute_of(epoch: float) -> int:
    """The start of the minute `epoch` falls in."""
    return int(epoch // 60) * 60
