"""Per-account concurrent calls with real SIPp calls through sipguard: the 5th call of an account
limited to 4 is refused with 403; once one of the four ends, a new call goes through."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers.sipp import SippConfig, run, start
from tests.proxy.guard import policy_text, running_guard
from tests.proxy.stub import wait_until

pytestmark = [pytest.mark.peers, pytest.mark.integration, pytest.mark.timeout(90)]

FRAUD = """fraud:
  home_country: NL
  per_account: {concurrent_calls: 4}
"""
NUMBER = "+31201234567"  # an ordinary Amsterdam number: only the concurrency limit can refuse it
ACCOUNT = "sipp"  # the From user of uac_call.xml


def test_fifth_concurrent_call_is_refused_and_a_later_one_allowed(
    tmp_path: Path, sipp_bin: str
) -> None:
    with start(tmp_path, SippConfig(scenario="uas_call.xml", label="uas"), binary=sipp_bin) as uas:
        upstream = f"udp://{uas.address[0]}:{uas.address[1]}"
        with running_guard(policy_text(upstream, extra=FRAUD), tmp_path) as guard:
            engine = guard.info.engine

            def call(calls: int, duration_ms: int, label: str) -> SippConfig:
                return SippConfig(
                    scenario="uac_call.xml",
                    remote=guard.outside("udp"),
                    service=NUMBER,
                    calls=calls,
                    rate=100,
                    duration_ms=duration_ms,
                    timeout_s=30,
                    label=label,
                )

            four = start(tmp_path, call(4, 3000, "four"), binary=sipp_bin)
            assert wait_until(lambda: engine.calls_in_progress(ACCOUNT) == 4, 10.0)
            fifth = run(tmp_path, call(1, 100, "fifth"), binary=sipp_bin)
            assert fifth.failed == 1 and fifth.successful == 0, fifth.describe()
            assert guard.count("outside", "INVITE", "reject") == 1
            done = four.wait(30)
            assert done.ok and done.successful == 4, done.describe()
            assert wait_until(lambda: engine.calls_in_progress(ACCOUNT) == 0, 5.0)
            later = run(tmp_path, call(1, 100, "later"), binary=sipp_bin)
            assert later.ok and later.successful == 1, later.describe()
