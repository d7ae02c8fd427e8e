"""Hot reload of a running sipguard: SIGHUP and a changed file take effect without dropping a call
in
progress; a broken edit changes nothing, is reported with its location, and is recorded."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from sipguard.store import Store
from tests.peers.sipp import SippConfig, start
from tests.proxy.daemon import Daemon
from tests.proxy.guard import policy_text
from tests.proxy.stub import UdpPeer, wait_until

pytestmark = pytest.mark.integration

CLIENT = "127.0.0.5"
DENY_CLIENT = "rules:\n  - {name: deny-five, match: {network: [127.0.0.5/32]}, action: drop}\n"


def options(n: int, port: int) -> bytes:
    return (
        b"OPTIONS sip:pbx.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.5:%d;branch=z9hG4bKopt%d\r\n"
        % (port, n)
        + b"Max-Forwards: 70\r\nFrom: <sip:mon@pbx.example.com>;tag=o%d\r\n" % n
        + b"To: <sip:pbx.example.com>\r\nCall-ID: opt-%d@test\r\nCSeq: 1 OPTIONS\r\n" % n
        + b"Content-Length: 0\r\n\r\n"
    )


def reaches(client: UdpPeer, pbx: UdpPeer, guard: tuple[str, int], n: int) -> bool:
    pbx.drain(0.0)
    client.send(options(n, client.port), guard)
    return pbx.recv(0.3) is not None


def reloads(policy: Path) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        async with await Store.open(policy.parent / "sipguard.db") as store:
            return [(r.actor, r.outcome) for r in await store.reloads(0.0)]

    return asyncio.run(read())


def test_sighup_and_file_edits_reload_and_a_broken_edit_changes_nothing(tmp_path: Path) -> None:
    pbx, client = UdpPeer(), UdpPeer(CLIENT)
    policy = tmp_path / "policy.yaml"
    base = policy_text(pbx.url, listen=("udp://127.0.0.1:0",))
    policy.write_text(base)
    daemon = Daemon(policy)
    try:
        guard = daemon.outside("udp")
        assert reaches(client, pbx, guard, 1)
        # a valid edit, announced with SIGHUP
        policy.write_text(base + DENY_CLIENT)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_line(r"policy reloaded \((SIGHUP|file-change)\): changed: rules")
        assert not reaches(client, pbx, guard, 2)
        # a broken edit: reported with its location, the last good policy stays in force
        policy.write_text(base + DENY_CLIENT + "limits:\n  REGISTER: {rate: often}\n")
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_line(rf"policy not reloaded: {policy}:\d+:\d+: ")
        assert not reaches(client, pbx, guard, 3)
        # an edit without a signal is seen by the file watcher
        policy.write_text(base)
        daemon.wait_line(r"policy reloaded \(file-change\)")
        assert reaches(client, pbx, guard, 4)
        assert wait_until(lambda: ("file-change", "ok") in reloads(policy))
        outcomes = [outcome for _, outcome in reloads(policy)]
        assert outcomes.count("failed") >= 1 and outcomes.count("ok") >= 2
    finally:
        assert daemon.stop() == 0
        pbx.close()
        client.close()


@pytest.mark.peers
@pytest.mark.timeout(60)
def test_a_reload_does_not_drop_a_call_in_progress(tmp_path: Path, sipp_bin: str) -> None:
    with start(tmp_path, SippConfig(scenario="uas_call.xml", label="uas"), binary=sipp_bin) as uas:
        policy = tmp_path / "policy.yaml"
        base = policy_text(
            f"udp://{uas.address[0]}:{uas.address[1]}", listen=("udp://127.0.0.1:0",)
        )
        policy.write_text(base)
        daemon = Daemon(policy)
        try:
            guard = daemon.outside("udp")
            caller = start(
                tmp_path,
                SippConfig(
                    scenario="uac_call.xml",
                    remote=guard,
                    calls=1,
                    duration_ms=4000,  # the call is up while the policy changes under it
                    timeout_s=20,
                    label="uac",
                ),
                binary=sipp_bin,
            )
            # the UAS counts the call as current once it is set up (its stats refresh every second)
            assert wait_until(lambda: (st := uas.stats()) is not None and st.current >= 1, 3.5)
            policy.write_text(base + DENY_CLIENT)  # denies another source, not this call
            daemon.proc.send_signal(signal.SIGHUP)
            daemon.wait_line(r"policy reloaded")
            result = caller.wait(20)
            assert result.ok and result.successful == 1, result.describe()
        finally:
            assert daemon.stop() == 0
