"""The simulated user agents: one UDP socket per attacker, bound to its own loopback source
address (port 0), written with asyncio-dgram (client side: its simplicity fits here).

Every datagram goes through `send`, which counts it against the attack's budget and refuses past
it: no attack can send more than its bound, whatever its loop does. Answers are read by one
background task into a list; final non-2xx answers to our INVITEs get their ACK (out of the same
budget) so the PBX stops retransmitting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import asyncio_dgram

from sipguard.core.sip import Hdr, SipParseError, SipResponse, parse_message
from sipguard.drill.catalogue import MAX_PACKETS
from sipguard.drill.sipmsg import Leg, ack_for
from sipguard.drill.target import Target

__all__ = ["Answer", "Attacker", "BudgetSpent"]


class BudgetSpent(Exception):
    """The attack has sent all the datagrams it may."""


@dataclass(slots=True)
class Answer:
    at: float  # time.time() when it arrived
    status: int  # 0: not a SIP response
    call_id: str
    method: str  # CSeq method
    response: SipResponse | None


@dataclass(slots=True)
class _State:
    answers: list[Answer] = field(default_factory=list)
    invites: dict[str, bytes] = field(default_factory=dict)  # Call-ID -> INVITE sent
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class Attacker:
    """`async with Attacker(source, target, budget) as ua:` one attacker's socket."""

    def __init__(self, source: str, target: Target, budget: int) -> None:
        if budget > MAX_PACKETS:
            raise ValueError(f"budget {budget} is above the drill's bound {MAX_PACKETS}")
        self.source = source
        self.target = target
        self.budget = budget
        self.sent = 0
        self.first_sent: float | None = None
        self._state = _State()
        self._stream: asyncio_dgram.aio.DatagramServer | None = None
        self._reader: asyncio.Task[None] | None = None
        self.leg = Leg(source, 0, target.host, target.port)

    async def __aenter__(self) -> Attacker:
        self._stream = await asyncio_dgram.bind((self.source, 0))
        port = int(self._stream.sockname[1])
        self.leg = Leg(self.source, port, self.target.host, self.target.port)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._stream is not None:
            self._stream.close()

    @property
    def answers(self) -> list[Answer]:
        return self._state.answers

    @property
    def left(self) -> int:
        return self.budget - self.sent

    async def send(self, data: bytes, *, call_id: str = "", invite: bool = False) -> None:
        """Send one datagram to the target; BudgetSpent when the attack's bound is reached."""
        if self.sent >= self.budget:
            raise BudgetSpent(f"{self.source}: {self.budget} datagrams sent")
        assert self._stream is not None
        if invite:
            self._state.invites[call_id] = data
        self.sent += 1
        if self.first_sent is None:
            self.first_sent = time.time()
        await self._stream.send(data, (self.target.host, self.target.port))

    async def final(self, call_id: str, wait: float) -> Answer | None:
        """The final answer (>= 200) to `call_id`, waiting at most `wait` seconds."""
        deadline = time.monotonic() + wait
        while True:
            for answer in self._state.answers:
                if answer.call_id == call_id and answer.status >= 200:
                    return answer
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._state.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._state.arrived.wait(), left)

    async def quiet(self, idle: float, limit: float) -> None:
        """Wait until nothing arrived for `idle` seconds, `limit` seconds at most."""
        deadline = time.monotonic() + limit
        while (left := deadline - time.monotonic()) > 0:
            self._state.arrived.clear()
            try:
                await asyncio.wait_for(self._state.arrived.wait(), min(idle, left))
            except TimeoutError:
                return

    def statuses(self) -> list[int]:
        return [a.status for a in self._state.answers]

    async def _read(self) -> None:
        assert self._stream is not None
        while True:
            try:
                data, _addr = await self._stream.recv()
            except asyncio_dgram.TransportClosed:
                return
            answer = _answer(data)
            self._state.answers.append(answer)
            self._state.arrived.set()
            await self._ack(answer)

    async def _ack(self, answer: Answer) -> None:
        resp = answer.response
        if resp is None or answer.method != "INVITE" or answer.status < 300 or self.left <= 0:
            return
        invite = self._state.invites.get(answer.call_id)
        to = resp.get(Hdr.TO)
        if invite is None or to is None:
            return
        ack = ack_for(invite, to)
        if ack is not None:
            with contextlib.suppress(BudgetSpent, OSError):
                await self.send(ack)


def _answer(data: bytes) -> Answer:
    now = time.time()
    try:
        msg = parse_message(data, datagram=True, strict=False)
    except SipParseError:
        return Answer(now, 0, "", "", None)
    if not isinstance(msg, SipResponse):
        return Answer(now, 0, "", "", None)
    try:
        call_id = msg.call_id().decode("ascii", "replace")
        method = msg.cseq()[1].decode("ascii", "replace")
    except SipParseError:
        return Answer(now, msg.status, "", "", msg)
    return Answer(now, msg.status, call_id, method, msg)
