"""Moves bytes between sockets and the engine: decide synchronously, then send. No awaits per
message."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sipguard.engine.context import Packet, Side
from sipguard.engine.engine import Engine
from sipguard.engine.proxy import Hop
from sipguard.engine.verdict import Action
from sipguard.io.counters import Counters
from sipguard.policy.model import Transport

log = logging.getLogger("sipguard.io")


class StreamLink:
    """What the dispatcher needs of a TCP connection: write bytes, and its peer."""

    peer: tuple[str, int]

    def send(self, data: bytes) -> None:
        raise NotImplementedError


@dataclass(slots=True)
class Sockets:
    """The live transports, filled in by app.py as it binds them."""

    outside_udp: list[asyncio.DatagramTransport | None] = field(default_factory=list)
    outside_family: list[int] = field(default_factory=list)  # 4 or 6 per outside listener
    inside_udp: asyncio.DatagramTransport | None = None
    streams: dict[tuple[Side, str, int], StreamLink] = field(default_factory=dict)


class Dispatcher:
    """The one place where a decision becomes a send. Outgoing TCP connections are opened on
    demand."""

    def __init__(
        self,
        engine: Engine | None,
        clock: Callable[[], float],
        counters: Counters,
        connect: Callable[[Hop, bytes], None],
    ) -> None:
        self.engine = engine
        self.sockets = Sockets()
        self._clock = clock
        self._counters = counters
        self._connect = connect
        self._timing = counters.decision_times  # metrics: one message in `every` is timed
        self._left = self._timing.every

    def receive(
        self, data: bytes, ip: str, port: int, transport: Transport, side: Side, listener: int
    ) -> None:
        engine = self.engine
        if engine is None:  # sockets bind before the engine knows their addresses; nothing is lost
            return  # but the first packets of a starting proxy, which their senders retransmit
        pkt = Packet(ip, port, transport, side, self._clock(), listener)
        self._left -= 1
        if self._left:
            decision = engine.handle(data, pkt)
        else:  # sampled for sipguard_decision_seconds
            self._left = self._timing.every
            decision = self._timing.measure(engine.handle, data, pkt)
        verdict = decision.verdict
        self._counters.messages[
            (side.value, decision.kind, verdict.action.value, verdict.reason.value)
        ] += 1
        if verdict.rule:  # a policy rule decided (names from the policy only): drops by rule
            self._counters.rules[(verdict.action.value, verdict.reason.value, verdict.rule)] += 1
        if decision.hop is not None and verdict.action is not Action.DROP:
            self.send(decision.data, decision.hop)

    def send(self, data: bytes, hop: Hop) -> None:
        if hop.transport is Transport.UDP:
            sock = self._udp_for(hop)
            if sock is None:
                self._counters.send_errors += 1
                return
            sock.sendto(data, (hop.ip, hop.port))
            return
        link = self.sockets.streams.get((hop.side, hop.ip, hop.port))
        if link is not None:
            link.send(data)
        else:
            self._connect(hop, data)

    def _udp_for(self, hop: Hop) -> asyncio.DatagramTransport | None:
        if hop.side is Side.INSIDE:
            return self.sockets.inside_udp
        socks = self.sockets.outside_udp
        if hop.listener < len(socks) and socks[hop.listener] is not None:
            return socks[hop.listener]
        family = 6 if ":" in hop.ip else 4
        for sock, fam in zip(socks, self.sockets.outside_family, strict=True):
            if sock is not None and fam == family:
                return sock
        return None
