"""The detection keys added with issue 5: `fraud.spikes`, `auth.known_sources`, `enumeration`,
`logins`: defaults, every key read, ranges, and what the schema says about them."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipguard.policy import (
    EnumerationAction,
    EnumerationPolicy,
    FraudAction,
    KnownSources,
    LoginCheck,
    LoginPolicy,
    Spikes,
    load_policy_file,
    load_policy_text,
)
from sipguard.policy.schema import policy_schema
from tests.policy.test_schema import as_data, validate

HERE = Path(__file__).parent
UP = "upstream: udp://10.0.0.5:5060\n"


def issues(text: str) -> list[str]:
    from sipguard.policy import PolicyError

    with pytest.raises(PolicyError) as info:
        load_policy_text(text, "site.yaml")
    return [f"{i.location.line}:{i.location.column}: {i.message}" for i in info.value.issues]


def test_defaults_when_absent() -> None:
    p = load_policy_text(UP)
    assert p.fraud.spikes is None  # optional: absent = off
    assert p.auth.known_sources == KnownSources(86400.0, 3)
    assert p.enumeration == EnumerationPolicy(10, 60.0, 86400.0, EnumerationAction.BAN)
    assert p.logins == LoginPolicy(LoginCheck.ALERT, LoginCheck.ALERT, "UTC", 5)


def test_empty_mappings_turn_on_the_defaults() -> None:
    p = load_policy_text(UP + "fraud: {spikes: {}}\nenumeration: {}\nlogins: {}\n")
    assert p.fraud.spikes == Spikes(300.0, 4.0, 20, 0.3, FraudAction.ALERT)
    assert p.enumeration == EnumerationPolicy()
    assert p.logins == LoginPolicy()


def test_full_example_sets_the_detection_keys() -> None:
    p = load_policy_file(HERE / "good" / "full.yaml")
    assert p.fraud.spikes == Spikes(900.0, 3.0, 30, 0.2, FraudAction.REJECT)
    assert p.auth.known_sources == KnownSources(7 * 86400.0, 5)
    assert p.enumeration == EnumerationPolicy(20, 300.0, 7 * 86400.0, EnumerationAction.BAN)
    assert p.logins == LoginPolicy(LoginCheck.ALERT, LoginCheck.OFF, "Europe/Amsterdam", 10)


def test_soften_enumeration_and_switch_login_checks_off() -> None:
    p = load_policy_text(UP + "enumeration: {action: alert}\nlogins: {new_country: off}\n")
    assert p.enumeration.action is EnumerationAction.ALERT
    assert p.logins.new_country is LoginCheck.OFF  # `off` is read as written, not YAML 1.1 False
    assert p.logins.new_hour is LoginCheck.ALERT


def test_enumeration_ban_default_is_not_checked_against_a_short_bans_max() -> None:
    # The default 24h is capped by the ban table; only a written `ban` must fit `bans.max`.
    p = load_policy_text(UP + "bans: {default: 1h, max: 12h}\n")
    assert p.enumeration.ban == 86400.0
    assert issues(UP + "bans: {max: 12h}\nenumeration: {ban: 13h}\n") == [
        "3:20: ban 13h is longer than bans.max (12h)"
    ]


@pytest.mark.parametrize(
    ("spikes", "message"),
    [
        ("{factor: 1.0}", "must be greater than 1: 1.0"),
        ("{factor: 1001}", "must be at most 1000: 1001"),
        ("{alpha: 0.0}", "must be greater than 0: 0.0"),
        ("{alpha: 1.01}", "must be at most 1: 1.01"),
        ("{interval: 59s}", "must be from 1m to 1d: '59s'"),
        ("{interval: 25h}", "must be from 1m to 1d: '25h'"),
        ("{min_calls: 0}", "must be at least 1: 0"),
        ("{action: drop}", "unknown action 'drop' (expected one of: alert, reject)"),
    ],
)
def test_spike_ranges(spikes: str, message: str) -> None:
    got = issues(UP + f"fraud: {{spikes: {spikes}}}\n")
    assert [g.split(": ", 1)[1] for g in got] == [message]


def test_spike_bounds_are_accepted() -> None:
    p = load_policy_text(UP + "fraud: {spikes: {factor: 1.01, alpha: 1, interval: 1m}}\n")
    assert p.fraud.spikes == Spikes(60.0, 1.01, 20, 1.0)
    p = load_policy_text(UP + "fraud: {spikes: {interval: 1d, alpha: 0.01}}\n")
    assert p.fraud.spikes is not None
    assert p.fraud.spikes.interval == 86400.0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("fraud: {spikes: {factor: 1}}\n", "$.fraud.spikes.factor: not above 1"),
        ("fraud: {spikes: {alpha: 0}}\n", "$.fraud.spikes.alpha: not above 0"),
        ("fraud: {spikes: {alpha: 2}}\n", "$.fraud.spikes.alpha: above 1"),
        ("enumeration: {action: block}\n", "$.enumeration.action"),
        ("logins: {new_hour: false}\n", "$.logins.new_hour"),
        ("auth: {known_sources: {distinct_accounts: 0}}\n", "distinct_accounts: below 1"),
    ],
)
def test_schema_refuses_what_the_loader_refuses(text: str, needle: str) -> None:
    schema = policy_schema()
    errors = validate(as_data(UP + text), schema, schema)
    assert any(needle in e for e in errors), errors


def test_schema_describes_the_new_keys() -> None:
    defs = policy_schema()["$defs"]
    assert defs["Spikes"]["properties"]["factor"]["exclusiveMinimum"] == 1
    assert defs["Spikes"]["properties"]["interval"]["default"] == "5m"
    assert defs["KnownSources"]["properties"]["memory"]["default"] == "24h"
    assert defs["EnumerationPolicy"]["properties"]["action"]["enum"] == ["ban", "alert"]
    assert defs["LoginPolicy"]["properties"]["new_country"]["enum"] == ["alert", "off"]
    top = policy_schema()["properties"]
    assert {"enumeration", "logins"} <= set(top)
