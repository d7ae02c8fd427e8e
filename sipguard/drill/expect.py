"""What a deployment should do to each attack, read from the policy (pure: `now` is a parameter).

The drill expects every attack to be stopped (a deployment should stop it), whatever the policy
says; the policy only decides *how* (which rule, ban or drop, alert or not) and whether the drill
can predict success. Where the policy has a protection off or too lax, the expectation says so
(`covered` false, `note` names the section to change) and the drill reports the attack as failed
when it gets through. An attack the drill cannot stage honestly (no quiet hours now, no geo
override for a refused country, a PBX that does not know the test account) is skipped with the
reason, never passed.

Predictions reuse the engine's own code: rule matching (`compile_rule`), number classification
and the fraud checks (`FraudGuard`), on the very messages the attackers send.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from sipguard.core.sip import SipRequest, parse_message
from sipguard.drill.catalogue import (
    ATTACKS,
    BROWSER_UA,
    MAX_PACKETS,
    PHONE_UA,
    SCANNER_UA,
    by_id,
)
from sipguard.drill.sipmsg import Leg, build_request
from sipguard.engine.context import Packet, Side
from sipguard.engine.engine import REPLY_BUDGET
from sipguard.engine.fraud import FraudGuard
from sipguard.engine.fraud.guard import KIND_QUIET_HOURS, FraudFinding, decisive
from sipguard.engine.fraud.numbers import classify_user
from sipguard.engine.rules import CompiledRule, compile_rule
from sipguard.policy.model import (
    EnumerationAction,
    FraudAction,
    LimitSpec,
    Network,
    Policy,
    RuleAction,
    Severity,
    Transport,
)

__all__ = [
    "BRUTE_FORCE_MAX_TRIES",
    "ENUMERATION_MAX_USERS",
    "MALFORMED_COUNT",
    "Expectation",
    "Outcome",
    "alert_threshold",
    "expectations",
    "override_country",
    "plan_sources",
]

#: Passwords the brute force tries at most (each try is a REGISTER and its challenge answer).
BRUTE_FORCE_MAX_TRIES = 40
#: Distinct users an enumeration sweep probes at most.
ENUMERATION_MAX_USERS = 120
#: Datagrams of the malformed burst.
MALFORMED_COUNT = 60
#: Countries the denied-country source and the fraud call pick from, in this order.
FOREIGN_CANDIDATES = ("CU", "KP", "SO", "IR", "SY", "CN", "RU", "NG", "PK", "VN")
#: Calls the night call may go to (an allowed country abroad), in this order.
NEAR_CANDIDATES = ("BE", "DE", "GB", "FR", "LU", "AT", "DK", "IE", "ES", "IT", "SE", "CH", "US")
SATELLITE_NUMBER = "+881631234567"  # Iridium (GMSS +8816)
EXAMPLE_LEG = Leg("127.0.0.101", 5062, "127.0.0.1", 5060)
RULE_SEVERITY = {  # the event a rule match raises (engine._apply_rule)
    RuleAction.BAN: Severity.WARNING,  # the ban event
    RuleAction.DROP: Severity.NOTICE,
    RuleAction.REJECT: Severity.NOTICE,
}


class Outcome(enum.Enum):
    BAN = "ban"  # the source is banned
    DROP = "drop"  # dropped by a rule
    REJECT = "reject"  # refused with an answer (403) by a rule or the fraud checks
    RATE_LIMIT = "rate_limit"  # dropped/503 over a rate limit (no ban configured)
    ALERT = "alert"  # forwarded, and an alert raised (the policy's choice, e.g. quiet hours)
    REFUSE = "refuse"  # never forwarded: dropped or answered 400 (malformed)


BLOCKING = frozenset(
    {Outcome.BAN, Outcome.DROP, Outcome.REJECT, Outcome.RATE_LIMIT, Outcome.REFUSE}
)


@dataclass(frozen=True, slots=True)
class Expectation:
    attack: str
    source: str
    outcome: Outcome
    expected: str  # for people: "banned by rules[sip-scanners]"
    section: str  # the policy section that stops it: "rules[sip-scanners]", "auth", ...
    rule: str  # what the daemon names when it acts: a rule name, "auth", "limits.REGISTER", ...
    covered: bool  # the policy as written should stop it
    alert: bool  # an alert is expected (an event at or above `alert_threshold`)
    packets: int  # the most datagrams this attack may send
    note: str = ""  # where the policy falls short, what to change or add
    skip: str = ""  # non-empty: the attack cannot be staged now, and why
    method: str = "OPTIONS"
    count: int = 1  # requests (probes, tries, flood size)
    user_agent: str | None = None
    number: str = ""  # the dialled number (fraud calls)
    account: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


def alert_threshold(policy: Policy) -> Severity:
    """The least severity that reaches the NOC: the lowest `min_severity` of the alert sinks,
    or warning without sinks (what `sipguard events` and the log show as a warning)."""
    if not policy.alerts:
        return Severity.WARNING
    return min((sink.min_severity for sink in policy.alerts), key=lambda s: s.level)


def override_country(policy: Policy, ip: str) -> str | None:
    """The country `geo.overrides` gives `ip` (the longest prefix), else None."""
    address = ipaddress.ip_address(ip)
    best: tuple[int, str] | None = None
    for net, country in policy.geo.overrides:
        inside = address.version == net.version and address in net
        if inside and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, country)
    return best[1] if best else None


def plan_sources(policy: Policy, picked: list[str]) -> dict[str, str]:
    """attack id -> source address: the denied-country source from `country_source`, the rest
    from `picked` (addresses without a country or trust), in catalogue order."""
    source = country_source(policy)
    plain = iter(picked)
    out: dict[str, str] = {}
    for spec in ATTACKS:
        if spec.id == "denied-country" and source is not None:
            out[spec.id] = source[0]
        else:
            out[spec.id] = next(plain)
    return out


def sources_needed() -> int:
    return len(ATTACKS)


def avoid_networks(policy: Policy) -> list[Network]:
    """Addresses the ordinary attackers must not use: trusted, or with a geo override."""
    return [*policy.trusted, *(net for net, _ in policy.geo.overrides)]


# ------------------------------------------------------------------------------- the expectations


def expectations(
    policy: Policy, sources: Mapping[str, str], now: float, *, account: str
) -> list[Expectation]:
    """One expectation per attack of the catalogue, in order."""
    level = alert_threshold(policy)
    make = {
        "scanner-ua": _scanner_ua,
        "scanner-disguised": _scanner_disguised,
        "enumeration": _enumeration,
        "brute-force": _brute_force,
        "register-flood": _flood,
        "invite-flood": _flood,
        "fraud-premium": _fraud,
        "fraud-satellite": _fraud,
        "fraud-country": _fraud,
        "night-call": _night_call,
        "denied-country": _denied_country,
        "malformed-burst": _malformed,
    }
    out = []
    for spec in ATTACKS:
        exp = make[spec.id](policy, spec.id, sources[spec.id], now, account, level)
        if exp.source in _trusted(policy, exp.source):
            exp = replace(
                exp,
                covered=False,
                note=f"the source {exp.source} is trusted by the policy: never banned or limited",
            )
        out.append(exp)
    return out


def _trusted(policy: Policy, ip: str) -> set[str]:
    address = ipaddress.ip_address(ip)
    return {ip} if any(address in net for net in policy.trusted) else set()


def _alerts(severity: Severity, level: Severity) -> bool:
    return severity.level >= level.level


def _scanner_ua(
    policy: Policy, attack: str, source: str, now: float, account: str, level: Severity
) -> Expectation:
    msg = _message(policy, "OPTIONS", source, user="100", ua=SCANNER_UA)
    rule = _deciding_rule(policy, msg, source)
    base = Expectation(
        attack,
        source,
        Outcome.BAN,
        f"banned by a User-Agent rule (User-Agent: {SCANNER_UA})",
        "rules",
        "",
        covered=False,
        alert=_alerts(Severity.WARNING, level),
        packets=3,
        count=3,
        user_agent=SCANNER_UA,
        note=(
            f"no rule refuses User-Agent {SCANNER_UA}: add `- {{name: sip-scanners, match: "
            "{user_agent: [friendly-scanner, sipvicious, sipcli]}, action: ban, ban: 24h}` "
            "to rules"
        ),
    )
    return _rule_expectation(base, rule, level)


def _rule_expectation(base: Expectation, rule: CompiledRule | None, level: Severity) -> Expectation:
    if rule is None:
        return base
    action = rule.rule.action
    section = f"rules[{rule.name}]"
    if action in RULE_SEVERITY:
        outcome = {
            RuleAction.BAN: Outcome.BAN,
            RuleAction.DROP: Outcome.DROP,
            RuleAction.REJECT: Outcome.REJECT,
        }[action]
        verb = {Outcome.BAN: "banned", Outcome.DROP: "dropped", Outcome.REJECT: "rejected"}
        return replace(
            base,
            outcome=outcome,
            expected=f"{verb[outcome]} by {section}",
            section=section,
            rule=rule.name,
            covered=True,
            alert=_alerts(RULE_SEVERITY[action], level),
            note="",
        )
    what = "only alerts" if action is RuleAction.ALERT else "allows it"
    return replace(
        base,
        section=section,
        rule=rule.name,
        note=f"{section} matches first and {what} (action: {action.value}): make it ban, "
        "drop or reject",
    )


def _enumeration_expectation(
    policy: Policy, attack: str, source: str, level: Severity, *, method: str, ua: str | None
) -> Expectation:
    spec = policy.enumeration
    count = spec.distinct_users + 5
    covered = spec.action is EnumerationAction.BAN and count <= ENUMERATION_MAX_USERS
    note = ""
    if spec.action is not EnumerationAction.BAN:
        note = "enumeration.action is alert: the scanner keeps probing; set `action: ban`"
    elif count > ENUMERATION_MAX_USERS:
        note = (
            f"enumeration.distinct_users {spec.distinct_users} is more than the drill probes "
            f"({ENUMERATION_MAX_USERS}): a scanner learns that many extensions first"
        )
    count = min(count, ENUMERATION_MAX_USERS)
    probe = _message(policy, method, source, user="1000", ua=ua)
    rule = _deciding_rule(policy, probe, source)
    if rule is not None and rule.rule.action in RULE_SEVERITY:  # a rule stops it even earlier
        base = Expectation(attack, source, Outcome.BAN, "", "", "", False, False, count + 5)
        return replace(
            _rule_expectation(base, rule, level), method=method, count=count, user_agent=ua
        )
    return Expectation(
        attack,
        source,
        Outcome.BAN,
        f"banned by enumeration after {spec.distinct_users} unknown users "
        "(needs a PBX that answers 404 for them)",
        "enumeration",
        "enumeration",
        covered=covered,
        alert=_alerts(Severity.WARNING, level),
        packets=count + 5,
        note=note,
        method=method,
        count=count,
        user_agent=ua,
    )


def _scanner_disguised(
    policy: Policy, attack: str, source: str, now: float, account: str, level: Severity
) -> Expectation:
    return _enumeration_expectation(policy, attack, source, level, method="OPTIONS", ua=BROWSER_UA)


def _enumeration(
    policy: Policy, attack: str, source: str, now: float, account: str, level: Severity
) -> Expectation:
    return _enumeration_expectation(policy, attack, source, level, method="REGISTER", ua=None)


def _brute_force(
    policy: Policy, attack: str, source: str, now: float, account: str, level: Severity
) -> Expectation:
    failures = policy.auth.failures
    tries = min(failures + 3, BRUTE_FORCE_MAX_TRIES)
    covered = failures <= BRUTE_FORCE_MAX_TRIES
    note = (
        ""
        if covered
        else f"auth.failures {failures} is more than the drill tries ({BRUTE_FORCE_MAX_TRIES}); "
        "an attacker tries millions: lower it (the default is 5)"
    )
    return Expectation(
        attack,
        source,
        Outcome.BAN,
        f"banned by auth after {failures} failed logins for {account!r}",
        "auth",
        "auth",
        covered=covered,
        alert=_alerts(Severity.WARNING, level),
        packets=2 * tries + 2,
        note=note,
        method="REGISTER",
        count=tries,
        user_agent=PHONE_UA,
        account=account,
    )


def _flood(
    policy: Policy, attack: str, source: str, now: float, account: str, level: Severity
) -> Expectation:
    method = "REGISTER" if attack == "register-flood" else "INVITE"
    spec: LimitSpec | None = getattr(policy.limits, method.lower())
    other = policy.limits.other if spec is None else None
    section = f"limits.{method}"
    if spec is None and other is None:
        return Expectation(
            attack,
            source,
            Outcome.RATE_LIMIT,
            f"rate-limited by {section}",
            section,
            section,
            covered=False,
            alert=False,
            packets=150,
            note=f"no {section} (nor limits.other): a flood reaches the PBX untouched; "
            f"add e.g. `{method}: {{rate: 60/min, burst: 30, ban_after: 30, within: 1m}}`",
            method=method,
            count=150,
            account=account,
        )
    if spec is None:
        assert other is not None
        spec, section = other, "limits.other"
    room = MAX_PACKETS - 50  # ACKs of the INVITEs that reach the PBX come out of the same budget
    if spec.ban_after is not None:
        count = spec.burst + spec.ban_after + 20
        outcome, expected = Outcome.BAN, f"banned by {section} after {spec.ban_after} offences"
        alert = _alerts(Severity.WARNING, level)
    else:
        count = spec.burst + 20
        outcome, expected = Outcome.RATE_LIMIT, f"rate-limited by {section} (no ban_after)"
        alert = _alerts(Severity.NOTICE, level)
    note = ""
    if count > room:
        note = (
            f"{section}: burst {spec.burst} (+ ban_after) lets more than {room} requests "
            "through at once: the drill's bound; lower the burst"
        )
    return Expectation(
        attack,
        source,
        outcome,
        expected,
        section,
        section,
        covered=count <= room,
        alert=alert,
        packets=min(count, room) + 50,
        note=note,
        method=method,
        count=min(count, room),
        user_agent=PHONE_UA,
        account=account,
    )


def _fraud(
    policy: Policy, attack: str, source: str, now: float, account: str, level: Severity
) -> Expectation:
    fraud = policy.fraud
    home = fraud.home_country
    if attack == "fraud-premium":
        number = _example(home or "GB", PhoneNumberType.PREMIUM_RATE) or "+449012345678"
        what = "a premium-rate number"
    elif attack == "fraud-satellite":
        number, what = SATELLITE_NUMBER, "a satellite number"
    else:
        allow = fraud.destinations.allow
        country = next((c for c in FOREIGN_CANDIDATES if allow is None or c not in allow), "CU")
        number = _example(country, PhoneNumberType.FIXED_LINE) or "+5371234567"
        what = f"a number in {country}"
    base = Expectation(
        attack,
        source,
        Outcome.REJECT,
        f"call to {what} ({number}) rejected (403) by fraud.destinations",
        "fraud.destinations",
        "",
        covered=False,
        alert=_alerts(Severity.ERROR, level),
        packets=4,
        method="INVITE",
        number=number,
        user_agent=PHONE_UA,
        account=account,
    )
    finding = _fraud_finding(policy, source, number, account, now)
    if finding is None or not finding.rule.startswith("fraud.destinations"):
        hint = {
            "fraud-premium": "add premium_rate to fraud.destinations.deny_types",
            "fraud-satellite": "add satellite to fraud.destinations.deny_types",
            "fraud-country": "list the countries customers call in fraud.destinations.allow",
        }[attack]
        return replace(base, note=f"the policy lets this call through: {hint}")
    if finding.action is not FraudAction.REJECT:
        return replace(
            base,
            section=finding.rule,
            rule=finding.rule,
            note="fraud.destinations.action is alert: the call goes through (and costs money); "
            "set `action: reject`",
        )
    return replace(
        base,
        expected=f"call to {what} ({number}) rejected (403) by {finding.rule}",
        section=finding.rule,
        rule=finding.rule,
        covered=True,
        alert=_alerts(finding.severity, level),
    )


def _night_call(
    policy: Policy, attack: str, source: str, now: float, account: str, level: Severity
) -> Expectation:
    fraud = policy.fraud
    quiet = fraud.quiet_hours
    allow = fraud.destinations.allow
    country = next(
        (c for c in NEAR_CANDIDATES if c != fraud.home_country and (allow is None or c in allow)),
        "BE",
    )
    number = _example(country, PhoneNumberType.FIXED_LINE) or "+3212345678"
    base = Expectation(
        attack,
        source,
        Outcome.ALERT,
        f"international call to {country} ({number}) in quiet hours: alert",
        "fraud.quiet_hours",
        "fraud.quiet_hours",
        covered=False,
        alert=True,
        packets=4,
        method="INVITE",
        number=number,
        user_agent=PHONE_UA,
        account=account,
    )
    if quiet is None:
        return replace(
            base,
            note="no fraud.quiet_hours: international calls at night raise nothing; add "
            '`quiet_hours: {from: "22:00", to: "07:00", timezone: Europe/Amsterdam, '
            "international: alert}`",
        )
    zone = zoneinfo.ZoneInfo(quiet.timezone)
    local = datetime.datetime.fromtimestamp(now, zone)
    span = f"{quiet.start:%H:%M}-{quiet.end:%H:%M} {quiet.timezone}"
    findings = _fraud_findings(policy, source, number, account, now)
    hours = [f for f in findings if f.kind == KIND_QUIET_HOURS]
    if not hours:
        return replace(
            base,
            skip=f"not in quiet hours now ({local:%H:%M} {quiet.timezone}; quiet hours {span}): "
            "run the drill in quiet hours to test them",
        )
    decided = decisive(findings)
    assert decided is not None
    if decided.action is FraudAction.REJECT:
        return replace(
            base,
            outcome=Outcome.REJECT,
            expected=f"international call to {country} ({number}) at {local:%H:%M}: rejected "
            f"(403) by {decided.rule}",
            section=decided.rule,
            rule=decided.rule,
            covered=True,
            alert=_alerts(decided.severity, level),
        )
    return replace(
        base,
        expected=f"international call to {country} ({number}) at {local:%H:%M} "
        f"(quiet hours {span}): forwarded with an alert",
        covered=True,
        alert=True,
        note=""
        if _alerts(hours[0].severity, level)
        else "quiet-hours events are warnings, "
        "below the alert sinks' min_severity: nobody hears of them",
    )


def country_source(policy: Policy) -> tuple[str, str, CompiledRule] | None:
    """(source address, its country, the rule that refuses it) from the policy's own geo
    overrides of loopback addresses, or None when it has none that a country rule refuses."""
    for net, country in policy.geo.overrides:
        if net.version != 4 or not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            continue
        hosts = [net.network_address] if net.prefixlen == 32 else list(net.hosts())[:64]
        for host in hosts:
            ip = str(host)
            if ip == "127.0.0.1" or _trusted(policy, ip) or override_country(policy, ip) != country:
                continue
            rule = _country_rule(policy, ip, country)
            if rule is not None:
                return ip, country, rule
    return None


def _country_rule(policy: Policy, ip: str, country: str) -> CompiledRule | None:
    for method in ("REGISTER", "INVITE", "OPTIONS"):
        msg = _message(policy, method, ip, user="100", ua=PHONE_UA)
        rule = _deciding_rule(policy, msg, ip, country=country)
        if rule is not None and rule.rule.match.country is not None:
            return rule if rule.rule.action in RULE_SEVERITY else None
    return None


def _denied_country(
    policy: Policy, attack: str, source: str, now: float, account: str, level: Severity
) -> Expectation:
    found = country_source(policy)
    base = Expectation(
        attack,
        source,
        Outcome.DROP,
        "refused by a country rule",
        "rules (country)",
        "",
        covered=False,
        alert=False,
        packets=3,
        count=3,
        user_agent=PHONE_UA,
        account=account,
    )
    if found is not None:
        ip, country, rule = found
        method = next(
            (
                m
                for m in ("REGISTER", "INVITE", "OPTIONS")
                if _decides(policy, m, ip, country, rule.name)
            ),
            "OPTIONS",
        )
        exp = _rule_expectation(replace(base, source=ip, method=method), rule, level)
        return replace(exp, expected=f"{exp.expected} (source {ip} is {country} by geo.overrides)")
    # What the admin should add: the first rule that refuses some country, and a loopback
    # address mapped to such a country.
    for compiled in _rules(policy):
        cond = compiled.rule.match.country
        if cond is None or compiled.rule.action not in RULE_SEVERITY:
            continue
        candidates = sorted(cond.include) if cond.include is not None else FOREIGN_CANDIDATES
        refused = next((c for c in candidates if c not in cond.exclude), None)
        if refused is None:
            continue
        return replace(
            base,
            skip=f"no geo.overrides entry maps a loopback source to a country that "
            f"rules[{compiled.name}] refuses; add to geo.overrides: `{source}/32: {refused}`",
            extra={"override": f"{source}/32: {refused}"},
        )
    return replace(
        base,
        skip="the policy refuses no source country (no rule with match.country and action "
        "ban, drop or reject); to geo-block, add e.g. `- {name: foreign-registrations, match: "
        "{method: REGISTER, country: {not: [NL, BE, LU]}}, action: drop}` and to geo.overrides "
        f"`{source}/32: CN`",
        extra={"override": f"{source}/32: CN"},
    )


def _decides(policy: Policy, method: str, ip: str, country: str, name: str) -> bool:
    msg = _message(policy, method, ip, user="100", ua=PHONE_UA)
    rule = _deciding_rule(policy, msg, ip, country=country)
    return rule is not None and rule.name == name


def _malformed(
    policy: Policy, attack: str, source: str, now: float, account: str, level: Severity
) -> Expectation:
    budget = REPLY_BUDGET.burst
    return Expectation(
        attack,
        source,
        Outcome.REFUSE,
        f"never forwarded: dropped, or answered 400/505 (at most {budget} answers)",
        "parser",
        "malformed",
        covered=True,
        alert=False,
        packets=MALFORMED_COUNT,
        count=MALFORMED_COUNT,
    )


# ------------------------------------------------------------------------------------- helpers


def _rules(policy: Policy) -> tuple[CompiledRule, ...]:
    return tuple(compile_rule(rule) for rule in policy.rules)


def _message(policy: Policy, method: str, source: str, *, user: str, ua: str | None) -> SipRequest:
    leg = replace(EXAMPLE_LEG, src_ip=source)
    data = build_request(
        method,
        leg,
        user=user,
        from_user=user,
        call_id="drill-predict",
        branch="z9hG4bK-drill-predict",
        tag="predict",
        user_agent=ua,
    )
    msg = parse_message(data, datagram=True, strict=True)
    assert isinstance(msg, SipRequest)
    return msg


def _deciding_rule(
    policy: Policy, msg: SipRequest, source: str, *, country: str | None = None
) -> CompiledRule | None:
    """The first rule that matches (the engine's first-match order), or None."""
    country = country if country is not None else override_country(policy, source)
    pkt = Packet(source, 5062, Transport.UDP, Side.OUTSIDE, 0.0)
    for rule in _rules(policy):
        if rule.matches(msg, pkt, country):
            return rule
    return None


def _fraud_findings(
    policy: Policy, source: str, number: str, account: str, now: float
) -> tuple[FraudFinding, ...]:
    leg = replace(EXAMPLE_LEG, src_ip=source)
    data = build_request(
        "INVITE",
        leg,
        user=number,
        from_user=account,
        call_id="drill-predict",
        branch="z9hG4bK-drill-predict",
        tag="predict",
        user_agent=PHONE_UA,
    )
    msg = parse_message(data, datagram=True, strict=True)
    assert isinstance(msg, SipRequest)
    return FraudGuard(policy.fraud).check_invite_all(msg, account, now)


def _fraud_finding(
    policy: Policy, source: str, number: str, account: str, now: float
) -> FraudFinding | None:
    return decisive(_fraud_findings(policy, source, number, account, now))


def _example(country: str, kind: int) -> str | None:
    number = phonenumbers.example_number_for_type(country, kind)
    if number is None:
        return None
    return str(phonenumbers.format_number(number, PhoneNumberFormat.E164))


def check_number(number: str, policy: Policy) -> str:
    """How the engine reads `number` (for the report)."""
    dest = classify_user(number.encode(), policy.fraud.home_country, "")
    return "not a number" if dest is None else f"{dest.where()}"


__all__ += [
    "BLOCKING",
    "avoid_networks",
    "by_id",
    "check_number",
    "country_source",
    "sources_needed",
]
