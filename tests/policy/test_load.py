"""Loading policies: the DESIGN example, every section, YAML 1.1 traps, locations, all-at-once."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
from ipaddress import ip_network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipguard.policy import (
    DEFAULT_LISTEN,
    AccountAction,
    AuthSpec,
    BanSpec,
    CountryMatch,
    Endpoint,
    Exceed,
    FileSink,
    FraudAction,
    GeoSpec,
    HostPort,
    Location,
    NetworkMatch,
    NumberType,
    PerAccountAuth,
    Policy,
    PolicyError,
    PolicyIssue,
    Rate,
    RuleAction,
    Severity,
    SyslogFormat,
    SyslogSink,
    Transport,
    UnknownCountry,
    WebhookSink,
    load_policy_file,
    load_policy_text,
)

HERE = Path(__file__).parent
UP = "upstream: udp://10.0.0.5:5060\n"

# DESIGN.md section 4, verbatim. It must keep loading without a single issue.
DESIGN_EXAMPLE = """\
listen: [udp://0.0.0.0:5060, tcp://0.0.0.0:5060]
upstream: udp://10.0.0.5:5060            # the PBX
geo: {database: builtin, overrides: {198.51.100.0/24: NL}}   # or a GeoLite2/GeoIP2/DB-IP country .mmdb
trusted: [192.0.2.0/28]                   # carriers, the PBX, the NOC
rules:                                    # first match wins
  - {name: scanners, match: {user_agent: [friendly-scanner, sipvicious, sipcli]}, action: ban, ban: 24h}
  - {name: benelux-only-registrations, match: {method: REGISTER, country: {not: [NL, BE, LU]}}, action: drop}
limits:
  REGISTER: {rate: 10/min, burst: 20, exceed: drop, ban_after: 3}
  INVITE:   {rate: 30/min, burst: 10, exceed: reject}
auth: {failures: 5, within: 10m, ban: 1h, per_account: {failures: 20, within: 1h, action: alert}}
bans: {escalation: 2.0, max: 30d}
fraud:
  home_country: NL
  destinations: {allow: [NL, BE, DE, FR, GB], deny_types: [premium_rate, shared_cost, satellite]}
  per_account: {concurrent_calls: 4, calls_per_hour: 60}
  quiet_hours: {from: "22:00", to: "07:00", timezone: Europe/Amsterdam, international: alert}
storage: sqlite:///var/lib/sipguard/sipguard.db
alerts: [{webhook: "https://noc.example.net/hook", min_severity: warning}, {syslog: "udp://127.0.0.1:514", format: cef}]
metrics: 127.0.0.1:9460
"""  # noqa: E501


def load(text: str, path: str = "/etc/sipguard/site.yaml") -> Policy:
    return load_policy_text(text, path)


def issues(text: str) -> list[str]:
    """The `line:col: message` of every issue, in the order they are reported."""
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, "p.yaml")
    return [f"{i.location.line}:{i.location.column}: {i.message}" for i in info.value.issues]


# ------------------------------------------------------------------------------ the DESIGN example


def test_design_example_loads_without_issues() -> None:
    assert (HERE / "good" / "design_example.yaml").read_text(encoding="utf-8") == DESIGN_EXAMPLE
    p = load(DESIGN_EXAMPLE)
    assert p.listen == DEFAULT_LISTEN
    assert p.upstream == Endpoint(Transport.UDP, "10.0.0.5", 5060)
    assert p.geo == GeoSpec(overrides=((ip_network("198.51.100.0/24"), "NL"),))
    assert p.trusted == (ip_network("192.0.2.0/28"),)
    scanners, benelux = p.rules
    assert (scanners.name, scanners.action, scanners.ban) == ("scanners", RuleAction.BAN, 86400.0)
    assert scanners.match.user_agent is not None
    assert scanners.match.user_agent.search(b"User-Agent: Friendly-Scanner 1.0")
    assert benelux.action is RuleAction.DROP
    assert benelux.match.method == frozenset({"REGISTER"})
    assert benelux.match.country == CountryMatch(exclude=frozenset({"NL", "BE", "LU"}))
    register = p.limits.register
    assert register is not None
    assert (register.rate, register.burst, register.exceed) == (Rate(10, 60.0), 20, Exceed.DROP)
    assert (register.ban_after, register.within, register.ban) == (3, 600.0, 3600.0)
    invite = p.limits.invite
    assert invite is not None
    assert (invite.burst, invite.exceed, invite.ban_after) == (10, Exceed.REJECT, None)
    assert p.limits.options is None
    assert p.auth == AuthSpec(5, 600.0, 3600.0, PerAccountAuth(20, 3600.0, AccountAction.ALERT))
    assert p.bans == BanSpec(default=3600.0, escalation=2.0, max=30 * 86400.0, jitter=0.0)
    assert p.fraud.home_country == "NL"
    assert p.fraud.destinations.allow == frozenset({"NL", "BE", "DE", "FR", "GB"})
    assert p.fraud.destinations.deny_types == frozenset(
        {NumberType.PREMIUM_RATE, NumberType.SHARED_COST, NumberType.SATELLITE}
    )
    assert p.fraud.per_account.concurrent_calls == 4
    assert p.fraud.per_account.calls_per_hour == 60
    assert p.fraud.per_account.calls_per_minute is None
    quiet = p.fraud.quiet_hours
    assert quiet is not None
    assert (quiet.start, quiet.end) == (datetime.time(22, 0), datetime.time(7, 0))
    assert (quiet.timezone, quiet.international) == ("Europe/Amsterdam", FraudAction.ALERT)
    assert p.storage_path == "/var/lib/sipguard/sipguard.db"
    assert p.control_path == "/var/lib/sipguard/sipguard.sock"
    assert p.alerts == (
        WebhookSink("https://noc.example.net/hook", Severity.WARNING),
        SyslogSink(Endpoint(Transport.UDP, "127.0.0.1", 514), SyslogFormat.CEF),
    )
    assert p.metrics == HostPort("127.0.0.1", 9460)


def test_design_example_is_the_one_in_design_md() -> None:
    """Where shared/DESIGN.md sits beside the checkout, the copy above must still match it."""
    design = HERE.parents[2] / "shared" / "DESIGN.md"
    if not design.is_file():
        return
    section = design.read_text(encoding="utf-8").split("## 4.", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert block == DESIGN_EXAMPLE


def test_good_policies_load() -> None:
    for path in sorted((HERE / "good").glob("*.yaml")):
        assert isinstance(load_policy_file(path), Policy), path


def test_full_example_sets_every_section() -> None:
    p = load_policy_file(HERE / "good" / "full.yaml")
    base = str(HERE)
    assert p.storage_path == f"{base}/var/sipguard.db"
    assert p.control_path == f"{base}/var/sipguard.sock"
    assert p.geo.database == f"{base}/good/GeoLite2-Country.mmdb"
    assert p.geo.unknown_country is UnknownCountry.DROP
    assert p.geo.overrides[1] == (ip_network("2001:db8:2::/48"), "NO")
    assert p.inside == Endpoint(Transport.UDP, "10.0.0.1", 5070)
    assert p.listen[2] == Endpoint(Transport.UDP, "2001:db8::10", 5060)
    assert [r.name for r in p.rules] == [
        "scanners",
        "scanner-regex",
        "noc-only-options",
        "benelux-only-registrations",
        "watch-admin-accounts",
        "internal-net",
    ]
    assert p.limits.ipv6_prefix == 56
    assert set(p.limits.by_class()) == {"REGISTER", "INVITE", "OPTIONS", "other", "global"}
    assert p.auth.per_account == PerAccountAuth(20, 3600.0, AccountAction.BLOCK)
    assert p.bans.jitter == 30.0
    assert p.fraud.outside_line_prefix == "0"
    assert p.fraud.per_account.action is FraudAction.ALERT
    assert p.alerts[0] == WebhookSink(
        "https://noc.example.net/hook", Severity.WARNING, secret="change-me"
    )
    assert p.alerts[2] == SyslogSink(Endpoint(Transport.TCP, "syslog.example.net", 6514))
    assert p.alerts[3] == FileSink(f"{base}/var/alerts.jsonl", Severity.INFO)


# ------------------------------------------------------------------------------------ defaults


def test_minimal_policy_takes_every_default() -> None:
    p = load(UP)
    assert p.listen == (
        Endpoint(Transport.UDP, "0.0.0.0", 5060),
        Endpoint(Transport.TCP, "0.0.0.0", 5060),
    )
    assert p.inside is None
    assert p.trusted == ()
    assert p.storage_path == "/var/lib/sipguard/sipguard.db"
    assert p.control_path == "/var/lib/sipguard/sipguard.sock"
    assert p.geo == GeoSpec("builtin", (), 45, UnknownCountry.ALLOW)
    assert p.rules == ()
    assert p.limits.by_class() == {}
    assert p.limits.ipv6_prefix == 64
    assert p.auth == AuthSpec(5, 600.0, 3600.0, PerAccountAuth(20, 3600.0, AccountAction.ALERT))
    assert p.bans == BanSpec(3600.0, 2.0, 30 * 86400.0, 0.0)
    assert p.fraud.home_country is None
    assert p.fraud.destinations.allow is None
    assert p.fraud.destinations.deny_types == frozenset(
        {NumberType.PREMIUM_RATE, NumberType.SATELLITE}
    )
    assert p.fraud.quiet_hours is None
    assert p.alerts == ()
    assert p.metrics is None
    assert p.source_path == "/etc/sipguard/site.yaml"
    assert p.source_sha256 == hashlib.sha256(UP.encode()).hexdigest()


def test_bans_default_flows_into_rules_limits_and_auth() -> None:
    p = load(
        UP
        + "bans: {default: 2h}\n"
        + "rules: [{name: r, match: {method: INVITE}, action: ban}]\n"
        + "limits: {REGISTER: {rate: 1/s, ban_after: 2}}\n"
    )
    assert p.rules[0].ban == 7200.0
    assert p.limits.register is not None
    assert p.limits.register.ban == 7200.0
    assert p.auth.ban == 7200.0
    assert load(UP + "bans: {default: 2h}\nauth: {failures: 3}\n").auth.ban == 7200.0


def test_policy_is_frozen() -> None:
    p = load(UP)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.upstream = p.upstream  # type: ignore[misc]


# ------------------------------------------------------------------------------ YAML 1.1 traps


def test_no_stays_norway_everywhere() -> None:
    p = load(
        UP
        + "geo: {overrides: {192.0.2.0/24: NO}}\n"
        + "rules:\n"
        + "  - {name: a, match: {country: NO}, action: drop}\n"
        + "  - {name: b, match: {country: [NO, SE]}, action: drop}\n"
        + "  - {name: c, match: {country: {in: [NO], not: [SE]}}, action: alert}\n"
        + "fraud: {home_country: NO, destinations: {allow: [NO]}}\n"
    )
    assert p.geo.overrides == ((ip_network("192.0.2.0/24"), "NO"),)
    assert p.rules[0].match.country == CountryMatch(include=frozenset({"NO"}))
    assert p.rules[1].match.country == CountryMatch(include=frozenset({"NO", "SE"}))
    assert p.rules[2].match.country == CountryMatch(frozenset({"NO"}), frozenset({"SE"}))
    assert p.fraud.home_country == "NO"
    assert p.fraud.destinations.allow == frozenset({"NO"})


def test_sexagesimal_and_octal_are_not_numbers() -> None:
    assert issues(UP + "auth: {within: 1:30}\n") == [
        "2:16: not a duration: '1:30' (use e.g. 30s, 10m, 1h, 7d)"
    ]
    p = load(UP + "limits: {REGISTER: {rate: 10/min, burst: 0755, ban_after: 010}}\n")
    assert p.limits.register is not None
    assert (p.limits.register.burst, p.limits.register.ban_after) == (755, 10)
    quiet = load(
        UP + "fraud: {home_country: NL, quiet_hours: {from: 22:00, to: 7:00, timezone: UTC}}\n"
    ).fraud.quiet_hours
    assert quiet is not None
    assert (quiet.start, quiet.end) == (datetime.time(22, 0), datetime.time(7, 0))


def test_strings_keep_their_raw_text() -> None:
    p = load(
        UP + "rules: [{name: a, match: {account: [1001, yes, 0755, 1e3, '~']}, "
        "action: alert}]\nfraud: {home_country: NL, outside_line_prefix: 0}\n"
    )
    assert p.rules[0].match.account == frozenset({"1001", "yes", "0755", "1e3", "~"})
    assert p.fraud.outside_line_prefix == "0"


def test_null_is_never_a_value() -> None:
    assert issues(UP + "inside:\nmetrics: ~\n") == [
        "2:8: expected a string, got nothing",
        "3:10: expected a string, got nothing",
    ]


def test_duplicate_keys_are_errors_at_every_level() -> None:
    text = UP + "bans: {default: 1h, default: 2h}\nrules: []\nrules: []\n"
    assert issues(text) == [
        "2:21: duplicate key 'default'",
        "4:1: duplicate key 'rules'",
    ]
    assert issues("upstream: udp://10.0.0.5:5060\nupstream: udp://10.0.0.6:5060\n") == [
        "2:1: duplicate key 'upstream'"
    ]


def test_quoted_duplicate_is_still_a_duplicate() -> None:
    assert issues(UP + 'geo: {overrides: {192.0.2.0/24: NL, "192.0.2.0/24": BE}}\n') == [
        "2:37: duplicate network '192.0.2.0/24' (first at 2:19)"
    ]


def test_aliases_work_and_report_once() -> None:
    p = load(
        UP
        + "rules:\n"
        + "  - {name: a, match: {country: &benelux [NL, BE, LU]}, action: allow}\n"
        + "  - {name: b, match: {country: {not: *benelux}}, action: drop}\n"
    )
    assert p.rules[1].match.country == CountryMatch(exclude=frozenset({"NL", "BE", "LU"}))
    assert issues(
        UP
        + "rules:\n"
        + "  - {name: a, match: {country: &bad [usa]}, action: allow}\n"
        + "  - {name: b, match: {country: *bad}, action: drop}\n"
    ) == ["3:38: not a country code: 'usa'"]


# --------------------------------------------------------------------------- syntax and shape


def test_yaml_syntax_error_has_its_location() -> None:
    assert issues(UP + "trusted: [192.0.2.0/28\nbans: {}\n") == [
        "3:5: expected ',' or ']', but got ':' (while parsing a flow sequence at 2:10)"
    ]
    assert issues("upstream: udp://10.0.0.5:5060\n\tbans: {}\n") == [
        "2:1: found character '\\t' that cannot start any token (while scanning for the next token)"
    ]


def test_byte_order_mark_crlf_and_deep_nesting() -> None:
    assert load("\ufeff" + UP).upstream.port == 5060
    assert issues(UP.replace("\n", "\r\n") + "bans: {max: 1x}\r\n") == [
        "2:13: not a duration: '1x' (use e.g. 30s, 10m, 1h, 7d)"
    ]
    assert issues(UP + "rules: " + "[" * 5000 + "\n") == ["1:1: nested too deeply"]


def test_several_documents_are_an_error() -> None:
    assert issues(UP + "---\n" + UP) == [
        "2:1: but found another document (expected a single document in the stream at 1:1)"
    ]


def test_empty_and_non_mapping_policies() -> None:
    assert issues("") == ["1:1: empty policy: 'upstream' is required"]
    assert issues("# only a comment\n") == ["1:1: empty policy: 'upstream' is required"]
    assert issues("- udp://10.0.0.5:5060\n") == ["1:1: expected a mapping, got a list"]
    assert issues("udp://10.0.0.5:5060\n") == ["1:1: expected a mapping, got 'udp://10.0.0.5:5060'"]


def test_non_string_keys_and_merge_keys() -> None:
    assert issues(UP + "? [a, b]\n: 1\n") == ["2:3: keys must be strings"]
    assert issues(UP + "base: &b {rate: 1/s}\nlimits: {INVITE: {<<: *b}}\n") == [
        "2:1: unknown key 'base' (did you mean 'bans'?)",
        "3:19: merge keys ('<<') are not supported",
    ]


def test_unknown_keys_suggest_the_closest_key() -> None:
    assert issues(UP + "rule: []\nAlerts: []\nfoo: 1\n") == [
        "2:1: unknown key 'rule' (did you mean 'rules'?)",
        "3:1: unknown key 'Alerts' (did you mean 'alerts'?)",
        "4:1: unknown key 'foo'",
    ]


def test_missing_upstream_is_reported_at_the_top_mapping() -> None:
    assert issues("# header\nlisten: [udp://0.0.0.0:5060]\n") == ["2:1: missing key 'upstream'"]


def test_all_issues_at_once_sorted_by_position() -> None:
    text = (
        "rules:\n"
        "  - {name: a, match: {country: [usa]}, action: dorp}\n"
        "upstream: udp://10.0.0.5\n"
        "limits: {INVITE: {rate: 10/fortnight}}\n"
        "bans: {default: 2d, max: 1d}\n"
    )
    assert issues(text) == [
        "2:33: not a country code: 'usa'",
        "2:48: unknown action 'dorp' (did you mean 'drop'?)",
        "3:11: missing port in 'udp://10.0.0.5' (did you mean 'udp://10.0.0.5:5060'?)",
        "4:25: not a rate: '10/fortnight' (after '/' use s, min, h, d or a duration like 10s)",
        "5:17: bans.default (2d) is longer than bans.max (1d)",
    ]


def test_policy_error_prints_like_a_compiler() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(UP + "bans: {max: forever}\nfoo: 1\n", "policies/x.yaml")
    assert str(info.value) == (
        "policies/x.yaml:2:13: not a duration: 'forever' (use e.g. 30s, 10m, 1h, 7d)\n"
        "policies/x.yaml:3:1: unknown key 'foo'"
    )
    first = info.value.issues[0]
    assert first == PolicyIssue(Location("policies/x.yaml", 2, 13), first.message)
    assert str(first.location) == "policies/x.yaml:2:13"


def test_policy_error_sorts_the_issues_it_is_given() -> None:
    late = PolicyIssue(Location("p", 9, 1), "late")
    early = PolicyIssue(Location("p", 2, 5), "early")
    assert PolicyError([late, early]).issues == (early, late)


# ---------------------------------------------------------------------------------- addresses


def test_listen_forms() -> None:
    p = load('listen: ["udp://[::1]:0", tcp://127.0.0.1:0]\n' + UP)
    assert p.listen == (Endpoint(Transport.UDP, "::1", 0), Endpoint(Transport.TCP, "127.0.0.1", 0))
    assert load("listen: udp://127.0.0.1:5062\n" + UP).listen == (
        Endpoint(Transport.UDP, "127.0.0.1", 5062),
    )
    assert issues("listen: [udp://127.0.0.1:5062, udp://127.0.0.1:5062]\n" + UP) == [
        "1:32: listed twice: 'udp://127.0.0.1:5062' (first at 1:10)"
    ]


def test_upstream_checks() -> None:
    assert issues("upstream: udp://0.0.0.0:5060\n") == [
        "1:11: upstream cannot be the unspecified address 0.0.0.0"
    ]
    assert issues("listen: [tcp://127.0.0.1:5060]\nupstream: tcp://127.0.0.1:5060\n") == [
        "2:11: upstream is sipguard's own listen address tcp://127.0.0.1:5060 (a loop)"
    ]
    # Another transport or port is not a loop.
    assert (
        load("listen: [udp://0.0.0.0:5060]\nupstream: tcp://127.0.0.1:5060\n").upstream.port == 5060
    )
    assert (
        load("listen: [udp://0.0.0.0:5060]\nupstream: udp://127.0.0.1:5080\n").upstream.port == 5080
    )


def test_inside_must_match_the_upstream() -> None:
    p = load(UP + "inside: udp://10.0.0.1:0\n")
    assert p.inside == Endpoint(Transport.UDP, "10.0.0.1", 0)
    assert issues(UP + "inside: tcp://10.0.0.1:5070\n") == [
        "2:9: inside is tcp but upstream is udp"
    ]


def test_trusted_forms() -> None:
    p = load(UP + 'trusted: [192.0.2.0/28, 198.51.100.7, "2001:db8::/32"]\n')
    assert p.trusted == (
        ip_network("192.0.2.0/28"),
        ip_network("198.51.100.7/32"),
        ip_network("2001:db8::/32"),
    )
    assert load(UP + "trusted: 192.0.2.1\n").trusted == (ip_network("192.0.2.1/32"),)
    assert load(UP + "trusted: []\n").trusted == ()


def test_metrics() -> None:
    assert load(UP + 'metrics: "[::1]:9460"\n').metrics == HostPort("::1", 9460)
    assert issues(UP + "metrics: 9460\n") == [
        "2:10: not HOST:PORT: '9460' (did you mean '127.0.0.1:9460'?)"
    ]


# ----------------------------------------------------------------------------- storage, paths


@pytest.mark.parametrize(
    ("storage", "path", "control"),
    [
        ("sqlite:///var/lib/x/sg.db", "/var/lib/x/sg.db", "/var/lib/x/sipguard.sock"),
        ("sqlite:db/sg.db", "/etc/sipguard/db/sg.db", "/etc/sipguard/db/sipguard.sock"),
        ("sqlite:../var/sg.db", "/etc/var/sg.db", "/etc/var/sipguard.sock"),
        ("sg.db", "/etc/sipguard/sg.db", "/etc/sipguard/sipguard.sock"),
        ("/srv/sg.db", "/srv/sg.db", "/srv/sipguard.sock"),
    ],
)
def test_storage_resolves_against_the_policy_file(storage: str, path: str, control: str) -> None:
    p = load(UP + f"storage: {storage}\n", "/etc/sipguard/site.yaml")
    assert (p.storage_path, p.control_path) == (path, control)


def test_relative_paths_without_a_file_stay_relative() -> None:
    p = load_policy_text(UP + "storage: sqlite:var/sg.db\n")
    assert (p.storage_path, p.control_path, p.source_path) == (
        "var/sg.db",
        "var/sipguard.sock",
        "<policy>",
    )
    p = load_policy_text(UP + "storage: sg.db\n", "x.yaml", base_dir="/opt/sg")
    assert p.storage_path == "/opt/sg/sg.db"


def test_control_path_is_its_own_setting() -> None:
    p = load(UP + "storage: /srv/sg.db\ncontrol: run/sg.sock\n", "/etc/sipguard/site.yaml")
    assert p.control_path == "/etc/sipguard/run/sg.sock"
    long_dir = "/" + "d" * 120
    assert issues(UP + f"storage: {long_dir}/sg.db\n") == [
        f"2:10: control socket path next to the store is too long (135 bytes, at most 107): "
        f"{long_dir}/sipguard.sock"
    ]


def test_paths_relative_to_the_policy_file_everywhere() -> None:
    p = load(
        UP + "geo: {database: geo/c.mmdb}\nalerts: [{file: log/alerts.jsonl}]\n",
        "/etc/sipguard/site.yaml",
    )
    assert p.geo.database == "/etc/sipguard/geo/c.mmdb"
    assert p.alerts == (FileSink("/etc/sipguard/log/alerts.jsonl"),)


# ------------------------------------------------------------------------------------- rules


def test_rule_actions_and_their_options() -> None:
    p = load(
        UP
        + "rules:\n"
        + "  - {name: r403, match: {method: OPTIONS}, action: reject}\n"
        + "  - {name: r503, match: {method: INFO}, action: reject, status: 503}\n"
        + "  - {name: b, match: {method: MESSAGE}, action: ban, ban: 10m}\n"
        + "  - {name: d, match: {method: PUBLISH}, action: drop}\n"
        + "  - {name: al, match: {method: NOTIFY}, action: alert}\n"
        + "  - {name: ok, match: {method: UPDATE}, action: allow}\n"
    )
    got = [(r.name, r.action, r.status, r.ban) for r in p.rules]
    assert got == [
        ("r403", RuleAction.REJECT, 403, None),
        ("r503", RuleAction.REJECT, 503, None),
        ("b", RuleAction.BAN, None, 600.0),
        ("d", RuleAction.DROP, None, None),
        ("al", RuleAction.ALERT, None, None),
        ("ok", RuleAction.ALLOW, None, None),
    ]


def test_a_rule_without_match_matches_everything_and_must_be_last() -> None:
    p = load(
        UP + "rules:\n  - {name: a, match: {method: INVITE}, action: allow}\n"
        "  - {name: rest, action: drop}\n"
    )
    assert p.rules[1].match.is_catch_all
    assert not p.rules[0].match.is_catch_all


def test_match_conditions() -> None:
    p = load(
        UP
        + "rules:\n"
        + "  - name: all-of-them\n"
        + "    match:\n"
        + "      method: [INVITE, REGISTER]\n"
        + "      country: {in: [NL, BE], not: [LU]}\n"
        + "      network: [10.0.0.0/8, '2001:db8::/32']\n"
        + "      user_agent: VaxSIPUserAgent\n"
        + "      account: [1001, alice]\n"
        + "      transport: tcp\n"
        + "    action: drop\n"
        + "  - {name: net-not, match: {network: {not: [192.0.2.0/24]}}, action: drop}\n"
        + "  - {name: country-one, match: {country: CN}, action: drop}\n"
        + "  - {name: method-one, match: {method: BYE}, action: drop}\n"
    )
    m = p.rules[0].match
    assert m.method == frozenset({"INVITE", "REGISTER"})
    assert m.country == CountryMatch(frozenset({"NL", "BE"}), frozenset({"LU"}))
    assert m.network == NetworkMatch((ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")))
    assert m.user_agent is not None
    assert m.user_agent.search(b"vaxsipuseragent/3.1")
    assert m.account == frozenset({"1001", "alice"})
    assert m.transport is Transport.TCP
    assert p.rules[1].match.network == NetworkMatch(exclude=(ip_network("192.0.2.0/24"),))
    assert p.rules[2].match.country == CountryMatch(include=frozenset({"CN"}))
    assert p.rules[3].match.method == frozenset({"BYE"})


def test_user_agent_substrings_are_literal_bytes_ignoring_case() -> None:
    p = load(
        UP + "rules: [{name: s, match: {user_agent: ['sip.cli', 'a|b', 'ünï']}, action: ban}]\n"
    )
    pattern = p.rules[0].match.user_agent
    assert pattern is not None
    assert isinstance(pattern, re.Pattern)
    assert pattern.flags & re.IGNORECASE
    assert pattern.search(b"SIP.CLI 1.0")
    assert not pattern.search(b"sipxcli")
    assert pattern.search(b"x a|b y")
    assert not pattern.search(b"a")
    assert pattern.search("ünï".encode())


def test_user_agent_regex_is_compiled_for_bytes() -> None:
    p = load(
        UP + "rules: [{name: s, match: {user_agent: {regex: '^sip(vicious|cli)'}}, action: ban}]\n"
    )
    pattern = p.rules[0].match.user_agent
    assert pattern is not None
    assert pattern.search(b"SIPvicious 0.3") and not pattern.search(b"x sipvicious")


def test_transport_rules_need_that_transport_listening() -> None:
    assert issues(
        "listen: udp://0.0.0.0:5060\n"
        + UP
        + "rules: [{name: t, match: {transport: tcp}, action: drop}]\n"
    ) == ["3:38: no tcp listen address: the rule can never match"]


def test_rules_must_be_a_list_of_mappings() -> None:
    assert issues(UP + "rules: [scanners]\n") == ["2:9: expected a mapping, got 'scanners'"]
    assert issues(UP + "rules: scanners\n") == ["2:8: expected a list, got 'scanners'"]


# -------------------------------------------------------------------------------- limits, auth


def test_limit_defaults() -> None:
    p = load(UP + "limits: {other: {rate: 5/s}, global: {rate: 100/s, exceed: reject}}\n")
    other, glob = p.limits.other, p.limits.global_
    assert other is not None and glob is not None
    assert (other.rate, other.burst, other.exceed, other.ban_after, other.ban) == (
        Rate(5, 1.0),
        5,
        Exceed.DROP,
        None,
        None,
    )
    assert (glob.burst, glob.exceed) == (100, Exceed.REJECT)
    assert p.limits.by_class() == {"other": other, "global": glob}


def test_limits_ipv6_prefix() -> None:
    assert load(UP + "limits: {ipv6_prefix: 48}\n").limits.ipv6_prefix == 48
    assert issues(UP + "limits: {ipv6_prefix: -1}\n") == ["2:23: must be at least 0: -1"]


def test_auth_per_account() -> None:
    p = load(UP + "auth: {per_account: {action: block}}\n")
    assert p.auth == AuthSpec(per_account=PerAccountAuth(action=AccountAction.BLOCK))
    assert issues(UP + "auth: {ban: 60d}\n") == ["2:13: ban 60d is longer than bans.max (30d)"]


def test_bans_section() -> None:
    p = load(UP + "bans: {default: 10m, escalation: 1, max: 7d, jitter: 30s}\n")
    assert p.bans == BanSpec(600.0, 1.0, 7 * 86400.0, 30.0)
    assert issues(UP + "bans: {default: 0s}\n") == ["2:17: must be longer than 0s: '0s'"]
    assert issues(UP + "bans: {max: 30m}\n") == [
        "2:13: bans.default (1h) is longer than bans.max (30m)"
    ]


# ------------------------------------------------------------------------------- fraud, alerts


def test_fraud_sections() -> None:
    p = load(
        UP
        + "fraud:\n"
        + "  home_country: BE\n"
        + "  destinations: {deny_types: [], action: alert}\n"
        + "  per_account: {calls_per_minute: 5}\n"
        + "  quiet_hours: {from: '23:30', to: '06:00', timezone: Europe/Brussels}\n"
        + "  outside_line_prefix: '9'\n"
    )
    f = p.fraud
    assert f.home_country == "BE"
    assert f.destinations.allow is None
    assert f.destinations.deny_types == frozenset()
    assert f.destinations.action is FraudAction.ALERT
    assert f.per_account.calls_per_minute == 5
    assert f.per_account.action is FraudAction.REJECT
    assert f.quiet_hours is not None
    assert f.quiet_hours.international is FraudAction.ALERT
    assert f.outside_line_prefix == "9"


def test_quiet_hours_required_keys() -> None:
    assert issues(UP + "fraud: {home_country: NL, quiet_hours: {from: '22:00'}}\n") == [
        "2:40: missing key 'to'",
        "2:40: missing key 'timezone'",
    ]


def test_alert_sinks() -> None:
    p = load(
        UP
        + "alerts:\n"
        + "  - {webhook: 'http://127.0.0.1:8080/x', min_severity: critical, secret: s3cret}\n"
        + "  - {syslog: 'tcp://[::1]:601', min_severity: info}\n"
        + "  - {file: /var/log/sipguard/alerts.jsonl}\n"
    )
    assert p.alerts == (
        WebhookSink("http://127.0.0.1:8080/x", Severity.CRITICAL, "s3cret"),
        SyslogSink(Endpoint(Transport.TCP, "::1", 601), SyslogFormat.RFC5424, Severity.INFO),
        FileSink("/var/log/sipguard/alerts.jsonl", Severity.WARNING),
    )
    assert load(UP + "alerts: []\n").alerts == ()
    assert issues(UP + "alerts: [{syslog: 'udp://127.0.0.1:0'}]\n") == [
        "2:19: port 0 is not a destination: 'udp://127.0.0.1:0'"
    ]


def test_severity_levels_are_ordered() -> None:
    assert [s.level for s in Severity] == [0, 1, 2, 3, 4]
    assert Severity.ERROR.level > Severity.WARNING.level


# ---------------------------------------------------------------------------------------- files


def test_load_policy_file_reads_the_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(UP.encode() + b"storage: sqlite:db/sg.db\n")
    p = load_policy_file(path)
    assert p.source_path == str(path)
    assert p.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert p.storage_path == str(tmp_path / "db" / "sg.db")
    assert load_policy_file(str(path)) == p


def test_unreadable_and_non_utf8_files_are_policy_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy_file(missing)
    assert [str(i) for i in info.value.issues] == [
        f"{missing}:1:1: cannot read: No such file or directory"
    ]
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(UP.encode() + b"# caf\xe9\n")
    with pytest.raises(PolicyError) as info:
        load_policy_file(latin1)
    assert [str(i) for i in info.value.issues] == [f"{latin1}:2:6: not UTF-8 text"]


def test_errors_name_the_file_as_given(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(UP + "bans: {max: 1x}\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy_file(path)
    assert str(info.value) == f"{path}:2:13: not a duration: '1x' (use e.g. 30s, 10m, 1h, 7d)"


# ------------------------------------------------------------------------------ never crashes

_ALPHABET = st.sampled_from([*"abNOLudp:/.[]{},-#'\"0123456789 \n\t&*!|>?@%", "\x00"])


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(_ALPHABET, max_size=200))
def test_any_text_gives_a_policy_or_a_policy_error(text: str) -> None:
    try:
        load_policy_text(text)
    except PolicyError as exc:
        assert exc.issues
        assert all(i.location.line >= 1 and i.location.column >= 1 for i in exc.issues)


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.data())
def test_mutated_design_example_gives_a_policy_or_a_policy_error(data: st.DataObject) -> None:
    text = DESIGN_EXAMPLE
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text) - 1))
        new = data.draw(
            st.sampled_from(["", " ", "\n", ":", "[", "]", "{", "}", ",", "x", "0", "-"])
        )
        text = text[:at] + new + text[at + 1 :]
    try:
        load_policy_text(text)
    except PolicyError as exc:
        assert exc.issues


# ---------------------------------------------------------------------------- reader corners


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("geo: {overrides: {}}\n", ["2:18: empty mapping"]),
        (
            "geo: {overrides: [192.0.2.0/24]}\n",
            ["2:18: expected a mapping of CIDR: country, got a list"],
        ),
        ("geo: {overrides: {192.0.2.0/24: [NL]}}\n", ["2:33: expected a string, got a list"]),
        ("limits: {ipv6_prefix: 1234567890123}\n", ["2:23: integer too large: 1234567890123"]),
        ("bans: {escalation: 1000.5}\n", ["2:20: must be at most 1000: 1000.5"]),
        ("bans: {escalation: " + "1" * 30 + "}\n", ["2:20: number too large: " + "1" * 30]),
        ("bans: {escalation: [2]}\n", ["2:20: expected a number, got a list"]),
        ("rules: [{name: {a: b}, action: drop}]\n", ["2:16: expected a string, got a mapping"]),
        (
            "rules: [{name: '  ', match: {account: ' '}, action: drop}]\n",
            [
                "2:16: not a rule name: '  ' (letters, digits, '-', '_', '.', ':'; at most 64)",
                "2:39: empty string",
            ],
        ),
        ('alerts: [{file: "a\\0b"}]\n', ["2:17: path contains a NUL character"]),
        ("alerts: {file: x}\n", ["2:9: expected a list, got a mapping"]),
        (
            "fraud: {per_account: {concurrent_calls: 1, calls_per_hour: 5, extra: 1}}\n",
            ["2:63: unknown key 'extra'"],
        ),
        (
            "geo: {unknown_country: Allow}\n",
            ["2:24: unknown value 'Allow' (did you mean 'allow'?)"],
        ),
    ],
)
def test_reader_corners(text: str, expected: list[str]) -> None:
    assert issues(UP + text) == expected
