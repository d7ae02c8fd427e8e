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
    # side being "outside" or "inside" (the PBX); every message, whatever became of it. METHOD is
    # a method name (INVITE, ...; OTHER for methods sipguard does not know); "<side>:unparsed"
    # counts messages with no method to name: a banned source's (dropped before parsing) and
    # those that did not parse. Written by sipguard.services.rollups from Counters.messages.
    MESSAGES = "messages"
    # the PBX's answers forwarded toward the phones and trunks, key the class "1xx" .. "6xx"
    # (sipguard's own error answers are not here: they are REJECTS)
    RESPONSES = "responses"
    # requests from outside by the source's country, key ISO 3166-1 alpha-2 or "??" (unknown);
    # every request that parsed, trusted or not, refused or not (a banned source's messages are
    # dropped before parsing and its country looked up: they are in DROPS "banned" only)
    COUNTRIES = "countries"
    # messages dropped, key the reason (banned, rate_limited, rule, malformed, ...)
    DROPS = "drops"
    # messages answered with an error by sipguard itself, key the reason
    REJECTS = "rejects"
    # successful registrations (a 2xx to a REGISTER from outside, refreshes and de-registrations
    # included), key ""
    REGISTRATIONS = "registrations"
    # calls answered (a 2xx to an initial INVITE, in either direction; counted once however many
    # times the 2xx is retransmitted), key ""
    CALLS = "calls"
    # minutes of answered calls in progress during the minute (the integral of the number of
    # answered calls over the minute: two calls up all minute give 2.0; ringing does not count),
    # key ""
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
