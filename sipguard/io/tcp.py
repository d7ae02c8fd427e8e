"""TCP adapter: asyncio.Protocol + the pure StreamFramer, with per-connection and per-source limits.

Client connections are kept in the dispatcher's stream table, keyed by the peer address, so
everything
going back to a client that came over TCP leaves on its own connection (DESIGN.md section 1).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import cast

from sipguard.core.sip import SipParseError, StreamFramer
from sipguard.engine.context import Side
from sipguard.io.counters import Counters
from sipguard.io.dispatch import Dispatcher, StreamLink
from sipguard.policy.model import Transport

log = logging.getLogger("sipguard.tcp")


@dataclass(frozen=True, slots=True)
class TcpLimits:
    # 64 KiB: the largest SIP message sipguard accepts at all (core limits), plus one in flight
    max_buffer: int = 128 * 1024
    # Phones send CRLF keep-alives every 30-120 s (RFC 5626 4.4.1); idle 5 min means the phone is
    # gone
    idle_timeout: float = 300.0
    # An office of phones behind one NAT address each hold one connection; 200 leaves room for a PBX
    # farm behind one IP while stopping one source from exhausting file descriptors
    max_per_ip: int = 200
    max_total: int = 10_000


class ConnectionLimiter:
    """Counts live connections per source IP and in total; refuses past the limits."""

    def __init__(self, limits: TcpLimits) -> None:
        self.limits = limits
        self._per_ip: Counter[str] = Counter()
        self._total = 0

    def admit(self, ip: str) -> bool:
        if self._total >= self.limits.max_total or self._per_ip[ip] >= self.limits.max_per_ip:
            return False
        self._per_ip[ip] += 1
        self._total += 1
        return True

    def release(self, ip: str) -> None:
        self._total -= 1
        self._per_ip[ip] -= 1
        if self._per_ip[ip] <= 0:
            del self._per_ip[ip]


class SipStreamProtocol(asyncio.Protocol, StreamLink):
    """One TCP connection. Messages are framed by the pure framer and handed to the dispatcher."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        counters: Counters,
        limiter: ConnectionLimiter,
        side: Side,
        listener: int,
        pending: bytes = b"",
    ) -> None:
        self._dispatcher = dispatcher
        self._counters = counters
        self._limiter = limiter
        self._side = side
        self._listener = listener
        self._pending = pending  # what to send once an outgoing connection is up
        self._framer = StreamFramer(max_buffer=limiter.limits.max_buffer)
        self._transport: asyncio.Transport | None = None
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self.peer: tuple[str, int] = ("", 0)

    # -- lifecycle
    # -------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast("asyncio.Transport", transport)  # uvloop's TCPTransport: same interface
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1]))
        if not self._limiter.admit(self.peer[0]):
            self._counters.tcp_refused += 1
            transport.abort()
            return
        self._admitted = True
        self._dispatcher.sockets.streams[(self._side, *self.peer)] = self
        loop = asyncio.get_running_loop()
        self._last_activity = loop.time()
        self._timer = loop.call_at(
            self._last_activity + self._limiter.limits.idle_timeout, self._idle
        )
        if self._pending:
            transport.write(self._pending)
            self._pending = b""

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._admitted:
            self._admitted = False
            self._limiter.release(self.peer[0])
            key = (self._side, *self.peer)
            if self._dispatcher.sockets.streams.get(key) is self:
                del self._dispatcher.sockets.streams[key]

    def _idle(self) -> None:
        """One timer per connection, re-armed only when it fires early (no per-message timer
        churn)."""
        if self._transport is None or self._transport.is_closing():
            return
        loop = asyncio.get_running_loop()
        deadline = self._last_activity + self._limiter.limits.idle_timeout
        if loop.time() >= deadline:
            self._transport.close()
        else:
            self._timer = loop.call_at(deadline, self._idle)

    # -- data
    # ------------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._last_activity = asyncio.get_running_loop().time()
        try:
            messages = self._framer.feed(data)
        except SipParseError as exc:
            self._counters.tcp_closed_bad_stream += 1
            log.info("closing TCP %s:%d: unframeable stream (%s)", *self.peer, exc.reason)
            self._transport.abort()  # no resynchronisation attempts on a broken stream
            return
        for message in messages:
            if not message:
                self._transport.write(b"\r\n")  # RFC 5626 CRLFCRLF ping -> CRLF pong
                continue
            self._dispatcher.receive(
                message, self.peer[0], self.peer[1], Transport.TCP, self._side, self._listener
            )
            if self._transport.is_closing():
                return

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def send(self, data: bytes) -> None:
        if self._transport is None:
            self._pending += data
        elif not self._transport.is_closing():
            self._transport.write(data)
