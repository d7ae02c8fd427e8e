"""`sipguard status`: a running sipguard says since when, with which policy, and what it did; a
stopped one is a clear line and exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sipguard import admin, cli
from sipguard.policy import load_policy_file
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
