"""A bare UDP endpoint on loopback for tests that need to see exact bytes (a stub PBX, a victim)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from sipguard.core.sip import Hdr, SipRequest, parse_message


class UdpPeer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()[:2]

    @property
    def url(self) -> str:
        return f"udp://{self.host}:{self.port}"

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sock.sendto(data, addr)

    def recv(self, timeout: float = 2.0) -> tuple[bytes, tuple[str, int]] | None:
        """The next datagram, or None when nothing came within `timeout` seconds."""
        self.sock.settimeout(timeout)
        try:
            data, addr = self.sock.recvfrom(65535)
        except (
            TimeoutError,
            BlockingIOError,
        ):  # BlockingIOError: timeout 0 means "only what is there"
            return None
        return data, (addr[0], addr[1])

    def drain(self, quiet: float = 0.2) -> list[bytes]:
        """Everything that arrives until the line stays quiet for `quiet` seconds."""
        out: list[bytes] = []
        while (got := self.recv(quiet)) is not None:
            out.append(got[0])
        return out

    def close(self) -> None:
        self.sock.close()


def answer(request: bytes, status: int = 200, reason: bytes = b"OK", extra: bytes = b"") -> bytes:
    """A response to `request` the way a UAS builds it: all Vias, From, To (+tag), Call-ID, CSeq."""
    msg = parse_message(request)
    assert isinstance(msg, SipRequest)
    vias = b"".join(b"Via: " + msg.raw[v.start : v.end] + b"\r\n" for v in msg.vias())
    to = msg.get(Hdr.TO) or b""
    if msg.to_addr().tag is None:
        to += b";tag=stub"
    number, method = msg.cseq()
    head = [
        b"SIP/2.0 %d %s" % (status, reason),
        b"From: " + (msg.get(Hdr.FROM) or b""),
        b"To: " + to,
        b"Call-ID: " + msg.call_id(),
        b"CSeq: %d %s" % (number, method),
    ]
    return (
        vias.join((head[0] + b"\r\n", b"\r\n".join(head[1:]) + b"\r\n"))
        + extra
        + (b"Content-Length: 0\r\n\r\n")
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `predicate` until it holds or the deadline passes (a deadline, not a sleep,
    synchronises)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
