"""What a report says: typed, frozen values, built by `aggregate.summarise` and read by renderers.

Every number of a report lives here once; the Markdown, JSON and HTML renderers only lay it out,
so they cannot disagree. Strings that came from the store (accounts, details, rule names, reload
summaries, drill results) are kept as stored: renderers escape them for their format.
Times are epoch seconds (UTC when shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

__all__ = [
    "BanEntry",
    "BanSummary",
    "Blocked",
    "Bucket",
    "Count",
    "CountryRow",
    "DrillResult",
    "DrillRun",
    "GeoState",
    "Incident",
    "Listing",
    "Reload",
    "Report",
    "Source",
    "Target",
    "Traffic",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """The first items of a bounded list, and how many there were in all."""

    items: tuple[T, ...]
    total: int

    @property
    def cut(self) -> bool:
        return self.total > len(self.items)


@dataclass(frozen=True, slots=True)
class Count:
    key: str
    value: int


@dataclass(frozen=True, slots=True)
class Traffic:
    """Totals of the per-minute rollups of the period (`recorded` False: none were written)."""

    recorded: bool
    minutes: int  # minutes of the period with at least one rollup row
    messages: int  # every message that came in, both sides
    outside_messages: int  # from phones and trunks (requests, answers, unparsed)
    inside_messages: int  # from the PBX (requests and answers)
    by_method: tuple[Count, ...]  # requests from outside by method ("unparsed": banned, malformed)
    responses: tuple[Count, ...]  # answers forwarded, by class ("2xx")
    countries: tuple[Count, ...]  # requests from outside by source country (top N)
    dropped: int
    rejected: int
    registrations: int
    calls: int
    call_minutes: float
    auth_failures: int


@dataclass(frozen=True, slots=True)
class Bucket:
    """One step of the time series: from `start` for the report's `bucket_seconds`."""

    start: float
    messages: int  # from rollups (0 when not recorded)
    blocked: int  # dropped + rejected, from rollups
    events: int  # security events recorded


@dataclass(frozen=True, slots=True)
class Blocked:
    """Messages sipguard stopped for one reason: dropped silently or answered with an error."""

    reason: str
    dropped: int
    rejected: int

    @property
    def total(self) -> int:
        return self.dropped + self.rejected


@dataclass(frozen=True, slots=True)
class CountryRow:
    """Security events by source country ("??": unknown)."""

    country: str
    events: int
    sources: int  # distinct source addresses
    bans: int  # bans issued to those sources in the period


@dataclass(frozen=True, slots=True)
class Source:
    """One source address and what it did."""

    ip: str
    country: str | None
    events: int
    bans: int
    activity: tuple[Count, ...]  # event kinds, most frequent first
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class Target:
    """One account named by security events (brute force, fraud, unusual logins...)."""

    account: str
    events: int
    sources: int
    activity: tuple[Count, ...]


@dataclass(frozen=True, slots=True)
class Incident:
    """One security event worth a line of its own."""

    at: float
    kind: str
    severity: str
    ip: str
    country: str | None
    account: str | None
    rule: str
    detail: str


@dataclass(frozen=True, slots=True)
class BanEntry:
    ip: str
    issued_at: float
    until: float
    reason: str
    rule: str
    actor: str  # "engine", or who banned by hand
    evidence: str
    offences: int
    lifted_at: float | None
    lifted_by: str | None
    lift_reason: str | None

    @property
    def manual(self) -> bool:
        return self.actor != "engine"


@dataclass(frozen=True, slots=True)
class BanSummary:
    issued: int  # bans issued in the period
    manual_issued: int
    lifted: int  # bans lifted in the period (expired or by hand), whenever issued
    manual_lifted: int
    by_reason: tuple[Count, ...]  # bans issued, by reason
    issued_list: Listing[BanEntry]  # newest first
    lifted_list: Listing[BanEntry]  # newest lift first


@dataclass(frozen=True, slots=True)
class Reload:
    at: float
    actor: str
    path: str
    sha256: str
    outcome: str
    summary: str


@dataclass(frozen=True, slots=True)
class GeoState:
    """The GeoIP data of the policy, as found when the report was made."""

    database: str  # what it is: type and path, or package and version
    built: str | None  # ISO date
    age_days: int | None
    max_age_days: int
    stale: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DrillResult:
    attack: str
    expected: str
    observed: str
    passed: bool | None  # None: the run did not say
    status: str = ""  # "passed", "failed", "skipped" when the run says, else "" (see passed)


@dataclass(frozen=True, slots=True)
class DrillRun:
    id: int
    started_at: float
    finished_at: float
    target: str
    policy_sha256: str
    passed: int
    failed: int
    results: Listing[DrillResult]
    note: str  # "" or why the results could not be read


BlockedFrom = Literal["rollups", "events", "none"]


@dataclass(frozen=True, slots=True)
class Report:
    """A period of sipguard's records, summarised."""

    generated_at: float
    since: float
    until: float
    version: str
    policy_path: str
    policy_sha256: str
    store_path: str
    bucket_seconds: int
    traffic: Traffic
    series: tuple[Bucket, ...]
    blocked: tuple[Blocked, ...]  # most first
    blocked_from: BlockedFrom  # rollups (messages), events (when no rollups), none
    events_total: int  # security events of the period read (see events_cut)
    events_cut: bool  # more events than EVENT_LIMIT: the newest were read
    events_by_kind: tuple[Count, ...]
    by_country: tuple[CountryRow, ...]
    top_sources: Listing[Source]
    top_accounts: Listing[Target]
    brute_force: Listing[Incident]  # newest first
    toll_fraud: Listing[Incident]
    unusual_logins: Listing[Incident]
    bans: BanSummary
    reloads: Listing[Reload]  # oldest first: an audit trail reads forward
    geo: GeoState
    drills: Listing[DrillRun]  # newest first
