"""The admin verbs behind `sipguard bans|ban|unban|events|geo`.

They talk to the running sipguard over its control socket, or work on the store directly when it is
stopped (so a ban set while it is down still holds when it starts)."""

from __future__ import annotations

import asyncio
import getpass
import ipaddress
import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sipguard.core.netset import SourceKeys
from sipguard.engine.effects import BanIssued, BanLifted
from sipguard.engine.engine import manual_ban_event, manual_unban_event
from sipguard.io import control
from sipguard.io.geoip import GeoDatabaseError, describe_ips
from sipguard.policy import Policy, format_duration
from sipguard.store import Storable, Store


@dataclass(frozen=True, slots=True)
class Answer:
    ok: bool
    text: str  # what to print
    data: Any = None  # what --json prints


RELOAD_TIMEOUT = 60.0  # seconds: a reload re-opens the GeoIP data and compiles the policy


def actor() -> str:
    """`cli:USER` for the audit trail; under sudo the user who ran sudo (SUDO_USER), since the
    account it runs as is usually sipguard's own. The running sipguard adds the account the
    kernel saw when it differs."""
    sudo = os.environ.get("SUDO_USER", "").strip()
    if sudo:
        return f"cli:{sudo}"
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def reload(policy: Policy) -> Answer:
    """Ask the running sipguard to reload its policy now, as this user (for the audit trail)."""
    try:
        reply = control.request(
            policy.control_path, {"op": "reload", "actor": actor()}, timeout=RELOAD_TIMEOUT
        )
    except control.ControlUnavailable as exc:
        return Answer(False, f"sipguard is not running ({exc})", {"ok": False})
    if "error" in reply:
        return Answer(False, f"sipguard: {reply['error']}", reply)
    if reply["ok"]:
        return Answer(True, f"policy reloaded by {reply['actor']}: {reply['summary']}", reply)
    return Answer(
        False,
        f"policy NOT reloaded, the running policy stays: {reply['summary']}",
        reply,
    )


def status(policy: Policy) -> Answer:
    """Whether sipguard runs, since when, with which policy, and what it has done since then."""
    try:
        reply = control.request(policy.control_path, {"op": "status"})
    except control.ControlUnavailable as exc:
        return Answer(False, f"sipguard is not running ({exc})", {"running": False})
    since = reply["now"] - reply["started_at"]
    sides: dict[str, int] = {}
    actions: dict[str, dict[str, int]] = {"forward": {}, "drop": {}, "reject": {}}
    for side, _kind, action, reason, count in reply.get("messages", []):
        sides[side] = sides.get(side, 0) + count
        by_reason = actions.setdefault(action, {})
        by_reason[reason] = by_reason.get(reason, 0) + count
    lines = [
        f"sipguard {reply['version']} running for {format_duration(since)} "
        f"(since {_when(reply['started_at'])})",
        f"policy {reply['policy_path']} (sha256 {reply['policy_sha256'][:12]})",
        f"messages in: {sum(sides.values()):,} "
        f"({', '.join(f'{s} {n:,}' for s, n in sorted(sides.items())) or 'none'})",
        f"forwarded: {sum(actions['forward'].values()):,}",
        f"dropped: {_total_and_parts(actions['drop'])}",
        f"rejected: {_total_and_parts(actions['reject'])}",
        f"bans active: {reply['bans_active']:,}; issued since start: "
        f"{_total_and_parts(reply['bans_issued'])}",
        f"findings since start: {_total_and_parts(reply['findings'])}",
        f"failed logins since start: {reply['auth_failures']:,}",
    ]
    return Answer(True, "\n".join(lines), {"running": True, **reply})


def _total_and_parts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    if not total:
        return "0"
    parts = ", ".join(f"{k} {n:,}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n)
    return f"{total:,} ({parts})"


def list_bans(policy: Policy) -> Answer:
    now = time.time()
    try:
        reply = control.request(policy.control_path, {"op": "bans"})
        bans: list[dict[str, Any]] = reply["bans"]
        where = "running sipguard"
    except control.ControlUnavailable:
        bans = [
            {k: v for k, v in asdict(r).items() if not k.startswith("lift") and k != "id"}
            for r in asyncio.run(_store_bans(policy.storage_path, now))
        ]
        where = f"store {policy.storage_path} (sipguard is not running)"
    lines = [f"{len(bans)} active bans ({where})"]
    for ban in bans:
        left = format_duration(max(0.0, ban["until"] - now))
        lines.append(
            f"{ban['ip']:<39} until {_when(ban['until'])} ({left} left)  {ban['reason']}"
            f"{' ' + ban['rule'] if ban['rule'] else ''}  x{ban['offences']}  by {ban['actor']}"
            f"{'  ' + ban['evidence'] if ban['evidence'] else ''}"
        )
    return Answer(True, "\n".join(lines), bans)


def ban(policy: Policy, ip: str, seconds: float | None, reason: str) -> Answer:
    who = actor()
    payload = {"op": "ban", "ip": ip, "seconds": seconds, "reason": reason, "actor": who}
    try:
        reply = control.request(policy.control_path, payload)
    except control.ControlUnavailable:
        return _ban_offline(policy, ip, seconds, reason, who)
    if not reply.get("ok"):
        return Answer(False, str(reply.get("error", "refused")))
    info = reply["ban"]
    return Answer(True, f"banned {info['ip']} until {_when(info['until'])} (applied)", info)


def unban(policy: Policy, ip: str, reason: str = "") -> Answer:
    who = actor()
    payload = {"op": "unban", "ip": ip, "actor": who, "reason": reason}
    try:
        reply = control.request(policy.control_path, payload)
    except control.ControlUnavailable:
        key = SourceKeys(policy.limits.ipv6_prefix)(ip)
        why = f"manual: {reason[:200]}" if reason else "manual"
        lifted = BanLifted(key, time.time(), why, who)
        asyncio.run(_store_write(policy.storage_path, [lifted, manual_unban_event(lifted)]))
        return Answer(True, f"unbanned {ip} in the store (sipguard is not running)")
    if not reply.get("ok"):
        return Answer(False, str(reply.get("error", "refused")))
    if not reply["lifted"]:
        return Answer(True, f"{ip} was not banned", reply)
    return Answer(True, f"unbanned {ip} (applied)", reply)


def events(policy: Policy, since: float) -> Answer:
    now = time.time()
    records = asyncio.run(_store_events(policy.storage_path, now - since))
    rows = [asdict(r) | {"severity": r.severity.value} for r in records]
    lines = [
        f"{_when(r.at)} {r.severity.value:<8} {r.kind:<15} {r.ip or '-':<20} {r.country or '--'} "
        f"{r.method or '-':<9} {r.rule or '-'}  {r.detail}"
        for r in records
    ]
    return Answer(True, "\n".join(lines) if lines else "no events", rows)


def geo(policy: Policy, ips: list[str]) -> Answer:
    today = datetime.now(UTC).date()
    try:
        rows = describe_ips(policy.geo, ips, today)
    except GeoDatabaseError as exc:
        return Answer(False, f"geo.database {policy.geo.database}: {exc}")
    lines = []
    for row in rows:
        if row.error is not None:
            lines.append(f"{row.ip:<39} error: {row.error}")
            continue
        built = f"built {row.built}, {row.age_days} days old" if row.built else "build date unknown"
        stale = "  STALE (older than geo.max_age_days)" if row.stale else ""
        lines.append(
            f"{row.ip:<39} {row.country or '--'}  from {row.source:<8} "
            f"({row.database}; {built}){stale}"
        )
    data = [asdict(row) | {"built": str(row.built) if row.built else None} for row in rows]
    return Answer(all(r.error is None for r in rows), "\n".join(lines), data)


def _ban_offline(policy: Policy, ip: str, seconds: float | None, reason: str, who: str) -> Answer:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return Answer(False, f"not an IP address: {ip!r}")
    if any(address in net for net in policy.trusted):
        return Answer(False, f"{ip} is trusted by the policy: never banned")
    now = time.time()
    until = now + (seconds if seconds is not None else policy.bans.default)
    key = SourceKeys(policy.limits.ipv6_prefix)(str(address))
    issued = BanIssued(key, now, until, "manual", "", reason[:200], 1, who)
    asyncio.run(_store_write(policy.storage_path, [issued, manual_ban_event(issued)]))
    return Answer(True, f"banned {key} until {_when(until)} in the store (sipguard is not running)")


async def _store_bans(path: str, now: float) -> list[Any]:
    async with await Store.open(path) as store:
        return await store.active_bans(now)


async def _store_events(path: str, since: float) -> list[Any]:
    async with await Store.open(path) as store:
        return await store.events(since, limit=10_000)


async def _store_write(path: str, batch: list[Storable]) -> None:
    async with await Store.open(path) as store:
        await store.write(batch)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def as_json(answer: Answer) -> str:
    return json.dumps(answer.data, indent=2, sort_keys=True, default=str)
