"""Policies for the drill tests: the shipped default (addresses and storage replaced, see
tests/detect/__init__.py) plus what a drill needs to stage every attack: a geo override that
puts one loopback source in a refused country, a country rule that refuses it, and quiet hours
that cover now."""

from __future__ import annotations

import datetime
from typing import Final

import yaml

from tests.detect import policy_from_default

COUNTRY_SOURCE: Final = "127.0.0.66"
TEST_ACCOUNT: Final = ("drilltest", "drill-secret-42")


def _set(text: str, key: str, snippet: str) -> str:
    """`text` with the top-level `key` replaced by (or given) the YAML value in `snippet`."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    value = yaml.compose(snippet, Loader=yaml.SafeLoader)
    assert isinstance(root, yaml.MappingNode) and value is not None
    pairs = [p for p in root.value if not (isinstance(p[0], yaml.ScalarNode) and p[0].value == key)]
    pairs.append((yaml.ScalarNode("tag:yaml.org,2002:str", key), value))
    root.value = pairs
    out: str = yaml.serialize(root, Dumper=yaml.SafeDumper, width=100)
    return out


def quiet_hours_now(now: datetime.datetime) -> str:
    """Quiet hours (UTC) from an hour before `now` to two hours after."""
    start = (now - datetime.timedelta(hours=1)).strftime("%H:00")
    end = (now + datetime.timedelta(hours=2)).strftime("%H:00")
    return f'{{from: "{start}", to: "{end}", timezone: UTC, international: alert}}'


def drill_policy(upstream: str, *, weakened: bool = False) -> str:
    """The default policy for a drill. `weakened`: the User-Agent rule gone and brute-force
    detection effectively off (auth.failures 1000)."""
    text = policy_from_default(upstream, drop_user_agent_rules=weakened)
    text = _set(
        text,
        "geo",
        f"{{database: builtin, max_age_days: 3650, unknown_country: allow, "
        f"overrides: {{{COUNTRY_SOURCE}/32: CN}}}}",
    )
    rules = (
        []
        if weakened
        else [
            "{name: sip-scanners, match: {user_agent: [friendly-scanner, sipvicious, sipcli]}, "
            "action: ban, ban: 24h}"
        ]
    )
    rules.append("{name: foreign-sources, match: {country: {not: [NL, BE, LU, DE]}}, action: drop}")
    text = _set(text, "rules", "[" + ", ".join(rules) + "]")
    fraud = yaml.compose(text, Loader=yaml.SafeLoader)
    assert fraud is not None
    now = datetime.datetime.now(datetime.UTC)
    text = _set(
        text,
        "fraud",
        "{home_country: NL, outside_line_prefix: '0', destinations: {allow: [NL, BE, LU, DE, "
        "FR, GB], deny_types: [premium_rate, shared_cost, satellite, international_network], "
        "action: reject}, per_account: {concurrent_calls: 8, calls_per_minute: 10, "
        f"calls_per_hour: 120, action: reject}}, quiet_hours: {quiet_hours_now(now)}}}",
    )
    if weakened:
        text = _set(
            text,
            "auth",
            "{failures: 1000, within: 10m, ban: 1h, per_account: "
            "{failures: 20, within: 1h, action: alert}}",
        )
    return text
