"""The validated policy: frozen, slotted dataclasses, one per YAML section.

Every value is already parsed: durations are float seconds, rates are `Rate`, networks are
`ipaddress` networks, countries are frozensets of upper-case ISO 3166-1 alpha-2 codes, user-agent
matches are compiled `re.Pattern[bytes]`, relative paths are resolved against the policy file's
directory. Defaults live here.

Each field is `Annotated` with a `Meta` describing its YAML spelling (key name, value grammar,
range, documentation). The loader takes its allowed keys from it and `schema.py` walks it to write
the JSON Schema, so the three never disagree.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from types import MappingProxyType
from typing import Annotated, Any, TypeAlias

__all__ = [
    "BUILTIN_GEO",
    "DEFAULT_CONTROL_PATH",
    "DEFAULT_LISTEN",
    "DEFAULT_STORAGE_PATH",
    "SIP_METHODS",
    "AccountAction",
    "AlertSink",
    "AuthSpec",
    "BanSpec",
    "CountryMatch",
    "Destinations",
    "Endpoint",
    "EnumerationAction",
    "EnumerationPolicy",
    "Exceed",
    "FileSink",
    "FraudAction",
    "FraudPerAccount",
    "FraudSpec",
    "GeoSpec",
    "HostPort",
    "KnownSources",
    "LimitSpec",
    "Limits",
    "LoginCheck",
    "LoginPolicy",
    "Match",
    "Meta",
    "Network",
    "NetworkMatch",
    "NumberType",
    "PerAccountAuth",
    "Policy",
    "QuietHours",
    "Rate",
    "Records",
    "Rule",
    "RuleAction",
    "Severity",
    "Spikes",
    "SyslogFormat",
    "SyslogSink",
    "Transport",
    "UnknownCountry",
    "WebhookSink",
    "field_meta",
    "yaml_keys",
]

Network: TypeAlias = IPv4Network | IPv6Network

#: The request methods a rule may name (RFC 3261, 3262, 3265, 3311, 3428, 3515, 3903, 6086).
#: SIP methods are case-sensitive; extension methods are not accepted, so a typo cannot silently
#: make a rule dead.
SIP_METHODS: tuple[str, ...] = (
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
)


@dataclass(frozen=True, slots=True)
class Meta:
    """How a model field is spelled in YAML. Several `Meta`s in one `Annotated` merge."""

    doc: str = ""
    key: str | None = None  # the YAML key, when it is not the field name
    yaml: str | None = None  # name of the YAML value grammar (a `$defs` entry in the schema)
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None  # the value must be greater than this
    default: str | int | float | tuple[str, ...] | None = None  # as written in YAML (docs, schema)
    required: bool = False
    internal: bool = False  # set by the loader, not a YAML key


# ------------------------------------------------------------------------------------------- enums


class Transport(enum.Enum):
    UDP = "udp"
    TCP = "tcp"


class RuleAction(enum.Enum):
    """Every action ends rule evaluation (the first matching rule decides)."""

    ALLOW = "allow"  # forward; rate limits and detectors still apply
    DROP = "drop"  # silent
    REJECT = "reject"  # answer `status` (never to an ACK or a response), then drop
    BAN = "ban"  # ban the source for `ban` seconds (escalating) and drop
    ALERT = "alert"  # like allow, and raise an event


class Exceed(enum.Enum):
    DROP = "drop"
    REJECT = "reject"  # 503 with Retry-After


class AccountAction(enum.Enum):
    ALERT = "alert"
    BLOCK = "block"  # refuse that account from sources it has not authenticated from before


class FraudAction(enum.Enum):
    ALERT = "alert"  # forward and raise an alert
    REJECT = "reject"  # 403 and an alert


class EnumerationAction(enum.Enum):
    BAN = "ban"  # ban the probing source (escalating) and drop
    ALERT = "alert"  # raise an event, change nothing


class LoginCheck(enum.Enum):
    ALERT = "alert"
    OFF = "off"


class UnknownCountry(enum.Enum):
    """What country rules do with a source whose country is unknown (private or reserved
    addresses, ranges not in the data).

    `allow`: no country condition (`in` or `not`) matches it, so country rules never stop it;
    later rules, limits and detectors still apply, and the unknown country is logged. `drop`: it
    is dropped at the country step, before the rules (trusted sources are exempt; `geo.overrides`
    can give ranges a country).
    """

    ALLOW = "allow"
    DROP = "drop"


class Severity(enum.Enum):
    INFO = "info"
    NOTICE = "notice"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def level(self) -> int:
        """0 (info) to 4 (critical): compare levels, never names."""
        return _SEVERITY_LEVEL[self]


_SEVERITY_LEVEL = {s: i for i, s in enumerate(Severity)}


class SyslogFormat(enum.Enum):
    RFC5424 = "rfc5424"
    CEF = "cef"  # ArcSight CEF inside an RFC 5424 message


class NumberType(enum.Enum):
    """Destination number classes: phonenumbers' `PhoneNumberType` names in snake_case, plus two
    classes sipguard derives from the country calling code: `satellite` (+870 Inmarsat, +881 GMSS:
    Iridium, Globalstar, Thuraya...) and `international_network` (+882, +883)."""

    FIXED_LINE = "fixed_line"
    MOBILE = "mobile"
    FIXED_LINE_OR_MOBILE = "fixed_line_or_mobile"
    TOLL_FREE = "toll_free"
    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    VOIP = "voip"
    PERSONAL_NUMBER = "personal_number"
    PAGER = "pager"
    UAN = "uan"
    VOICEMAIL = "voicemail"
    UNKNOWN = "unknown"
    SATELLITE = "satellite"
    INTERNATIONAL_NETWORK = "international_network"


# ------------------------------------------------------------------------------------- value types


@dataclass(frozen=True, slots=True)
class Endpoint:
    """`udp://HOST:PORT` or `tcp://HOST:PORT`; `host` is an IP literal without brackets (a DNS
    name only where a field says so)."""

    transport: Transport
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.value}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True, slots=True)
class HostPort:
    """`HOST:PORT` (IPv6 in brackets) for a TCP listener such as the metrics endpoint."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` messages per `per_seconds` seconds (`10/min` is `Rate(10, 60.0)`)."""

    count: int
    per_seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.per_seconds


# ---------------------------------------------------------------------------------------- sections

BUILTIN_GEO = "builtin"
DEFAULT_LISTEN = (
    Endpoint(Transport.UDP, "0.0.0.0", 5060),  # noqa: S104 - a firewall listens on all interfaces
    Endpoint(Transport.TCP, "0.0.0.0", 5060),  # noqa: S104
)
DEFAULT_STORAGE_PATH = "/var/lib/sipguard/sipguard.db"
DEFAULT_CONTROL_PATH = "/var/lib/sipguard/sipguard.sock"


@dataclass(frozen=True, slots=True)
class GeoSpec:
    database: Annotated[
        str,
        Meta(
            "`builtin` (RIR allocation data shipped with iptocc) or the path of a country `.mmdb` "
            "(GeoLite2/GeoIP2/DB-IP/IPinfo); relative to the policy file",
            yaml="geo_database",
            default="builtin",
        ),
    ] = BUILTIN_GEO
    overrides: Annotated[
        tuple[tuple[Network, str], ...],
        Meta(
            "CIDR -> country code; wins over the database, the longest prefix first",
            yaml="geo_overrides",
        ),
    ] = ()
    max_age_days: Annotated[
        int,
        Meta("warn when the database is older than this many days; 0 = never", minimum=0),
    ] = 45
    unknown_country: Annotated[
        UnknownCountry,
        Meta(
            "a source with no country: `allow` = no country condition matches it; "
            "`drop` = drop it before the rules",
            default="allow",
        ),
    ] = UnknownCountry.ALLOW


@dataclass(frozen=True, slots=True)
class CountryMatch:
    """Holds when the source country is in `in` (when given) and not in `not`
    (model: `include`, None = any, and `exclude`). An unknown country never holds."""

    include: Annotated[
        frozenset[str] | None,
        Meta("the source country is one of these", key="in", yaml="countries"),
    ] = None
    exclude: Annotated[
        frozenset[str], Meta("the source country is none of these", key="not", yaml="countries")
    ] = frozenset()


@dataclass(frozen=True, slots=True)
class NetworkMatch:
    """Holds when the source address is in one of `in` (when given) and in none of `not`
    (model: `include`, None = any, and `exclude`)."""

    include: Annotated[
        tuple[Network, ...] | None, Meta("the source is in one of these", key="in", yaml="networks")
    ] = None
    exclude: Annotated[
        tuple[Network, ...], Meta("the source is in none of these", key="not", yaml="networks")
    ] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """All given conditions must hold. A rule without `match` matches every message."""

    method: Annotated[
        frozenset[str] | None, Meta("request method(s), upper-case", yaml="methods")
    ] = None
    country: Annotated[
        CountryMatch | None,
        Meta(
            "source country: `CC`, `[CC, ...]`, `{in: [...]}`, `{not: [...]}`", yaml="country_match"
        ),
    ] = None
    network: Annotated[
        NetworkMatch | None,
        Meta(
            "source address: `CIDR`, `[CIDR, ...]`, `{in: [...]}`, `{not: [...]}`",
            yaml="network_match",
        ),
    ] = None
    user_agent: Annotated[
        re.Pattern[bytes] | None,
        Meta(
            "User-Agent contains one of the substrings (case-insensitive) or `{regex: PATTERN}` "
            "(searched, case-insensitive, on the raw bytes)",
            yaml="user_agent_match",
        ),
    ] = None
    account: Annotated[
        frozenset[str] | None,
        Meta("From user, To user or digest username is one of these", yaml="strings"),
    ] = None
    transport: Annotated[Transport | None, Meta("the transport the message came in on")] = None

    @property
    def is_catch_all(self) -> bool:
        return self == _CATCH_ALL


_CATCH_ALL = Match()


@dataclass(frozen=True, slots=True)
class Rule:
    name: Annotated[
        str, Meta("unique id used in events and reports", yaml="rule_name", required=True)
    ]
    action: Annotated[RuleAction, Meta("what to do with a matching message", required=True)]
    match: Annotated[Match, Meta("conditions; leave out to match every message")] = _CATCH_ALL
    status: Annotated[
        int | None,
        Meta("response status (action `reject` only)", minimum=400, maximum=699, default=403),
    ] = None
    ban: Annotated[
        float | None,
        Meta("ban duration (action `ban` only); default `bans.default`", yaml="duration"),
    ] = None


@dataclass(frozen=True, slots=True)
class LimitSpec:
    rate: Annotated[Rate, Meta("sustained rate per source", yaml="rate", required=True)]
    burst: Annotated[int, Meta("bucket size; default: the rate's count", minimum=1)]
    exceed: Annotated[
        Exceed, Meta("what to do over the limit: `drop`, or `reject` (503 with Retry-After)")
    ] = Exceed.DROP
    ban_after: Annotated[
        int | None, Meta("ban a source that exceeds this many times within `within`", minimum=1)
    ] = None
    within: Annotated[float, Meta("window for `ban_after`", yaml="duration", default="10m")] = 600.0
    ban: Annotated[
        float | None,
        Meta("ban duration for `ban_after`; default `bans.default`", yaml="duration"),
    ] = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Token buckets per source address (IPv6: per `ipv6_prefix`) and method class; `global` caps
    all sources together. A class without an entry is not limited."""

    register: Annotated[LimitSpec | None, Meta("REGISTER requests", key="REGISTER")] = None
    invite: Annotated[LimitSpec | None, Meta("INVITE requests", key="INVITE")] = None
    options: Annotated[LimitSpec | None, Meta("OPTIONS requests", key="OPTIONS")] = None
    other: Annotated[LimitSpec | None, Meta("every other request method")] = None
    malformed: Annotated[
        LimitSpec | None,
        Meta(
            "messages that fail to parse, per source: past the limit they are dropped without "
            "an answer, and `ban_after` bans the source (a garbage flood); `exceed` is always drop"
        ),
    ] = None
    global_: Annotated[
        LimitSpec | None, Meta("all requests from all sources together", key="global")
    ] = None
    ipv6_prefix: Annotated[
        int, Meta("IPv6 sources share a bucket per prefix of this length", minimum=0, maximum=128)
    ] = 64

    def by_class(self) -> dict[str, LimitSpec]:
        """The configured limits keyed by their YAML names (`REGISTER`, ..., `other`, `global`)."""
        out: dict[str, LimitSpec] = {}
        for key, name in yaml_keys(Limits).items():
            value = getattr(self, name)
            if isinstance(value, LimitSpec):
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class PerAccountAuth:
    failures: Annotated[
        int, Meta("failures for one account, from any sources, within `within`", minimum=1)
    ] = 20
    within: Annotated[float, Meta("window", yaml="duration", default="1h")] = 3600.0
    action: Annotated[
        AccountAction,
        Meta("`alert`, or `block`: also refuse that account from sources it never logged in from"),
    ] = AccountAction.ALERT


@dataclass(frozen=True, slots=True)
class KnownSources:
    """Shared addresses (NAT): on a source that authenticated successfully within `memory`,
    failures are counted per account; a failing account is blocked from that source, and the
    source itself is banned only when its failures span `distinct_accounts` accounts."""

    memory: Annotated[
        float,
        Meta(
            "a source that logged in successfully this recently is known",
            yaml="duration",
            default="24h",
        ),
    ] = 86400.0
    distinct_accounts: Annotated[
        int,
        Meta(
            "a known source is banned only when its failures span this many accounts "
            "(1 = no leniency for known sources)",
            minimum=1,
        ),
    ] = 3


@dataclass(frozen=True, slots=True)
class AuthSpec:
    """Password brute force: a request with credentials answered 401/403/407 is a failure."""

    failures: Annotated[
        int, Meta("failures per source within `within` before a ban", minimum=1)
    ] = 5
    within: Annotated[float, Meta("window", yaml="duration", default="10m")] = 600.0
    ban: Annotated[
        float, Meta("ban duration; default `bans.default`", yaml="duration", default="1h")
    ] = 3600.0
    per_account: Annotated[
        PerAccountAuth | None, Meta("distributed brute force against one account")
    ] = field(default_factory=PerAccountAuth)
    known_sources: Annotated[
        KnownSources, Meta("shared addresses: sources that logged in before, judged per account")
    ] = field(default_factory=KnownSources)


@dataclass(frozen=True, slots=True)
class EnumerationPolicy:
    """One source probing many distinct users that the PBX answers 404, 403, 484 or 604 (no such
    user) within `within` is enumerating extensions."""

    distinct_users: Annotated[
        int, Meta("distinct users answered 'no such user' to one source", minimum=2)
    ] = 10
    within: Annotated[float, Meta("window", yaml="duration", default="1m")] = 60.0
    ban: Annotated[
        float,
        Meta("ban duration (action `ban` only)", yaml="duration", default="24h"),
    ] = 86400.0
    action: Annotated[EnumerationAction, Meta("`ban` the source, or only `alert`")] = (
        EnumerationAction.BAN
    )


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """A successful registration from a country, or at a local hour, not seen for that account
    alerts, once the account has `learn` successful logins on record."""

    new_country: Annotated[
        LoginCheck, Meta("a login from a country the account never used: `alert` or `off`")
    ] = LoginCheck.ALERT
    new_hour: Annotated[
        LoginCheck, Meta("a login at a local hour the account never used: `alert` or `off`")
    ] = LoginCheck.ALERT
    timezone: Annotated[
        str, Meta("IANA time zone of the hours", yaml="timezone", default="UTC")
    ] = "UTC"
    learn: Annotated[
        int, Meta("successful logins on record before an account can alert", minimum=1)
    ] = 5


@dataclass(frozen=True, slots=True)
class BanSpec:
    """Ban n of a source (n = 0, 1, ...) lasts min(max, default * escalation**n) + jitter * r,
    0 <= r < 1."""

    default: Annotated[
        float,
        Meta("ban duration where a rule or detector names none", yaml="duration", default="1h"),
    ] = 3600.0
    escalation: Annotated[
        float, Meta("factor for each repeat offence (1 = no escalation)", minimum=1, default=2.0)
    ] = 2.0
    max: Annotated[float, Meta("longest ban", yaml="duration", default="30d")] = 30 * 86400.0
    jitter: Annotated[
        float, Meta("random extra time, up to this much", yaml="duration", default="0s")
    ] = 0.0


_DEFAULT_DENY_TYPES = frozenset({NumberType.PREMIUM_RATE, NumberType.SATELLITE})


@dataclass(frozen=True, slots=True)
class Destinations:
    allow: Annotated[
        frozenset[str] | None,
        Meta(
            "countries that may be called; leave out for all (must include `home_country`)",
            yaml="countries",
        ),
    ] = None
    deny_types: Annotated[
        frozenset[NumberType],
        Meta(
            "number types that may not be called",
            yaml="number_types",
            default=("premium_rate", "satellite"),
        ),
    ] = _DEFAULT_DENY_TYPES
    action: Annotated[FraudAction, Meta("for a call to a refused destination")] = FraudAction.REJECT


@dataclass(frozen=True, slots=True)
class FraudPerAccount:
    concurrent_calls: Annotated[int | None, Meta("calls in progress per account", minimum=1)] = None
    calls_per_minute: Annotated[int | None, Meta("new calls per account per minute", minimum=1)] = (
        None
    )
    calls_per_hour: Annotated[int | None, Meta("new calls per account per hour", minimum=1)] = None
    action: Annotated[FraudAction, Meta("for a call over a limit")] = FraudAction.REJECT


@dataclass(frozen=True, slots=True)
class QuietHours:
    """From `start` to `end` local time (wrapping past midnight when `end` < `start`)."""

    start: Annotated[
        datetime.time, Meta("start, HH:MM (quote it)", key="from", yaml="clock", required=True)
    ]
    end: Annotated[datetime.time, Meta("end, HH:MM", key="to", yaml="clock", required=True)]
    timezone: Annotated[
        str, Meta("IANA time zone, e.g. Europe/Amsterdam", yaml="timezone", required=True)
    ]
    international: Annotated[
        FraudAction, Meta("for a call outside `home_country` during quiet hours")
    ] = FraudAction.ALERT


@dataclass(frozen=True, slots=True)
class Spikes:
    """Call attempts (and international call attempts) per `interval`, per account and overall,
    against an EWMA baseline of the completed intervals: a count >= max(`min_calls`,
    `factor` x baseline) is a spike."""

    interval: Annotated[float, Meta("bucket length (1m to 1d)", yaml="duration", default="5m")] = (
        300.0
    )
    factor: Annotated[
        float, Meta("a spike is this many times the baseline", exclusive_minimum=1, maximum=1000)
    ] = 4.0
    min_calls: Annotated[
        int, Meta("never a spike below this many calls in one interval", minimum=1)
    ] = 20
    alpha: Annotated[
        float,
        Meta("EWMA weight of the newest interval", exclusive_minimum=0, maximum=1),
    ] = 0.3
    action: Annotated[FraudAction, Meta("for a call in a spike")] = FraudAction.ALERT


@dataclass(frozen=True, slots=True)
class FraudSpec:
    """Toll-fraud checks on INVITEs from outside."""

    home_country: Annotated[
        str | None, Meta("country of the PBX: national numbers are parsed for it", yaml="country")
    ] = None
    destinations: Annotated[Destinations, Meta("where calls may go")] = field(
        default_factory=Destinations
    )
    per_account: Annotated[FraudPerAccount, Meta("call limits per account")] = field(
        default_factory=FraudPerAccount
    )
    quiet_hours: Annotated[
        QuietHours | None, Meta("hours in which international calls are suspicious")
    ] = None
    outside_line_prefix: Annotated[
        str, Meta("digits dialled for an outside line, removed before classifying", yaml="digits")
    ] = ""
    spikes: Annotated[
        Spikes | None, Meta("sudden peaks of calls against a learned baseline; off when absent")
    ] = None


@dataclass(frozen=True, slots=True)
class WebhookSink:
    url: Annotated[
        str, Meta("http(s) URL; JSON is POSTed", key="webhook", yaml="http_url", required=True)
    ]
    min_severity: Annotated[Severity, Meta("least severe event sent")] = Severity.WARNING
    secret: Annotated[
        str | None, Meta("HMAC-SHA256 key for the X-SIPGuard-Signature header", yaml="secret")
    ] = None


@dataclass(frozen=True, slots=True)
class SyslogSink:
    endpoint: Annotated[
        Endpoint,
        Meta(
            "`udp://HOST:PORT` or `tcp://HOST:PORT`; HOST may be a DNS name",
            key="syslog",
            yaml="syslog_endpoint",
            required=True,
        ),
    ]
    format: Annotated[SyslogFormat, Meta("message format")] = SyslogFormat.RFC5424
    min_severity: Annotated[Severity, Meta("least severe event sent")] = Severity.WARNING


@dataclass(frozen=True, slots=True)
class FileSink:
    path: Annotated[
        str,
        Meta(
            "JSON lines file; relative to the policy file", key="file", yaml="path", required=True
        ),
    ]
    min_severity: Annotated[Severity, Meta("least severe event written")] = Severity.WARNING


AlertSink: TypeAlias = WebhookSink | SyslogSink | FileSink

DEFAULT_EVENT_RETENTION = 90 * 86400.0  # a quarter: NIS2 incident follow-up and reviews
DEFAULT_ROLLUP_RETENTION = 400 * 86400.0  # 13 months: this month against the same one last year


@dataclass(frozen=True, slots=True)
class Records:
    """What the store keeps, and for how long (pruned at start and every hour). Bans, the policy
    audit trail and drill results are never pruned."""

    events: Annotated[
        float,
        Meta("security events are deleted when older than this", yaml="duration", default="90d"),
    ] = DEFAULT_EVENT_RETENTION
    rollups: Annotated[
        float | None,
        Meta(
            "per-minute traffic rollups are deleted when older than this; `off` = record none "
            "(and delete none)",
            yaml="retention",
            default="400d",
        ),
    ] = DEFAULT_ROLLUP_RETENTION
    pseudonymise_numbers: Annotated[
        bool,
        Meta(
            "phone numbers in stored events become keyed pseudonyms that keep the country "
            "calling code (`+881…#3fa9c2d1`)"
        ),
    ] = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """A validated policy. Every section is optional except `upstream`."""

    listen: Annotated[
        tuple[Endpoint, ...],
        Meta(
            "where sipguard listens for the outside",
            yaml="endpoints",
            default=("udp://0.0.0.0:5060", "tcp://0.0.0.0:5060"),
        ),
    ] = DEFAULT_LISTEN
    upstream: Annotated[
        Endpoint,
        Meta(
            "the PBX or trunk: every outside request goes here and nowhere else",
            yaml="endpoint",
            required=True,
        ),
    ]
    inside: Annotated[
        Endpoint | None,
        Meta(
            "sipguard's own address toward the upstream; default: the local address that routes "
            "to the upstream, ephemeral port",
            yaml="endpoint",
        ),
    ] = None
    advertise: Annotated[
        str | None,
        Meta(
            "the address phones reach sipguard at, put in Record-Route; needed when a `listen` "
            "address is a wildcard (0.0.0.0 or ::); default: the listen address itself",
            yaml="ip",
        ),
    ] = None
    trusted: Annotated[
        tuple[Network, ...],
        Meta("never banned or rate limited; still fraud-checked", yaml="networks"),
    ] = ()
    storage_path: Annotated[
        str,
        Meta(
            "`sqlite:///ABSOLUTE/PATH`, `sqlite:RELATIVE/PATH` or a path",
            key="storage",
            yaml="storage",
            default="sqlite://" + DEFAULT_STORAGE_PATH,
        ),
    ] = DEFAULT_STORAGE_PATH
    geo: Annotated[GeoSpec, Meta("GeoIP database and overrides")] = field(default_factory=GeoSpec)
    rules: Annotated[tuple[Rule, ...], Meta("ordered; the first matching rule decides")] = ()
    limits: Annotated[Limits, Meta("rate limits")] = field(default_factory=Limits)
    auth: Annotated[AuthSpec, Meta("brute-force protection")] = field(default_factory=AuthSpec)
    enumeration: Annotated[EnumerationPolicy, Meta("extension enumeration (scanners)")] = field(
        default_factory=EnumerationPolicy
    )
    logins: Annotated[LoginPolicy, Meta("unusual logins")] = field(default_factory=LoginPolicy)
    bans: Annotated[BanSpec, Meta("ban durations")] = field(default_factory=BanSpec)
    fraud: Annotated[FraudSpec, Meta("toll-fraud checks")] = field(default_factory=FraudSpec)
    alerts: Annotated[tuple[AlertSink, ...], Meta("where alerts go")] = ()
    metrics: Annotated[
        HostPort | None, Meta("Prometheus endpoint, `HOST:PORT`; off when absent", yaml="host_port")
    ] = None
    records: Annotated[Records, Meta("what the store keeps, and for how long")] = field(
        default_factory=Records
    )
    control_path: Annotated[
        str,
        Meta(
            "Unix control socket; default `sipguard.sock` next to the store",
            key="control",
            yaml="path",
        ),
    ] = DEFAULT_CONTROL_PATH
    source_path: Annotated[str, Meta("the policy file as named by the caller", internal=True)] = (
        "<policy>"
    )
    source_sha256: Annotated[str, Meta("SHA-256 of the policy text", internal=True)] = ""


# ----------------------------------------------------------------------------------- introspection


def field_meta(cls: type[Any]) -> Mapping[str, tuple[Any, Meta]]:
    """field name -> (type without `Annotated`, merged `Meta`), in declaration order."""
    cached = _FIELD_META.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls, include_extras=True)
    out: dict[str, tuple[Any, Meta]] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        meta = Meta()
        if typing.get_origin(hint) is Annotated:
            base, *extras = typing.get_args(hint)
            for extra in extras:
                if isinstance(extra, Meta):
                    meta = _merge(meta, extra)
            hint = base
        out[f.name] = (hint, meta)
    _FIELD_META[cls] = MappingProxyType(out)
    return _FIELD_META[cls]


def yaml_keys(cls: type[Any]) -> Mapping[str, str]:
    """YAML key -> field name for the fields of `cls` that are spelled in YAML, in order."""
    cached = _YAML_KEYS.get(cls)
    if cached is None:
        keys = {(m.key or name): name for name, (_, m) in field_meta(cls).items() if not m.internal}
        cached = _YAML_KEYS[cls] = MappingProxyType(keys)
    return cached


_FIELD_META: dict[type[Any], Mapping[str, tuple[Any, Meta]]] = {}
_YAML_KEYS: dict[type[Any], Mapping[str, str]] = {}


def _merge(a: Meta, b: Meta) -> Meta:
    changes = {
        f.name: getattr(b, f.name)
        for f in dataclasses.fields(Meta)
        if getattr(b, f.name) != f.default
    }
    return dataclasses.replace(a, **changes)
