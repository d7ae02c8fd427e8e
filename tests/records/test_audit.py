"""The audit trail: the policy at start, reload summaries that say what changed, manual bans and
unbans with their actor and reason (through the control socket and with sipguard stopped)."""

from __future__ import annotations

import asyncio
import getpass
from functools import partial
from pathlib import Path

import pytest

from sipguard import admin
from sipguard.app import _record_start
from sipguard.engine.compile import compile_policy
from sipguard.engine.effects import BanIssued, BanLifted, SecurityEvent
from sipguard.engine.engine import Engine
from sipguard.engine.proxy import Address, Router
from sipguard.io import control
from sipguard.io.control import ControlServer
from sipguard.policy import Policy, load_policy_text
from sipguard.policy.model import Transport
from sipguard.services.reload import describe_changes
from sipguard.store import BanRecord, EventRecord, Store

UDP = Transport.UDP
BASE = """upstream: udp://10.0.0.5:5060
rules:
  - {name: scanners, match: {user_agent: [sipvicious]}, action: ban, ban: 24h}
  - {name: no-cn, match: {country: CN}, action: drop}
limits:
  INVITE: {rate: 30/min, burst: 10}
alerts:
  - {webhook: "https://noc.example.net/hook?token=s3cret", secret: hush}
"""


def make_engine(text: str = BASE) -> Engine:
    policy = compile_policy(load_policy_text(text))
    outside = [Address(UDP, "198.18.0.1", 5060)]
    router = Router(outside, Address(UDP, "10.0.0.1", 5070), Address(UDP, "10.0.0.5", 5060))
    return Engine(router, policy, geo=lambda ip: "BR" if ip.startswith("203.") else None)


# ------------------------------------------------------------------------------ reload summaries


def test_a_reload_summary_names_each_key_that_changed_with_old_and_new_values() -> None:
    old = load_policy_text(BASE)
    new = load_policy_text(
        BASE.replace("30/min", "60/min")
        .replace("ban: 24h", "ban: 48h")
        .replace("no-cn", "no-ru")
        .replace("CN}", "RU}")
        .replace("token=s3cret", "token=other")
        + "records: {events: 30d, rollups: off, pseudonymise_numbers: true}\n"
    )
    summary = describe_changes(old, new)
    assert summary.startswith("changed: ")
    for part in (
        "rules: added no-ru; removed no-cn; changed scanners (ban)",
        "limits.INVITE.rate: 30/1m -> 60/1m",
        "records.rollups: 400d -> off",
        "records.pseudonymise_numbers: false -> true",
        "alerts (changed)",
        "(alerts take effect at the next restart)",
    ):
        assert part in summary, summary
    assert "s3cret" not in summary and "hush" not in summary  # secrets never reach the trail
    assert describe_changes(old, old) == "no change"


def test_a_long_summary_is_cut_and_says_how_much_more_changed() -> None:
    old = load_policy_text(BASE)
    new = load_policy_text(BASE.replace("30/min, burst: 10", "60/min, burst: 20, ban_after: 3"))
    summary = describe_changes(old, new, limit=60)
    assert len(summary) <= 60 and summary.endswith("more"), summary


# -------------------------------------------------------------------------- the policy at start


@pytest.mark.asyncio
async def test_the_policy_in_force_at_start_is_recorded_with_what_it_is(tmp_path: Path) -> None:
    def policy(text: str) -> Policy:
        return load_policy_text(text, str(tmp_path / "policy.yaml"))

    first, edited = policy(BASE), policy(BASE.replace("30/min", "20/min"))
    engine = make_engine()
    async with await Store.open(tmp_path / "s.db") as store:
        for p, at in ((first, 100.0), (first, 200.0), (edited, 300.0)):
            await _record_start(p, engine, store, partial(float, at))
        trail = await store.reloads(0.0)
    assert [(r.actor, r.outcome, r.sha256) for r in trail] == [
        ("start", "ok", first.source_sha256),
        ("start", "ok", first.source_sha256),
        ("start", "ok", edited.source_sha256),
    ]
    assert "first policy on record" in trail[0].summary
    assert "unchanged since the last record" in trail[1].summary
    assert f"differs from the last one on record (sha256 {first.source_sha256[:12]}" in (
        trail[2].summary
    )
    events = [e for e in engine.effects if isinstance(e, SecurityEvent)]
    assert [(e.kind, e.rule) for e in events] == [("policy_reload", "start")] * 3


# ------------------------------------------------------------------ manual bans through control


def test_a_manual_ban_and_unban_record_who_and_why() -> None:
    engine = make_engine()
    server = ControlServer("/nonexistent/control.sock", engine, lambda: 1000.0)
    ban = {
        "op": "ban",
        "ip": "203.0.113.9",
        "seconds": 600,
        "reason": "SIP scan",
        "actor": "cli:ann",
    }
    assert server.handle(ban, peer="ann")["ok"]
    unban = {"op": "unban", "ip": "203.0.113.9", "actor": "cli:ann", "reason": "customer's NAT"}
    assert server.handle(unban, peer="sipguard")["lifted"]
    issued, banned, lifted, unbanned = engine.effects
    assert isinstance(issued, BanIssued) and isinstance(lifted, BanLifted)
    assert (issued.actor, issued.reason, issued.evidence) == ("cli:ann", "manual", "SIP scan")
    assert (lifted.actor, lifted.why) == ("cli:ann (as sipguard)", "manual: customer's NAT")
    assert isinstance(banned, SecurityEvent) and isinstance(unbanned, SecurityEvent)
    assert (banned.kind, banned.rule, banned.ip, banned.country) == (
        "ban",
        "manual",
        "203.0.113.9",
        "BR",
    )
    assert banned.detail == "manual: banned until 1600 by cli:ann: SIP scan"
    assert (unbanned.kind, unbanned.detail) == (
        "unban",
        "manual: lifted by cli:ann (as sipguard): customer's NAT",
    )


@pytest.mark.asyncio
async def test_the_control_socket_adds_the_account_the_kernel_vouches_for(tmp_path: Path) -> None:
    engine = make_engine()
    server = ControlServer(str(tmp_path / "c.sock"), engine, lambda: 1000.0)
    await server.start()
    try:
        for who in (f"cli:{getpass.getuser()}", "cli:somebody-else"):
            request = {"op": "ban", "ip": "203.0.113.9", "actor": who, "reason": "r"}
            reply = await asyncio.to_thread(control.request, str(tmp_path / "c.sock"), request)
            assert reply["ok"], reply
    finally:
        server.close()
    actors = [e.actor for e in engine.effects if isinstance(e, BanIssued)]
    assert actors == [f"cli:{getpass.getuser()}", f"cli:somebody-else (as {getpass.getuser()})"]


def test_the_cli_actor_is_the_user_behind_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "ann")
    assert admin.actor() == "cli:ann"
    monkeypatch.delenv("SUDO_USER")
    assert admin.actor() == f"cli:{getpass.getuser()}"


# ----------------------------------------------------------------- manual bans, sipguard stopped


def test_bans_by_hand_while_stopped_go_to_the_store_with_their_audit_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUDO_USER", "ann")
    policy = load_policy_text(
        "upstream: udp://10.0.0.5:5060\nstorage: sqlite:s.db\ncontrol: c.sock\n",
        str(tmp_path / "policy.yaml"),
    )
    assert admin.ban(policy, "203.0.113.9", 600.0, "scanner").ok
    assert admin.unban(policy, "203.0.113.9", "false positive").ok

    async def read() -> tuple[list[BanRecord], list[EventRecord]]:
        async with await Store.open(tmp_path / "s.db") as store:
            return await store.bans(0.0), await store.events(0.0)

    bans, events = asyncio.run(read())
    (ban,) = bans
    assert (ban.actor, ban.evidence, ban.lifted_by, ban.lift_reason) == (
        "cli:ann",
        "scanner",
        "cli:ann",
        "manual: false positive",
    )
    assert [(e.kind, e.rule, e.detail.split(":")[0]) for e in events] == [
        ("ban", "manual", "manual"),
        ("unban", "manual", "manual"),
    ]
