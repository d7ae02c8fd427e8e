"""Outgoing TCP connections, opened on demand when a message must go to a peer we hold no
connection to (the upstream over TCP, or a client whose connection is gone)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sipguard.engine.context import Side
from sipguard.engine.proxy import Hop
from sipguard.io.counters import Counters
from sipguard.io.tcp import SipStreamProtocol

log = logging.getLogger("sipguard.tcp")

MAX_PENDING_CONNECT = 256 * 1024  # bytes queued for one peer while its connection is being opened


class StreamConnector:
    def __init__(
        self, counters: Counters, factory: Callable[[Side, int, bytes], SipStreamProtocol]
    ) -> None:
        self._counters = counters
        self._factory = factory
        self._pending: dict[tuple[Side, str, int], bytearray] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, hop: Hop, data: bytes) -> None:
        """Queue `data` for `hop` and open the connection if nobody is opening it yet."""
        key = (hop.side, hop.ip, hop.port)
        pending = self._pending.get(key)
        if pending is not None:
            if len(pending) + len(data) <= MAX_PENDING_CONNECT:
                pending += data
            else:
                self._counters.send_errors += 1
            return
        self._pending[key] = bytearray(data)
        task = asyncio.get_running_loop().create_task(self._open(hop, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, hop: Hop, key: tuple[Side, str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(
                lambda: self._factory(hop.side, hop.listener, bytes(self._pending.pop(key, b""))),
                hop.ip,
                hop.port,
            )
        except OSError as exc:
            self._pending.pop(key, None)
            self._counters.send_errors += 1
            log.warning("cannot connect to tcp://%s:%d: %s", hop.ip, hop.port, exc)

    async def close(self, grace: float) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.gather(*self._tasks, return_exceptions=True)
