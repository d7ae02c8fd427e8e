"""UDP adapter: one callback per datagram, straight into the dispatcher, zero awaits (STYLE C11)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from sipguard.engine.context import Side
from sipguard.io.counters import Counters
from sipguard.io.dispatch import Dispatcher
from sipguard.policy.model import Transport


class SipDatagramProtocol(asyncio.DatagramProtocol):
    """One bound UDP socket, outside (a listener) or inside (toward the upstream)."""

    def __init__(
        self, dispatcher: Dispatcher, counters: Counters, side: Side, listener: int
    ) -> None:
        self._dispatcher = dispatcher
        self._counters = counters
        self._side = side
        self._listener = listener
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport; it has the same
        # interface
        self.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._dispatcher.receive(data, addr[0], addr[1], Transport.UDP, self._side, self._listener)

    def error_received(self, exc: Exception) -> None:
        self._counters.socket_errors += (
            1  # ICMP port unreachable and friends must not stop the loop
        )
