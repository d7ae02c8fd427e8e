"""Every example policy in policies/examples/ loads, and says what its market needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sipguard.policy import NumberType, Policy, load_policy_file

EXAMPLES = sorted((Path(__file__).parents[2] / "policies" / "examples").glob("*.yaml"))

#: file stem -> (home country, outside-line prefix, the home country's quiet-hours zone)
MARKETS = {
    "belgium": ("BE", "0", "Europe/Brussels"),
    "germany": ("DE", "0", "Europe/Berlin"),
    "uk": ("GB", "9", "Europe/London"),
    "us": ("US", "9", "America/New_York"),
}


def test_there_are_examples_for_the_markets() -> None:
    assert {p.stem for p in EXAMPLES} >= set(MARKETS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_loads(path: Path) -> None:
    policy = load_policy_file(path)
    assert isinstance(policy, Policy)
    fraud = policy.fraud
    assert fraud.home_country is not None
    assert fraud.destinations.allow is not None
    assert fraud.home_country in fraud.destinations.allow
    assert {NumberType.PREMIUM_RATE, NumberType.SATELLITE} <= fraud.destinations.deny_types
    assert fraud.quiet_hours is not None
    assert fraud.spikes is not None
    expected = MARKETS.get(path.stem)
    if expected is not None:
        home, prefix, zone = expected
        assert (fraud.home_country, fraud.outside_line_prefix) == (home, prefix)
        assert fraud.quiet_hours.timezone == zone
        assert policy.logins.timezone == zone


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_sipguard_check_accepts_the_example(path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sipguard", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_commented_for_the_noc(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# Example policy for a customer PBX in")
    assert sum(line.lstrip().startswith("#") for line in lines) >= 20
    assert "CHANGE" in path.read_text(encoding="utf-8")
