"""What the drill sees of the running sipguard: its ban table and counters (control socket, at
once) and its events (the store, written in batches about every second)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sipguard.drill.target import DrillError
from sipguard.io import control
from sipguard.store import EventRecord, Store, StoreError

__all__ = ["Control", "Snapshot", "events_for"]

ACTOR = "drill"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The daemon's counters at one moment: messages by (side, kind, action, reason), and drops
    and rejects by (action, reason, rule)."""

    messages: Counter[tuple[str, str, str, str]]
    rules: Counter[tuple[str, str, str]]

    def minus(self, before: Snapshot) -> Snapshot:
        return Snapshot(self.messages - before.messages, self.rules - before.rules)

    def by_rule(self, rule: str) -> int:
        return sum(n for (_, _, name), n in self.rules.items() if name == rule)

    def malformed(self) -> int:
        return sum(
            n
            for (side, kind, _, _), n in self.messages.items()
            if kind == "malformed" and side == "outside"
        )

    def forwarded_malformed(self) -> int:
        return sum(
            n
            for (side, kind, action, _), n in self.messages.items()
            if kind == "malformed" and side == "outside" and action == "forward"
        )


class Control:
    """The running sipguard's control socket (blocking calls run in a thread)."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def ask(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = await asyncio.to_thread(control.request, self.path, payload)
        except control.ControlUnavailable:
            raise DrillError(
                f"no sipguard answers on its control socket {self.path}: start it with "
                "`sipguard run -c POLICY` (the drill attacks a running sipguard)"
            ) from None
        except OSError as exc:
            raise DrillError(f"control socket {self.path}: {exc}") from exc
        if not reply.get("ok"):
            raise DrillError(f"control socket {self.path}: {reply.get('error', 'refused')}")
        return reply

    async def status(self) -> dict[str, Any]:
        return await self.ask({"op": "status"})

    async def snapshot(self) -> Snapshot:
        reply = await self.status()
        messages: Counter[tuple[str, str, str, str]] = Counter()
        rules: Counter[tuple[str, str, str]] = Counter()
        for side, kind, action, reason, n in reply.get("messages", []):
            messages[(side, kind, action, reason)] = int(n)
        for action, reason, rule, n in reply.get("rules", []):
            rules[(action, reason, rule)] = int(n)
        return Snapshot(messages, rules)

    async def bans(self) -> dict[str, dict[str, Any]]:
        reply = await self.ask({"op": "bans"})
        return {str(b["ip"]): b for b in reply["bans"]}

    async def ban_of(self, ip: str, wait: float) -> dict[str, Any] | None:
        """The ban of `ip`, polling until `wait` seconds have passed."""
        deadline = time.monotonic() + wait
        while True:
            ban = (await self.bans()).get(ip)
            if ban is not None or time.monotonic() >= deadline:
                return ban
            await asyncio.sleep(0.05)  # poll interval, bounded by the deadline above

    async def unban(self, ip: str) -> bool:
        reply = await self.ask({"op": "unban", "ip": ip, "actor": ACTOR})
        return bool(reply.get("lifted"))


async def events_for(
    storage_path: str,
    sources: Collection[str],
    since: float,
    *,
    wanted: Collection[str] = (),
    wait: float = 4.0,
) -> list[EventRecord]:
    """Events of `sources` since `since` from the store, polling until every address of `wanted`
    has at least one (the outbox writes about once a second) or `wait` seconds pass."""
    deadline = time.monotonic() + wait
    try:
        async with await Store.open(storage_path) as store:
            while True:
                rows = await store.events(since - 1.0, limit=20_000)
                found = [r for r in rows if r.ip in sources]
                seen = {r.ip for r in found}
                if all(ip in seen for ip in wanted) or time.monotonic() >= deadline:
                    return found
                await asyncio.sleep(0.2)  # poll interval, bounded by the deadline above
    except StoreError as exc:
        raise DrillError(f"cannot read the events: {exc}") from exc
