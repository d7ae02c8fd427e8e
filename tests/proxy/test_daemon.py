"""`sipguard run` started as the README says: start line, a call through it, SIGTERM, exit code."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from tests.peers.sipp import SippConfig, run, start
from tests.proxy.daemon import Daemon
from tests.proxy.guard import policy_text

pytestmark = pytest.mark.integration


@pytest.mark.peers
@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_a_call_and_stops_gracefully(tmp_path: Path, sipp_bin: str, sig: int) -> None:
    with start(tmp_path, SippConfig(scenario="uas_call.xml", label="uas"), binary=sipp_bin) as uas:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text(f"udp://{uas.address[0]}:{uas.address[1]}"), encoding="utf-8")
        daemon = Daemon(policy)
        try:
            outside = daemon.outside("udp")
            call = run(
                tmp_path,
                SippConfig(scenario="uac_call.xml", remote=outside, calls=3, rate=10, label="uac"),
                binary=sipp_bin,
            )
            assert call.ok and call.successful == 3, call.describe()
        finally:
            code = daemon.stop(sig)
        assert code == 0, daemon.lines
        assert any("listening on udp://127.0.0.1:" in line for line in daemon.lines)
        assert any(line.endswith("stopped") for line in daemon.lines), daemon.lines


def test_a_port_in_use_is_one_clear_line_and_a_failure(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        policy = tmp_path / "policy.yaml"
        policy.write_text(
            policy_text("udp://127.0.0.1:9", listen=(f"udp://127.0.0.1:{port}",)), encoding="utf-8"
        )
        daemon = Daemon(policy)
        assert daemon.proc.wait(10) == 1
        daemon.stop()
    errors = [line for line in daemon.lines if "ERROR" in line]
    assert len(errors) == 1
    assert f"cannot listen on udp://127.0.0.1:{port}: Address already in use" in errors[0]


def test_a_bad_policy_is_reported_with_its_location_and_nothing_starts(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("upstream: udp://127.0.0.1:9\nlisten: [udp://127.0.0.1:0]\nlimmits: {}\n")
    daemon = Daemon(policy)
    assert daemon.proc.wait(10) == 2
    daemon.stop()
    assert daemon.lines == [f"{policy}:3:1: unknown key 'limmits' (did you mean 'limits'?)"]
