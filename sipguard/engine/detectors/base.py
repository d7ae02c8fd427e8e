"""What a detector reports back to the engine."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    """What the engine should do about a finding."""

    BAN_SOURCE = "ban_source"  # ban the source address (escalating)
    BLOCK_ACCOUNT = "block_account"  # refuse this account from this source for `duration`
    ALERT = "alert"  # record and alert, change nothing


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # "brute_force", "distributed_brute_force", "enumeration", "unusual_login", ...
    verdict: Verdict
    rule: str  # the policy section that decided, e.g. "auth", "auth.per_account", "enumeration"
    duration: float  # ban or block length, 0 for alerts
    detail: str  # the counters and evidence, short
    account: str | None = None
