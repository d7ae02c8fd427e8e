"""Wiring: bind the sockets a policy names, build the engine, run until told to stop, stop in order."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import ip_network

from sipguard import __version__
from sipguard.engine.compile import compile_policy
from sipguard.engine.context import Side
from sipguard.engine.engine import Engine
from sipguard.engine.proxy import Address, Hop, Router
from sipguard.io.counters import Counters
from sipguard.io.dispatch import Dispatcher
from sipguard.io.tcp import ConnectionLimiter, SipStreamProtocol, TcpLimits
from sipguard.io.udp import SipDatagramProtocol
from sipguard.policy.model import Endpoint, Policy, Transport

log = logging.getLogger("sipguard")

DRAIN_TIMEOUT = 4.0  # seconds granted to close connections on stop; the whole stop stays under 5 s
MAX_PENDING_CONNECT = (
    256 * 1024
)  # bytes queued for one TCP peer while its connection is being opened


@dataclass(frozen=True, slots=True)
class Running:
    """What a started sipguard looks like from outside: its bound addresses and its counters."""

    outside: tuple[Address, ...]
    inside: Address
    upstream: Address
    counters: Counters

    def describe(self) -> str:
        listen = ", ".join(_url(a) for a in self.outside)
        return (
            f"sipguard {__version__} listening on {listen}; "
            f"inside {_url(self.inside)}; forwarding to {_url(self.upstream)}"
        )


class StartupError(Exception):
    """A problem that stops sipguard from starting, said in one line (port in use, no route...)."""


async def serve(
    policy: Policy,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]],
    on_ready: Callable[[Running], None] | None = None,
    clock: Callable[[], float] = time.time,
    tcp_limits: TcpLimits | None = None,
) -> Counters:
    """Run the proxy for `policy` until `shutdown_trigger` returns, then stop in order."""
    loop = asyncio.get_running_loop()
    counters = Counters()
    limiter = ConnectionLimiter(tcp_limits or TcpLimits())
    connecting: dict[tuple[Side, str, int], bytearray] = {}
    tasks: set[asyncio.Task[None]] = set()

    def stream_factory(side: Side, listener: int, pending: bytes = b"") -> SipStreamProtocol:
        return SipStreamProtocol(dispatcher, counters, limiter, side, listener, pending)

    async def open_stream(hop: Hop) -> None:
        key = (hop.side, hop.ip, hop.port)
        try:
            await loop.create_connection(
                lambda: stream_factory(hop.side, hop.listener, bytes(connecting.pop(key, b""))),
                hop.ip,
                hop.port,
            )
        except OSError as exc:
            connecting.pop(key, None)
            counters.send_errors += 1
            log.warning("cannot connect to tcp://%s: %s", _hostport(hop.ip, hop.port), exc)

    def connect(hop: Hop, data: bytes) -> None:
        key = (hop.side, hop.ip, hop.port)
        pending = connecting.get(key)
        if pending is not None:
            if len(pending) + len(data) <= MAX_PENDING_CONNECT:
                pending += data
            else:
                counters.send_errors += 1
            return
        connecting[key] = bytearray(data)
        task = loop.create_task(open_stream(hop))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    dispatcher = Dispatcher(None, clock, counters, connect)
    closers: list[Callable[[], None]] = []
    try:
        outside = await _bind_outside(policy, dispatcher, counters, stream_factory, closers)
        inside = await _bind_inside(policy, dispatcher, counters, stream_factory, closers)
        upstream = Address(policy.upstream.transport, policy.upstream.host, policy.upstream.port)
        router = Router(_advertised(outside, inside), inside, upstream)
        own = [ip_network(a.host) for a in (*outside, inside, upstream)]
        dispatcher.engine = Engine(router, compile_policy(policy, own))
        running = Running(tuple(outside), inside, upstream, counters)
        log.info("%s", running.describe())
        if on_ready is not None:
            on_ready(running)
        await shutdown_trigger()
        log.info("stopping: closing listeners")
    finally:
        for close in closers:  # 1. stop reading
            close()
        for link in list(dispatcher.sockets.streams.values()):  # 2. close connections
            if isinstance(link, SipStreamProtocol):
                link.close()
        for task in tasks:  # 3. give up on connections still being opened
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await asyncio.gather(*tasks, return_exceptions=True)
    log.info("stopped")
    return counters


async def _bind_outside(
    policy: Policy,
    dispatcher: Dispatcher,
    counters: Counters,
    stream_factory: Callable[[Side, int], SipStreamProtocol],
    closers: list[Callable[[], None]],
) -> list[Address]:
    loop = asyncio.get_running_loop()
    bound: list[Address] = []
    for index, endpoint in enumerate(policy.listen):
        try:
            if endpoint.transport is Transport.UDP:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda i=index: SipDatagramProtocol(dispatcher, counters, Side.OUTSIDE, i),
                    local_addr=(endpoint.host, endpoint.port),
                )
                closers.append(transport.close)
                dispatcher.sockets.outside_udp.append(transport)
                port = transport.get_extra_info("sockname")[1]
            else:
                server = await loop.create_server(
                    lambda i=index: stream_factory(Side.OUTSIDE, i),
                    endpoint.host,
                    endpoint.port,
                    reuse_address=True,
                )
                closers.append(server.close)
                dispatcher.sockets.outside_udp.append(None)
                port = server.sockets[0].getsockname()[1]
        except OSError as exc:
            raise StartupError(f"cannot listen on {endpoint.url}: {_why(exc)}") from exc
        dispatcher.sockets.outside_family.append(ipaddress.ip_address(endpoint.host).version)
        bound.append(Address(endpoint.transport, endpoint.host, int(port)))
    return bound


async def _bind_inside(
    policy: Policy,
    dispatcher: Dispatcher,
    counters: Counters,
    stream_factory: Callable[[Side, int], SipStreamProtocol],
    closers: list[Callable[[], None]],
) -> Address:
    loop = asyncio.get_running_loop()
    upstream = policy.upstream
    endpoint = policy.inside or Endpoint(upstream.transport, _local_ip_toward(upstream), 0)
    try:
        if upstream.transport is Transport.UDP:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: SipDatagramProtocol(dispatcher, counters, Side.INSIDE, 0),
                local_addr=(endpoint.host, endpoint.port),
            )
            closers.append(transport.close)
            dispatcher.sockets.inside_udp = transport
            port = transport.get_extra_info("sockname")[1]
        else:
            server = await loop.create_server(
                lambda: stream_factory(Side.INSIDE, 0),
                endpoint.host,
                endpoint.port,
                reuse_address=True,
            )
            closers.append(server.close)
            port = server.sockets[0].getsockname()[1]
    except OSError as exc:
        raise StartupError(
            f"cannot bind inside address {endpoint.url}: {_why(exc)}"
        ) from exc
    return Address(upstream.transport, endpoint.host, int(port))


def _advertised(outside: list[Address], inside: Address) -> list[Address]:
    """Concrete addresses for Via/Record-Route: a wildcard listener advertises the inside host."""
    return [
        Address(a.transport, inside.host, a.port)
        if ipaddress.ip_address(a.host).is_unspecified
        else a
        for a in outside
    ]


def _local_ip_toward(upstream: Endpoint) -> str:
    """The local address the kernel routes to the upstream from (no packet is sent)."""
    family = socket.AF_INET6 if ":" in upstream.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((upstream.host, upstream.port or 5060))
        except OSError as exc:
            raise StartupError(
                f"no route to upstream {upstream.url}: {_why(exc)}"
            ) from exc
        return str(probe.getsockname()[0])


def _why(exc: OSError) -> str:
    """The plain reason ("Address already in use"), whatever loop implementation raised it."""
    for cause in (exc, exc.__cause__, exc.__context__):  # uvloop wraps the errno-carrying error
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno)
    return str(exc)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _url(address: Address) -> str:
    return f"{address.transport.name.lower()}://{_hostport(address.host, address.port)}"
