"""Toll-fraud scenarios: annotated YAML in tests/fixtures/fraud/, one parametrised test (STYLE C19).

A fixture is a policy (its `fraud` section, read by the real loader) and steps in time order:

    name: what the scenario proves
    policy: |                       # YAML; `upstream` is added
      fraud: {home_country: NL, per_account: {concurrent_calls: 4}}
    start: "2025-01-15T12:00:00+01:00"   # t = 0 (ISO 8601 with offset; default 2025-01-15 12:00Z)
    guard: {ring_timeout: 120}      # optional FraudGuard settings (ring_timeout, max_call)
    steps:
      - {t: 0, dir: in, msg: invite, call: c1, to: "tel:+881612345678",
         expect: reject fraud.destinations.deny_types}
      - {t: 1, dir: out, msg: 200, call: c1, calls: 1}

Step keys:
  t       seconds after `start`
  dir     `in`: from outside toward the PBX; `out`: from the PBX. An INVITE `out` is a call the PBX
          places toward a trunk (`from_pbx`). A `bye` from the side that sent the INVITE is the
          caller's, from the other side the callee's.
  msg     `invite`, `reinvite` (in-dialog, with a To tag), `bye`, `cancel`, a status code (the
          response to the call's INVITE), or `sweep` (the housekeeping tick)
  call    a name; a new name at an `invite` starts a call (`to` and `account` set at its invite)
  to      the Request-URI of the INVITE (default a national NL number)
  account the account the engine would name (default 1001)
  cseq    CSeq of an invite or response (default 1; a response defaults to the call's last INVITE)
  expect  for an invite: `ok`, `alert RULE` or `reject RULE` (the decisive finding); `all: [...]`
          lists every finding as `action rule`
  calls   calls in progress of the call's account after the step
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from sipguard.engine.fraud import FraudGuard, decisive
from sipguard.policy import load_policy_text
from tests.fraud.messages import Call

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "fraud").glob("*.yaml"))
TOP_KEYS = {"name", "policy", "start", "guard", "steps"}
STEP_KEYS = {"t", "dir", "msg", "call", "to", "account", "cseq", "expect", "all", "calls"}
DEFAULT_START = "2025-01-15T12:00:00+00:00"


@dataclass
class Tracked:
    call: Call
    outgoing: bool  # the INVITE came from the PBX (dir out)
    cseqs: list[int] = field(default_factory=list)


def outcome(found: Any) -> str:
    return "ok" if found is None else f"{found.action.value} {found.rule}"


def run_step(
    guard: FraudGuard, calls: dict[str, Tracked], step: dict[str, Any], now: float, where: str
) -> None:
    unknown = set(step) - STEP_KEYS
    assert not unknown, f"{where}: unknown step keys {sorted(unknown)}"
    msg = str(step["msg"])
    if msg == "sweep":
        guard.sweep(now)
        return
    assert step.get("dir") in ("in", "out"), f"{where}: dir must be in or out"
    name = str(step["call"])
    if msg == "invite":
        tracked = calls.get(name)
        if tracked is None:
            call = Call(name, account=str(step.get("account", "1001")))
            if "to" in step:
                call.to = str(step["to"])
            tracked = calls[name] = Tracked(call, outgoing=step["dir"] == "out")
        cseq = int(step.get("cseq", 1))
        tracked.cseqs.append(cseq)
        request = tracked.call.invite(cseq=cseq)
        found = guard.check_invite_all(
            request, tracked.call.account, now, from_pbx=step["dir"] == "out"
        )
        if "all" in step:
            got = [f"{f.action.value} {f.rule}" for f in found]
            assert got == list(step["all"]), f"{where}: findings"
        assert outcome(decisive(found)) == step.get("expect", "ok"), where
    else:
        tracked = calls[name]
        call = tracked.call
        if msg == "reinvite":
            again = guard.check_invite(call.invite(cseq=int(step["cseq"]), to_tag=True), "", now)
            assert outcome(again) == step.get("expect", "ok"), where
        elif msg == "bye":
            from_caller = (step["dir"] == "out") == tracked.outgoing
            guard.observe(call.bye(from_callee=not from_caller), now)
        elif msg == "cancel":
            guard.observe(call.cancel(), now)
        else:
            cseq = int(step.get("cseq", tracked.cseqs[-1]))
            guard.observe(call.response(int(msg), cseq=cseq), now)
        assert "expect" not in step or msg == "reinvite", f"{where}: expect is for invites"
    if "calls" in step:
        got_calls = guard.calls_in_progress(calls[name].call.account)
        assert got_calls == step["calls"], f"{where}: calls in progress"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_scenario(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert set(data) <= TOP_KEYS, f"{path.name}: unknown keys {set(data) - TOP_KEYS}"
    assert data.get("name"), f"{path.name}: say what it proves in `name`"
    policy = load_policy_text("upstream: udp://10.0.0.5:5060\n" + data["policy"], path.name)
    guard = FraudGuard(policy.fraud, **data.get("guard", {}))
    start = datetime.datetime.fromisoformat(str(data.get("start", DEFAULT_START))).timestamp()
    calls: dict[str, Tracked] = {}
    last = -1.0
    for i, step in enumerate(data["steps"]):
        t = float(step["t"])
        assert t >= last, f"{path.name} step {i}: steps go forward in time"
        last = t
        run_step(guard, calls, step, start + t, f"{path.name} step {i} (t={step['t']})")


def test_there_are_scenarios() -> None:
    assert len(FIXTURES) >= 8
