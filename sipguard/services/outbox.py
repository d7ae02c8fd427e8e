"""Moves the engine's effects to the store in batches, off the hot path (STYLE C13).

Under a flood, events are shed (counted) but bans never are. A store that fails (full disk, locked,
read-only) degrades with a logged error: the batch's bans are kept and retried, the proxy goes on,
and
the in-memory ban table stays authoritative in the meantime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from sipguard.engine.effects import BanIssued, BanLifted, Effect, LoginSeen
from sipguard.store import StoreError

log = logging.getLogger("sipguard.store")

FLUSH_INTERVAL = (
    0.25  # seconds: a ban reaches the disk well within the 1 s the tests allow a SIGKILL
)
MAX_BATCH = 5_000  # events per flush; past that a flood's events are shed, bans and lifts never
MAX_HELD_BANS = 1_000_000  # ban changes held while the store is down (bounded like everything else)

Sink = Callable[[Sequence[Effect]], Awaitable[None]]


class EffectPump:
    def __init__(
        self,
        take: Callable[[], list[Effect]],
        sink: Sink,
        *,
        interval: float = FLUSH_INTERVAL,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._take = take
        self._sink = sink
        self._interval = interval
        self._max_batch = max_batch
        self._held: list[Effect] = []  # ban changes a failed write could not store yet
        self.shed = 0
        self.written = 0
        self.failures = 0
        self.queue_depth = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
            await self.flush()

    async def flush(self) -> None:
        batch = self._held + self._take()
        self._held = []
        if len(batch) > self._max_batch:
            keep = [e for e in batch if _precious(e)]
            rest = [e for e in batch if not _precious(e)]
            room = max(0, self._max_batch - len(keep))
            self.shed += len(rest) - room
            batch = keep + (rest[-room:] if room else [])
        self.queue_depth = len(batch)
        if not batch:
            return
        try:
            await self._sink(batch)
        except StoreError as exc:
            self.failures += 1
            bans = [e for e in batch if _precious(e)]
            if exc.retryable:  # full disk, locked, read-only: the bans wait for the store to heal
                self._held = bans[-MAX_HELD_BANS:]
            self.shed += len(batch) - len(self._held)
            log.error(
                "store write failed (%s); %d ban changes held for retry, %d records dropped",
                exc,
                len(self._held),
                len(batch) - len(self._held),
            )
            return
        except Exception:  # a bug in a sink must not stop the proxy: log it, keep the bans
            self.failures += 1
            self._held = [e for e in batch if _precious(e)][-MAX_HELD_BANS:]
            log.exception("store write failed unexpectedly; ban changes held for retry")
            return
        self.written += len(batch)
        self.queue_depth = 0


def _precious(effect: Effect) -> bool:
    """Never shed: ban changes (the ban table must survive a restart) and the login history."""
    return isinstance(effect, BanIssued | BanLifted | LoginSeen)
