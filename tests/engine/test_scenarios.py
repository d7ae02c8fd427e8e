"""Annotated detector scenarios (STYLE C19): each YAML file in tests/fixtures/detectors/ is a policy
and a list of timed steps; a new case needs no Python.

A step: `{t: SECONDS, src: IP, msg: register|invite|options|message, user: "100", to: "100", auth:
true, ua: "...", expect: REASON}` sends a request from outside; `{t, src, answer: 401}` lets the
PBX answer the last request that `src` got through; `events: [kind, ...]` (optional) lists the
event kinds the step must raise. REASON is a Reason value: ok, banned, rule, rate_limited,
account_blocked, toll_fraud, ..."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sipguard.core.sip import Hdr, SipRequest, parse_message
from sipguard.engine.compile import compile_policy
from sipguard.engine.context import Packet, Side
from sipguard.engine.effects import SecurityEvent
from sipguard.engine.engine import Engine
from sipguard.engine.proxy import Address, Router
from sipguard.policy import load_policy_text
from sipguard.policy.model import Transport

FIXTURES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "detectors").glob("*.yaml"))
UDP = Transport.UDP
PBX = Address(UDP, "10.0.0.5", 5060)


def request(step: dict[str, Any], n: int) -> bytes:
    method = str(step.get("msg", "register")).upper()
    user = str(step.get("user", "100"))
    target = str(step.get("to", user))
    uri = f"sip:{target}@pbx.example.com" if method != "REGISTER" else "sip:pbx.example.com"
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bKstep{n};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@pbx.example.com>;tag=s{n}",
        f"To: <sip:{target}@pbx.example.com>",
        f"Call-ID: step-{n}@fixture",
        f"CSeq: {n} {method}",
        f"Contact: <sip:{user}@192.168.1.20:5060>",
        f"User-Agent: {step.get('ua', 'Yealink SIP-T46S')}",
    ]
    if step.get("auth"):
        lines.append(
            f'Authorization: Digest username="{user}", realm="pbx", nonce="n{n}", '
            f'uri="{uri}", response="{n:032x}"'
        )
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def answer(forwarded: bytes, status: int) -> bytes:
    msg = parse_message(forwarded)
    assert isinstance(msg, SipRequest)
    vias = b"".join(b"Via: " + msg.raw[v.start : v.end] + b"\r\n" for v in msg.vias())
    return (
        b"SIP/2.0 %d Answer\r\n" % status
        + vias
        + b"From: "
        + (msg.get(Hdr.FROM) or b"")
        + b"\r\n"
        + b"To: "
        + (msg.get(Hdr.TO) or b"")
        + b";tag=pbx\r\n"
        + b"Call-ID: "
        + msg.call_id()
        + b"\r\n"
        + b"CSeq: %d %s\r\nContent-Length: 0\r\n\r\n" % msg.cseq()
    )


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_scenario(path: Path) -> None:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    policy = compile_policy(load_policy_text("upstream: udp://10.0.0.5:5060\n" + case["policy"]))
    router = Router([Address(UDP, "198.18.0.1", 5060)], Address(UDP, "10.0.0.1", 5070), PBX)
    countries: dict[str, str] = case.get("countries", {})
    engine = Engine(router, policy, geo=countries.get, rand=lambda: 0.0)
    last: dict[str, bytes] = {}
    for n, step in enumerate(case["steps"], start=1):
        where = f"{path.name} step {n} (t={step['t']})"
        before = len(engine.effects)
        now = float(step["t"])
        if "answer" in step:
            assert step["src"] in last, f"{where}: nothing of {step['src']} got through to answer"
            reply = answer(last[step["src"]], int(step["answer"]))
            got = engine.handle(reply, Packet("10.0.0.5", 5060, UDP, Side.INSIDE, now))
            assert got.verdict.action.value == "forward", where
        else:
            got = engine.handle(request(step, n), Packet(step["src"], 5060, UDP, Side.OUTSIDE, now))
            assert got.verdict.reason.value == step["expect"], f"{where}: {got.verdict}"
            if got.verdict.action.value == "forward":
                last[step["src"]] = got.data
        kinds = [e.kind for e in engine.effects[before:] if isinstance(e, SecurityEvent)]
        if "events" in step:
            assert kinds == step["events"], f"{where}: events {kinds}"
