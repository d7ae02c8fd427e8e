"""Free loopback ports and readiness probes for the real-peer tests.

Ports come from the kernel: bind port 0 on the loopback address, read the number, close, and hand
it to the peer. Between the close and the peer's own bind another process could take the port;
the window is a few milliseconds and the ephemeral range is large, so the wrappers in this package
retry a start once when the peer reports "address already in use" instead of serialising.

Everything here refuses non-loopback addresses: test traffic never leaves the host.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "LOOPBACK",
    "check_loopback",
    "free_port_both",
    "free_tcp_port",
    "free_udp_port",
    "free_udp_port_pair",
    "pid_has_socket",
    "wait_pid_socket",
    "wait_tcp_listening",
    "wait_udp_sip_ready",
]

LOOPBACK: Final = "127.0.0.1"
_ATTEMPTS: Final = 64


def check_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback IP literal; raise ValueError otherwise."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP literal; peers talk to loopback only") from None
    if not addr.is_loopback:
        raise ValueError(f"{host!r} is not a loopback address; peers talk to loopback only")
    return host


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in check_loopback(host) else socket.AF_INET


def _bound_socket(host: str, kind: socket.SocketKind, port: int = 0) -> socket.socket:
    sock = socket.socket(_family(host), kind)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def free_udp_port(host: str = LOOPBACK) -> int:
    """A UDP port that was free on ``host`` a moment ago."""
    with _bound_socket(host, socket.SOCK_DGRAM) as sock:
        port: int = sock.getsockname()[1]
        return port


def free_tcp_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with _bound_socket(host, socket.SOCK_STREAM) as sock:
        port: int = sock.getsockname()[1]
        return port


def free_port_both(host: str = LOOPBACK) -> int:
    """A port free for UDP and TCP at once (SIP listens on both with the same number)."""
    for _ in range(_ATTEMPTS):
        with _bound_socket(host, socket.SOCK_DGRAM) as udp:
            port: int = udp.getsockname()[1]
            try:
                tcp = _bound_socket(host, socket.SOCK_STREAM, port)
            except OSError:
                continue
            tcp.close()
            return port
    raise OSError(f"no port free for both UDP and TCP on {host} after {_ATTEMPTS} attempts")


def free_udp_port_pair(host: str = LOOPBACK, gap: int = 2) -> int:
    """A UDP port P such that P and P + gap were both free (SIPp's -mp binds P and P+2)."""
    for _ in range(_ATTEMPTS):
        with _bound_socket(host, socket.SOCK_DGRAM) as first:
            port: int = first.getsockname()[1]
            if port + gap > 65535:
                continue
            try:
                second = _bound_socket(host, socket.SOCK_DGRAM, port + gap)
            except OSError:
                continue
            second.close()
            return port
    raise OSError(f"no free UDP port pair (gap {gap}) on {host} after {_ATTEMPTS} attempts")


def _options_probe(host: str, port: int, local_port: int, seq: int) -> bytes:
    where = f"[{host}]" if ":" in host else host
    tag = f"{os.getpid()}x{local_port}"
    return (
        f"OPTIONS sip:{where}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {where}:{local_port};branch=z9hG4bK-ready-{tag}-{seq};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:readiness@{where}:{local_port}>;tag={tag}\r\n"
        f"To: <sip:{where}:{port}>\r\n"
        f"Call-ID: ready-{tag}@{where}\r\n"
        f"CSeq: {seq} OPTIONS\r\n"
        "User-Agent: sipguard-test-readiness\r\n"
        "Accept: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def wait_udp_sip_ready(host: str, port: int, deadline_s: float = 10.0, poll_s: float = 0.1) -> int:
    """Send SIP OPTIONS over UDP until any SIP response comes back; return its status code.

    Each probe waits at most ``poll_s`` for an answer (an ICMP port-unreachable counts as "not
    yet"); the whole wait is bounded by ``deadline_s``. Raises TimeoutError when nothing answers.
    Do not point this at a SIPp UAS: SIPp counts the OPTIONS as a failed call.
    """
    end = time.monotonic() + deadline_s
    seq = 0
    last_error = "no response"
    with _bound_socket(host, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        local_port: int = sock.getsockname()[1]
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                where = f"udp:{host}:{port}"
                raise TimeoutError(
                    f"no SIP response from {where} in {deadline_s:.1f}s ({last_error})"
                )
            seq += 1
            try:
                sock.send(_options_probe(host, port, local_port, seq))
            except ConnectionRefusedError:
                last_error = "port unreachable"
            sock.settimeout(max(0.001, min(poll_s, remaining)))
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                last_error = "port unreachable"
                # ICMP came back at once: wait out the poll interval before probing again.
                time.sleep(min(poll_s, max(0.0, end - time.monotonic())))
                continue
            status = _status_code(data)
            if status is not None:
                return status
            last_error = f"non-SIP reply {data[:40]!r}"


def _status_code(data: bytes) -> int | None:
    first = data.split(b"\r\n", 1)[0].split()
    if len(first) >= 2 and first[0] == b"SIP/2.0" and first[1].isdigit():
        return int(first[1])
    return None


def wait_tcp_listening(
    host: str, port: int, deadline_s: float = 10.0, poll_s: float = 0.05
) -> None:
    """Connect to ``host:port`` until it accepts (then close at once); TimeoutError otherwise."""
    end = time.monotonic() + deadline_s
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"nothing listens on tcp:{host}:{port} after {deadline_s:.1f}s")
        try:
            with socket.create_connection((check_loopback(host), port), timeout=remaining):
                return
        except OSError:
            time.sleep(min(poll_s, max(0.0, end - time.monotonic())))


Proto = Literal["udp", "tcp"]


def _proc_net_inodes(host: str, port: int, proto: Proto) -> set[str]:
    """Inodes of sockets bound to host:port in /proc/net (TCP: listening ones only).

    /proc/net prints each 32-bit word of the address in the host's byte order.
    """
    addr = ipaddress.ip_address(check_loopback(host))
    if addr.version == 4:
        table = Path(f"/proc/net/{proto}")
        want = f"{int.from_bytes(addr.packed, sys.byteorder):08X}:{port:04X}"
    else:
        table = Path(f"/proc/net/{proto}6")
        packed = addr.packed
        words = [packed[i : i + 4] for i in range(0, 16, 4)]
        want = "".join(f"{int.from_bytes(w, sys.byteorder):08X}" for w in words) + f":{port:04X}"
    inodes: set[str] = set()
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return inodes
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[1] != want:
            continue
        if proto == "tcp" and fields[3] != "0A":  # 0A = LISTEN
            continue
        inodes.add(fields[9])
    return inodes


def pid_has_socket(pid: int, host: str, port: int, proto: Proto) -> bool:
    """True when process ``pid`` holds a socket bound to host:port (TCP: listening). Linux only."""
    inodes = _proc_net_inodes(host, port, proto)
    if not inodes:
        return False
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return False
    for entry in entries:
        with contextlib.suppress(OSError):
            target = os.readlink(entry)
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    return False


def wait_pid_socket(
    pid: int,
    host: str,
    port: int,
    proto: Proto,
    deadline_s: float,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll until ``pid`` holds the socket; TimeoutError after ``deadline_s``.

    ``alive`` returns False once the process is gone, which ends the wait early (RuntimeError).
    """
    end = time.monotonic() + deadline_s
    while True:
        if pid_has_socket(pid, host, port, proto):
            return
        if alive is not None and not alive():
            raise RuntimeError(f"process {pid} ended before binding {proto}:{host}:{port}")
        if time.monotonic() >= end:
            raise TimeoutError(f"process {pid} did not bind {proto}:{host}:{port} in {deadline_s}s")
        time.sleep(0.02)
