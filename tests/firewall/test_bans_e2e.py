"""The firewall end to end on loopback, with `sipguard run` as a real process and clients bound to
their
own 127.0.0.x addresses: floods are cut and banned, bans survive restarts and kills, the CLI bans
and
unbans a running sipguard within a second, trusted sources are never banned."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipguard.store import Store
from tests.proxy.daemon import SIPGUARD, Daemon
from tests.proxy.guard import policy_text
from tests.proxy.stub import UdpPeer, wait_until

pytestmark = pytest.mark.integration

ATTACKER, OTHER, TRUSTED = "127.0.0.2", "127.0.0.3", "127.0.0.4"
LIMITS = """trusted: [127.0.0.4/32]
limits:
  REGISTER: {rate: 10/min, burst: 5, ban_after: 5, within: 1m, ban: 1h}
"""


def register(n: int, port: int) -> bytes:
    return (
        b"REGISTER sip:pbx.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.9:%d;branch=z9hG4bKreg%d;rport\r\n"
        % (port, n)
        + b"Max-Forwards: 70\r\nFrom: <sip:100@pbx.example.com>;tag=r%d\r\n" % n
        + b"To: <sip:100@pbx.example.com>\r\nCall-ID: reg-%d@test\r\nCSeq: %d REGISTER\r\n" % (n, n)
        + b"Contact: <sip:100@127.0.0.9:%d>\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n" % port
    )


def cli(policy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SIPGUARD), *args, "-c", str(policy)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def passes(client: UdpPeer, pbx: UdpPeer, guard: tuple[str, int], n: int) -> bool:
    """One REGISTER from `client`: does it reach the PBX?"""
    pbx.drain(0.0)
    client.send(register(n, client.port), guard)
    got = pbx.recv(0.3)
    return got is not None


@pytest.fixture
def pbx() -> Iterator[UdpPeer]:
    peer = UdpPeer()
    yield peer
    peer.close()


@pytest.fixture
def policy(tmp_path: Path, pbx: UdpPeer) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(pbx.url, listen=("udp://127.0.0.1:0",), extra=LIMITS))
    return path


def _store_bans(policy: Path) -> list[str]:
    async def read() -> list[str]:
        async with await Store.open(policy.parent / "sipguard.db") as store:
            return [b.ip for b in await store.active_bans(time.time())]

    return asyncio.run(read())


def test_a_register_flood_is_cut_to_the_rate_then_banned(policy: Path, pbx: UdpPeer) -> None:
    daemon = Daemon(policy)
    attacker, other = UdpPeer(ATTACKER), UdpPeer(OTHER)
    try:
        guard = daemon.outside("udp")
        for n in range(30):
            attacker.send(register(n, attacker.port), guard)
        assert wait_until(
            lambda: "127.0.0.2" in json.dumps(json.loads(cli(policy, "bans", "--json").stdout))
        )
        forwarded = pbx.drain(0.3)
        assert len(forwarded) == 5  # the burst, then the limit, then the ban
        assert not passes(attacker, pbx, guard, 100)
        assert passes(other, pbx, guard, 101)  # nobody else pays for it
        bans = json.loads(cli(policy, "bans", "--json").stdout)
        assert [(b["ip"], b["rule"]) for b in bans] == [(ATTACKER, "limits.REGISTER")]
    finally:
        assert daemon.stop() == 0
        attacker.close()
        other.close()


def test_a_trusted_source_is_never_banned(policy: Path, pbx: UdpPeer) -> None:
    daemon = Daemon(policy)
    trusted = UdpPeer(TRUSTED)
    try:
        guard = daemon.outside("udp")
        for n in range(40):
            trusted.send(register(n, trusted.port), guard)
        assert wait_until(lambda: len(pbx.drain(0.05)) > 0)
        assert passes(trusted, pbx, guard, 999)
        assert json.loads(cli(policy, "bans", "--json").stdout) == []
        refused = cli(policy, "ban", TRUSTED)
        assert refused.returncode == 1 and "trusted" in refused.stderr
    finally:
        daemon.stop()
        trusted.close()


def test_cli_ban_and_unban_apply_to_a_running_sipguard_within_a_second(
    policy: Path, pbx: UdpPeer
) -> None:
    daemon = Daemon(policy)
    client = UdpPeer(OTHER)
    try:
        guard = daemon.outside("udp")
        assert passes(client, pbx, guard, 1)
        control = policy.parent / "sipguard.sock"  # local only: a Unix socket only its user may use
        assert (
            stat.S_ISSOCK(control.stat().st_mode) and stat.S_IMODE(control.stat().st_mode) == 0o600
        )
        started = time.monotonic()
        banned = cli(policy, "ban", OTHER, "--for", "10m", "--reason", "NOC test")
        assert banned.returncode == 0 and "applied" in banned.stdout
        assert not passes(client, pbx, guard, 2)
        assert time.monotonic() - started < 1.0 + 0.3  # the CLI's answer means "in force"
        started = time.monotonic()
        assert cli(policy, "unban", OTHER).returncode == 0
        assert passes(client, pbx, guard, 3)
        assert time.monotonic() - started < 1.0 + 0.3
    finally:
        daemon.stop()
        client.close()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_ban_survives_a_restart_and_a_kill(policy: Path, pbx: UdpPeer, how: str) -> None:
    client = UdpPeer(ATTACKER)
    daemon = Daemon(policy)
    try:
        guard = daemon.outside("udp")
        assert cli(policy, "ban", ATTACKER, "--for", "1h").returncode == 0
        # the ban reaches the disk within a second of being issued (the pump flushes every 0.25 s)
        assert wait_until(lambda: ATTACKER in _store_bans(policy), timeout=1.0)
    finally:
        code = daemon.stop(signal.SIGTERM if how == "SIGTERM" else signal.SIGKILL)
    assert code == (0 if how == "SIGTERM" else -signal.SIGKILL)
    again = Daemon(policy)
    try:
        guard = again.outside("udp")
        again.wait_line("restored 1 active bans")
        assert not passes(client, pbx, guard, 7)
        assert cli(policy, "unban", ATTACKER).returncode == 0
        assert passes(client, pbx, guard, 8)
    finally:
        again.stop()
        client.close()


def test_bans_set_while_sipguard_is_stopped_hold_when_it_starts(policy: Path, pbx: UdpPeer) -> None:
    offline = cli(policy, "ban", ATTACKER, "--for", "1h", "--reason", "seen in the PBX logs")
    assert offline.returncode == 0 and "not running" in offline.stdout
    listed = json.loads(cli(policy, "bans", "--json").stdout)
    assert [b["ip"] for b in listed] == [ATTACKER]
    client = UdpPeer(ATTACKER)
    daemon = Daemon(policy)
    try:
        assert not passes(client, pbx, daemon.outside("udp"), 1)
    finally:
        daemon.stop()
        client.close()
