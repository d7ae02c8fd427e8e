"""`sipguard status` and `sipguard reload`: a running sipguard says since when, with which policy,
and what it did; it reloads on request and records who asked; a stopped one is a clear line and
exit 1."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from sipguard import admin, cli
from sipguard.policy import load_policy_file
from sipguard.store import Store
from tests.proxy.guard import policy_text, running_guard
from tests.proxy.stub import UdpPeer, wait_until

OPTIONS = (
    b"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bK-status\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.9>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\n"
    b"Call-ID: status-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


def test_status_of_a_running_sipguard_counts_what_it_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pbx = UdpPeer()
    client = UdpPeer("127.0.0.9")
    try:
        with running_guard(policy_text(pbx.url, listen=("udp://127.0.0.1:0",)), tmp_path) as guard:
            policy = load_policy_file(tmp_path / "policy.yaml")
            client.send(OPTIONS, guard.outside("udp"))
            client.send(b"\x00garbage", guard.outside("udp"))
            assert pbx.recv() is not None  # the OPTIONS reached the PBX
            assert wait_until(lambda: guard.count("outside", "malformed") == 1)
            answer = admin.status(policy)
            assert answer.ok, answer.text
            lines = answer.text.splitlines()
            assert lines[0].startswith("sipguard ") and " running for " in lines[0]
            assert (
                lines[1]
                == f"policy {tmp_path / 'policy.yaml'} (sha256 {policy.source_sha256[:12]})"
            )
            assert "messages in: 2 (outside 2)" in answer.text
            assert "forwarded: 1" in answer.text
            assert "dropped: 1 (malformed 1)" in answer.text
            assert answer.data["running"] is True and answer.data["bans_active"] == 0
            assert cli.main(["status", "-c", str(tmp_path / "policy.yaml"), "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["policy_sha256"] == policy.source_sha256
        # stopped: one clear line on stderr, exit 1
        assert cli.main(["status", "-c", str(tmp_path / "policy.yaml")]) == 1
        assert "sipguard is not running" in capsys.readouterr().err
    finally:
        pbx.close()
        client.close()


def test_reload_on_request_records_who_asked_and_a_broken_policy_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pbx = UdpPeer()
    path = tmp_path / "policy.yaml"
    base = policy_text(pbx.url, listen=("udp://127.0.0.1:0",))
    try:
        with running_guard(base, tmp_path, watch_policy=False) as guard:
            path.write_text(base + "limits:\n  INVITE: {rate: 30/min, burst: 10}\n")
            assert cli.main(["reload", "-c", str(path)]) == 0
            said = capsys.readouterr().out
            assert said.startswith(f"policy reloaded by {admin.actor()}")
            assert "limits.INVITE" in said
            applied = guard.info.engine.policy.policy.source_sha256
            assert applied == load_policy_file(path).source_sha256
            path.write_text(base + "limits:\n  INVITE: {rate: 30/min, burst: -1}\n")
            assert cli.main(["reload", "-c", str(path)]) == 2  # invalid: not even sent
            err = capsys.readouterr().err
            assert "policy.yaml:6:33: must be at least 1: -1" in err
            assert "nothing sent, the running policy stays" in err
            path.write_text(base + f"geo: {{database: {tmp_path / 'gone.mmdb'}}}\n")
            assert cli.main(["reload", "-c", str(path)]) == 1  # valid, but sipguard refuses it
            err = capsys.readouterr().err
            assert "policy NOT reloaded, the running policy stays" in err and "gone.mmdb" in err
            assert guard.info.engine.policy.policy.source_sha256 == applied
        assert cli.main(["reload", "-c", str(tmp_path / "policy.yaml")]) == 1
        assert "sipguard is not running" in capsys.readouterr().err
    finally:
        pbx.close()
    reloads = asyncio.run(_reloads(tmp_path / "sipguard.db"))
    assert [(r.actor, r.outcome) for r in reloads[-2:]] == [
        (admin.actor(), "ok"),
        (admin.actor(), "failed"),
    ]


async def _reloads(path: Path) -> list[Any]:
    async with await Store.open(path) as store:
        return list(await store.reloads(0))
