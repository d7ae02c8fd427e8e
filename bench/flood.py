"""Floods and crafted packets from many loopback sources, on ``asyncio-dgram``.

``python -m bench.flood --target 127.0.0.1:PORT --kind KIND --rate PPS --duration S --count N
[--sources N] [--net 127.20.0] [--prime scanner]`` sends datagrams from ``N`` sources
(``NET.1`` .. ``NET.N``, each a UDP socket of its own bound to that loopback address), round
robin, at ``PPS`` datagrams per second, until ``--count`` datagrams are sent or ``--duration``
seconds have passed, whichever comes first (SIGTERM or SIGINT end it sooner). It prints
``{"event": "flooding"}`` when the flood itself begins (after the priming), then, at the end, one
JSON line: what it sent, how fast, what came back, and its own CPU time.

Kinds:

* ``banned``: INVITEs to international numbers (what a toll-fraud scanner sends) from sources the
  proxy has banned first. ``--prime scanner`` bans them: one OPTIONS with ``User-Agent:
  friendly-scanner`` from every source, then a pause, before the flood (sipguard's
  ``sip-scanners`` rule and the Kamailio cfg's scanner check both ban on that). The flood itself
  carries no scanner User-Agent: only the ban list can stop it.
* ``register``: REGISTERs without credentials from sources nobody banned, a different user (an
  extension number) and Call-ID in every one: an extension-enumeration sweep at flood rate.
* ``malformed``: garbage and torture-like broken messages (in the spirit of RFC 4475): random
  bytes, a request line alone, missing Via/CSeq/Call-ID, a Content-Length longer than the body or
  negative, a SIP version 7.0, an unknown URI scheme, a CSeq method that is not the request's, an
  empty Via host, a header without a colon, a NUL in a header, an unterminated quoted display
  name, a 4 KB header, a response with a 6-digit status. Each crafted message carries the source's
  own Via, so a proxy that answers (400 and friends) answers the flooder.

Replies are read (and counted) by a task per socket, so they never pile up. The loop is uvloop's,
as sipguard's. Everything is loopback: the target and every source must be in 127.0.0.0/8, and
127.0.0.1 (the proxies' own, trusted address) is never a source.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import random
import resource
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import asyncio_dgram

__all__ = ["KINDS", "FloodResult", "main", "malformed_messages", "source_addresses"]

KINDS: Final = ("banned", "register", "malformed")
TICK_S: Final = 0.001  # the pacing loop wakes up this often ...
MAX_BURST_S: Final = 0.02  # ... and after a stall sends at most this many seconds' worth at once
PRIME_PAUSE_S: Final = 0.5
SCANNER_UA: Final = "friendly-scanner"
MAX_SOURCES: Final = 250


@dataclass(slots=True)
class FloodResult:
    kind: str
    target: str
    sources: int
    target_pps: float
    planned: int  # the count bound
    duration_s: float  # the time bound
    sent: int = 0
    send_errors: int = 0  # sendto refused (ICMP port unreachable) or failed
    replies: int = 0  # datagrams that came back to the sources (400s, 401s, 483s...)
    reply_bytes: int = 0
    primed: int = 0  # scanner OPTIONS sent before the flood
    primed_replies: int = 0
    wall_s: float = 0.0
    achieved_pps: float = 0.0
    cpu_s: float = 0.0  # this process, user + system
    stopped_by: str = ""  # "count", "duration" or "signal"


def source_addresses(net: str, count: int) -> list[str]:
    """``net.1`` .. ``net.count``: loopback, never 127.0.0.1."""
    if not 1 <= count <= MAX_SOURCES:
        raise ValueError(f"sources must be 1..{MAX_SOURCES}")
    out = []
    for index in range(1, count + 1):
        ip = f"{net}.{index}"
        address = ipaddress.ip_address(ip)
        if not address.is_loopback or ip == "127.0.0.1":
            raise ValueError(f"{ip}: flood sources are loopback addresses other than 127.0.0.1")
        out.append(ip)
    return out


def _target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host}: the flood target must be a loopback address")
    return host, int(port)


# ---- what is sent -----------------------------------------------------------------------------


def _headers(ip: str, port: int, target: tuple[str, int], method: str, n: int) -> str:
    host, tport = target
    return (
        f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bKfl{n:x}{port};rport\r\n"
        f"From: <sip:{n % 9000 + 1000}@{host}>;tag=fl{n:x}\r\n"
        f"To: <sip:{n % 9000 + 1000}@{host}:{tport}>\r\n"
        f"Call-ID: fl{n:x}-{port}@{ip}\r\n"
        f"CSeq: 1 {method}\r\n"
        "Max-Forwards: 70\r\n"
    )


def scanner_options(ip: str, port: int, target: tuple[str, int]) -> bytes:
    host, tport = target
    return (
        f"OPTIONS sip:100@{host}:{tport} SIP/2.0\r\n"
        + _headers(ip, port, target, "OPTIONS", 0)
        + f"User-Agent: {SCANNER_UA}\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def banned_invite(ip: str, port: int, target: tuple[str, int], n: int) -> bytes:
    """An INVITE to a premium / far-away number, as toll-fraud scanners send them."""
    host, tport = target
    number = f"00972{592000000 + n % 1_000_000}"
    body = (
        f"v=0\r\no=- {n} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        "m=audio 10000 RTP/AVP 0\r\n"
    )
    return (
        f"INVITE sip:{number}@{host}:{tport} SIP/2.0\r\n"
        + _headers(ip, port, target, "INVITE", n)
        + f"Contact: <sip:{n % 9000 + 1000}@{ip}:{port}>\r\n"
        "User-Agent: Z 3.14.38765 rv2.8.3\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n" + body
    ).encode()


def register(ip: str, port: int, target: tuple[str, int], n: int) -> bytes:
    """A REGISTER for extension ``n`` (varying users), no credentials."""
    host, tport = target
    user = 100 + n % 100_000
    return (
        f"REGISTER sip:{host}:{tport} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bKrg{n:x}{port};rport\r\n"
        f"From: <sip:{user}@{host}>;tag=rg{n:x}\r\n"
        f"To: <sip:{user}@{host}>\r\n"
        f"Call-ID: rg{n:x}-{port}@{ip}\r\n"
        "CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{user}@{ip}:{port}>\r\n"
        "Expires: 3600\r\nMax-Forwards: 70\r\nUser-Agent: Grandstream GXP1625 1.0.4.128\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def malformed_messages(ip: str, port: int, target: tuple[str, int], seed: int = 7) -> list[bytes]:
    """The malformed set for one source: garbage and torture-like broken messages."""
    host, tport = target
    rng = random.Random(seed)
    ruri = f"sip:+31201234567@{host}:{tport}"
    h = _headers(ip, port, target, "INVITE", port)
    body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    out: list[bytes | str] = [
        bytes(rng.getrandbits(8) for _ in range(300)),  # random bytes
        b"INVITE " + bytes(rng.getrandbits(8) for _ in range(200)),  # a method, then junk
        f"INVITE {ruri} SIP/2.0\r\n\r\n".encode(),  # a request line alone
        # no Via (and so no way to answer)
        f"INVITE {ruri} SIP/2.0\r\n" + h.split("\r\n", 1)[1] + "Content-Length: 0\r\n\r\n",
        (  # Content-Length longer than the body (RFC 4475 3.1.2.7, clerr)
            f"INVITE {ruri} SIP/2.0\r\n{h}Content-Type: application/sdp\r\n"
            f"Content-Length: 9999\r\n\r\n{body}"
        ),
        f"INVITE {ruri} SIP/2.0\r\n{h}Content-Length: -5\r\n\r\n",  # negative length
        f"INVITE {ruri} SIP/7.0\r\n{h}Content-Length: 0\r\n\r\n",  # version (badvers01)
        f"INVITE isbn:2983792873 SIP/2.0\r\n{h}Content-Length: 0\r\n\r\n",  # scheme (unkscm)
        (  # CSeq method is not the request's (mismatch01)
            f"OPTIONS {ruri} SIP/2.0\r\n{h}Content-Length: 0\r\n\r\n"
        ),
        (  # an empty Via host
            f"INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP ;branch=z9hG4bKempty\r\n"
            + h.split("\r\n", 1)[1]
            + "Content-Length: 0\r\n\r\n"
        ),
        f"INVITE {ruri} SIP/2.0\r\n{h}Subject no colon here\r\nContent-Length: 0\r\n\r\n",
        f"INVITE {ruri} SIP/2.0\r\n{h}X-Nul: a\x00b\r\nContent-Length: 0\r\n\r\n",
        (  # an unterminated quoted display name
            f"INVITE {ruri} SIP/2.0\r\n"
            + h.replace("From: <", 'From: "Bob \\" <', 1)
            + "Content-Length: 0\r\n\r\n"
        ),
        f"INVITE {ruri} SIP/2.0\r\n{h}X-Filler: {'a' * 4000}\r\nContent-Length: 0\r\n\r\n",
        f"SIP/2.0 999999 Wat\r\n{h}Content-Length: 0\r\n\r\n",  # a response, bad status
        f"REGISTER sip:{host} SIP/2.0\r\n{h}Expires: 99999999999999999999\r\nContent-Length:"
        " 0\r\n\r\n",
    ]
    return [m if isinstance(m, bytes) else m.encode("latin-1") for m in out]


# ---- the generator ----------------------------------------------------------------------------


class _Counts:
    __slots__ = ("bytes", "replies")

    def __init__(self) -> None:
        self.replies = 0
        self.bytes = 0


async def _drain(stream: Any, counts: _Counts) -> None:
    """Read what comes back to one source until its socket closes."""
    with contextlib.suppress(asyncio_dgram.TransportClosed, OSError, asyncio.CancelledError):
        while True:
            data, _ = await stream.recv()
            counts.replies += 1
            counts.bytes += len(data)


async def _open(sources: Sequence[str]) -> list[tuple[Any, int]]:
    """A socket bound to each source address (``asyncio_dgram.bind``; not connected: uvloop's
    transport refuses ``from_socket`` on a connected socket)."""
    streams = []
    try:
        for ip in sources:
            stream = await asyncio_dgram.bind((ip, 0))
            streams.append((stream, int(stream.sockname[1])))
    except BaseException:
        for stream, _ in streams:
            stream.close()
        raise
    return streams


def _builder(
    kind: str, sources: Sequence[str], ports: Sequence[int], target: tuple[str, int]
) -> Callable[[int], bytes]:
    """packet number -> datagram (source = number modulo the sources)."""
    n_src = len(sources)
    if kind == "malformed":
        sets = [
            malformed_messages(ip, port, target) for ip, port in zip(sources, ports, strict=True)
        ]
        return lambda n: sets[n % n_src][(n // n_src) % len(sets[0])]
    if kind == "register":
        return lambda n: register(sources[n % n_src], ports[n % n_src], target, n)
    # banned: a few pre-built INVITEs per source (the content does not matter to a ban list)
    prebuilt = [
        [banned_invite(ip, port, target, k) for k in range(8)]
        for ip, port in zip(sources, ports, strict=True)
    ]
    return lambda n: prebuilt[n % n_src][(n // n_src) % 8]


async def flood(
    target: tuple[str, int],
    kind: str,
    *,
    rate: float,
    duration_s: float,
    count: int,
    sources: Sequence[str],
    prime: str | None = None,
    stop: asyncio.Event | None = None,
    on_start: Callable[[], None] | None = None,
) -> FloodResult:
    """Send ``kind`` datagrams to ``target`` at ``rate`` per second, at most ``count`` of them
    and for at most ``duration_s`` seconds (or until ``stop`` is set)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if rate <= 0 or duration_s <= 0 or count < 0:
        raise ValueError("rate and duration must be positive, count not negative")
    result = FloodResult(kind, f"{target[0]}:{target[1]}", len(sources), rate, count, duration_s)
    stop = stop or asyncio.Event()
    streams = await _open(sources)
    counts = _Counts()
    readers = [asyncio.create_task(_drain(stream, counts)) for stream, _ in streams]
    cpu0 = _cpu()
    try:
        if prime == "scanner":
            for (stream, port), ip in zip(streams, sources, strict=True):
                with contextlib.suppress(OSError, asyncio_dgram.TransportClosed):
                    await stream.send(scanner_options(ip, port, target), target)
                    result.primed += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PRIME_PAUSE_S)
            result.primed_replies = counts.replies
        build = _builder(kind, sources, [port for _, port in streams], target)
        only = [stream for stream, _ in streams]
        n_streams = len(only)
        max_burst = max(1, int(rate * MAX_BURST_S))
        loop = asyncio.get_running_loop()
        if on_start is not None:
            on_start()
        start = loop.time()
        deadline = start + duration_s
        sent = errors = 0
        result.stopped_by = "count"
        while sent < count:
            now = loop.time()
            if now >= deadline:
                result.stopped_by = "duration"
                break
            if stop.is_set():
                result.stopped_by = "signal"
                break
            due = min(count, int((now - start) * rate) + 1)
            burst = min(due - sent, max_burst)
            for _ in range(burst):
                try:
                    await only[sent % n_streams].send(build(sent), target)
                except (OSError, asyncio_dgram.TransportClosed):
                    errors += 1
                sent += 1
            await asyncio.sleep(TICK_S)
        result.wall_s = loop.time() - start
        result.sent = sent
        result.send_errors = errors
        result.achieved_pps = sent / result.wall_s if result.wall_s > 0 else 0.0
        await asyncio.sleep(0.05)  # the last replies
    finally:
        for stream, _ in streams:
            stream.close()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    result.replies = counts.replies - result.primed_replies
    result.reply_bytes = counts.bytes
    result.cpu_s = _cpu() - cpu0
    return result


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _main(args: argparse.Namespace) -> FloodResult:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return await flood(
        _target(args.target),
        args.kind,
        rate=args.rate,
        duration_s=args.duration,
        count=args.count,
        sources=source_addresses(args.net, args.sources),
        prime=args.prime,
        stop=stop,
        on_start=lambda: print(json.dumps({"event": "flooding"}), flush=True),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__)
    parser.add_argument("--target", required=True, help="127.x.y.z:PORT")
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--rate", type=float, required=True, help="datagrams per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds, at most")
    parser.add_argument("--count", type=int, required=True, help="datagrams, at most")
    parser.add_argument("--sources", type=int, default=50, help=f"1..{MAX_SOURCES}")
    parser.add_argument("--net", default="127.20.0", help="sources are NET.1 .. NET.N")
    parser.add_argument("--prime", choices=["scanner"], default=None)
    args = parser.parse_args(argv)
    try:
        from sipguard.io.loop import run  # uvloop, as sipguard

        result = run(_main(args))
    except ValueError as exc:
        print(f"bench.flood: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
