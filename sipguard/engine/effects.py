"""What the engine wants done off the hot path: data only, drained in batches by services/outbox.py.

Times are epoch seconds (the one time domain of sipguard: bans are stored and must survive a
restart).
"""

from __future__ import annotations

from dataclasses import dataclass

from sipguard.policy.model import Severity


@dataclass(frozen=True, slots=True)
class BanIssued:
    ip: str  # the banned source (IPv6: the network address of its /64, see limits.ipv6_prefix)
    issued_at: float
    until: float
    reason: str  # Reason.value of what caused it, e.g. "rate_limited", "rule", "manual"
    rule: str  # the policy rule or limit that decided, "" for manual bans
    evidence: str  # short, sanitised: counters and what was seen
    offences: int = 1  # how many bans this source has had, this one included (escalation)
    actor: str = "engine"  # "engine", or who banned by hand ("cli:root")


@dataclass(frozen=True, slots=True)
class BanLifted:
    ip: str
    at: float
    why: str  # "expired", "manual"
    actor: str = "engine"


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    at: float
    kind: str  # e.g. "country_denied", "rate_limited", "rule", "ban", "policy_reload", "geo_stale"
    severity: Severity
    ip: str = ""
    port: int = 0
    country: str | None = None
    account: str | None = None
    method: str | None = None
    rule: str = ""
    detail: str = ""  # sanitised, cut to a fixed length: attacker bytes never reach logs raw


@dataclass(frozen=True, slots=True)
class LoginSeen:
    """A successful login of `account` from `country` at local `hour`: the unusual-login history."""

    account: str
    country: str  # "" when unknown
    hour: int  # 0..23 in logins.timezone
    at: float
    count: int = 1


Effect = BanIssued | BanLifted | SecurityEvent | LoginSeen
