"""Facts about one received message that the sockets know and the bytes don't."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sipguard.policy.model import Transport


class Side(enum.Enum):
    OUTSIDE = "outside"  # phones, trunks, attackers
    INSIDE = "inside"  # the PBX / upstream


@dataclass(slots=True)
class Packet:
    """One message as it arrived. Not frozen: one is built per datagram and that must stay cheap."""

    ip: str
    port: int
    transport: Transport
    side: Side
    now: float  # epoch seconds, read once per datagram by the adapter; the engine's only clock
    listener: int = 0  # index of the outside listener it arrived on (inside: 0)
