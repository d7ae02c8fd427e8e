"""SIPp UAC -> sipguard -> SIPp UAS: whole calls through the running proxy over UDP, TCP and
both."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers.sipp import SippConfig, SippResult, Transport, run, start
from tests.proxy.guard import GuardHandle, policy_text, running_guard

pytestmark = [pytest.mark.peers, pytest.mark.integration, pytest.mark.timeout(120)]

CALLS = 1000
RATE = 250  # calls/s: 1,000 calls in about 4 s, well inside what one sipguard process sustains


def _calls_through_guard(
    tmp_path: Path,
    sipp_bin: str,
    *,
    client: Transport,
    server: Transport,
    uac_scenario: str = "uac_call.xml",
    uas_scenario: str = "uas_call.xml",
    calls: int = CALLS,
    rate: float = RATE,
) -> tuple[SippResult, SippResult, GuardHandle]:
    uas_config = SippConfig(scenario=uas_scenario, transport=server, timeout_s=60, label="uas")
    with start(tmp_path, uas_config, binary=sipp_bin) as uas:
        scheme = "tcp" if server.startswith("t") else "udp"
        upstream = f"{scheme}://{uas.address[0]}:{uas.address[1]}"
        with running_guard(policy_text(upstream), tmp_path) as guard:
            outside = guard.outside("tcp" if client.startswith("t") else "udp")
            uac = run(
                tmp_path,
                SippConfig(
                    scenario=uac_scenario,
                    remote=outside,
                    transport=client,
                    service="bob",
                    calls=calls,
                    rate=rate,
                    timeout_s=60,
                    label="uac",
                ),
                binary=sipp_bin,
            )
            uas_result = uas.stop()
    return uac, uas_result, guard


def _assert_all_calls_through(uac: SippResult, uas: SippResult, guard: GuardHandle, n: int) -> None:
    assert uac.ok, uac.describe()
    assert (uac.successful, uac.failed, uac.unexpected) == (n, 0, 0), uac.describe()
    assert uas.returncode == 0, uas.describe()
    assert uas.stats is not None and uas.stats.failed == 0, uas.describe()
    # the in-dialog requests followed the Record-Route through sipguard, not around it
    for method in ("INVITE", "ACK", "BYE"):
        assert guard.count("outside", method, "forward") >= n, method
    assert guard.count("inside", "response", "forward") >= 3 * n  # 180, 200 and 200 to BYE


def test_1000_calls_over_udp(tmp_path: Path, sipp_bin: str) -> None:
    uac, uas, guard = _calls_through_guard(tmp_path, sipp_bin, client="u1", server="u1")
    _assert_all_calls_through(uac, uas, guard, CALLS)


def test_1000_calls_with_tcp_clients(tmp_path: Path, sipp_bin: str) -> None:
    uac, uas, guard = _calls_through_guard(tmp_path, sipp_bin, client="t1", server="u1")
    _assert_all_calls_through(uac, uas, guard, CALLS)


def test_1000_calls_udp_outside_tcp_to_the_upstream(tmp_path: Path, sipp_bin: str) -> None:
    uac, uas, guard = _calls_through_guard(tmp_path, sipp_bin, client="u1", server="t1")
    _assert_all_calls_through(uac, uas, guard, CALLS)


def test_cancel_of_a_ringing_call(tmp_path: Path, sipp_bin: str) -> None:
    uac, uas, guard = _calls_through_guard(
        tmp_path,
        sipp_bin,
        client="u1",
        server="u1",
        uac_scenario="uac_cancel.xml",
        uas_scenario="uas_ring_no_answer.xml",
        calls=20,
        rate=20,
    )
    assert uac.ok and (uac.successful, uac.failed) == (20, 0), uac.describe()
    assert guard.count("outside", "CANCEL", "forward") == 20
    cancelled = [line for line in uas.log_lines() if line.startswith("CANCELLED ")]
    assert len(cancelled) == 20, uas.describe()  # every CANCEL reached the UAS through sipguard


def test_reinvite_inside_a_call(tmp_path: Path, sipp_bin: str) -> None:
    uac, uas, guard = _calls_through_guard(
        tmp_path,
        sipp_bin,
        client="u1",
        server="u1",
        uac_scenario="uac_reinvite.xml",
        uas_scenario="uas_reinvite.xml",
        calls=20,
        rate=20,
    )
    assert uac.ok and (uac.successful, uac.failed) == (20, 0), uac.describe()
    assert uas.returncode == 0, uas.describe()
    assert guard.count("outside", "INVITE", "forward") == 40  # initial + re-INVITE per call
