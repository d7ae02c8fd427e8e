"""TCP on the outside: connections are limited per source and in total, an unframeable stream is
cut, an idle connection is closed, and CRLF keep-alives are answered (RFC 5626)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipguard.io.tcp import TcpLimits
from tests.proxy.guard import GuardHandle, policy_text, running_guard
from tests.proxy.stub import UdpPeer

pytestmark = pytest.mark.integration


@pytest.fixture
def pbx() -> Iterator[UdpPeer]:
    peer = UdpPeer()
    yield peer
    peer.close()


def connect(guard: GuardHandle, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(5.0)
    sock.connect(guard.outside("tcp"))
    return sock


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the other side closes (EOF or reset) within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_connections_per_source_are_limited(pbx: UdpPeer, tmp_path: Path) -> None:
    limits = TcpLimits(max_per_ip=2, max_total=100)
    with running_guard(policy_text(pbx.url), tmp_path, tcp_limits=limits) as guard:
        kept = [connect(guard, "127.0.0.2"), connect(guard, "127.0.0.2")]
        third = connect(guard, "127.0.0.2")
        assert closed_by_peer(third)
        other = connect(guard, "127.0.0.3")  # another source still gets in
        other.sendall(b"\r\n\r\n")
        assert other.recv(16) == b"\r\n"
        assert guard.info.counters.tcp_refused == 1
        for sock in (*kept, third, other):
            sock.close()


def test_an_unframeable_stream_is_closed(pbx: UdpPeer, tmp_path: Path) -> None:
    with running_guard(policy_text(pbx.url), tmp_path) as guard:
        sock = connect(guard)
        sock.sendall(
            b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx\r\n"
            b"Content-Length: -999\r\n\r\n"
        )
        assert closed_by_peer(sock)
        assert guard.info.counters.tcp_closed_bad_stream == 1
        sock.close()


def test_keepalives_are_answered_and_idle_connections_closed(pbx: UdpPeer, tmp_path: Path) -> None:
    limits = TcpLimits(idle_timeout=0.5)
    with running_guard(policy_text(pbx.url), tmp_path, tcp_limits=limits) as guard:
        sock = connect(guard)
        sock.sendall(b"\r\n\r\n")
        assert sock.recv(16) == b"\r\n"  # RFC 5626 pong
        started = time.monotonic()
        assert closed_by_peer(sock, timeout=5.0)
        assert 0.4 < time.monotonic() - started < 3.0
        sock.close()
