"""Wiring: bind the sockets a policy names, build the engine, run until told to stop, stop in
order."""

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
from datetime import UTC, datetime
from functools import partial
from ipaddress import ip_network
from pathlib import Path

from sipguard import __version__
from sipguard.engine.bans import ActiveBan
from sipguard.engine.compile import CompiledPolicy, compile_policy
from sipguard.engine.context import Side
from sipguard.engine.effects import Effect, SecurityEvent
from sipguard.engine.engine import Engine
from sipguard.engine.proxy import Address, Router
from sipguard.io.connector import StreamConnector
from sipguard.io.control import ControlServer
from sipguard.io.counters import Counters
from sipguard.io.dispatch import Dispatcher
from sipguard.io.geoip import GeoDatabaseError, GeoResolver
from sipguard.io.tcp import ConnectionLimiter, SipStreamProtocol, TcpLimits
from sipguard.io.udp import SipDatagramProtocol
from sipguard.policy.model import Endpoint, Policy, Severity, Transport
from sipguard.services.alerts import AlertRouter
from sipguard.services.logs import ActivityLog, EventLog, run_log_tasks
from sipguard.services.metrics import (
    MetricsServer,
    SipguardCollector,
    metrics_registry,
    start_metrics_server,
)
from sipguard.services.outbox import EffectPump
from sipguard.services.records import PseudonymisingSink, key_path, prune_loop
from sipguard.services.reload import PolicyReloader, ReloadOutcome
from sipguard.services.rollups import RollupWriter
from sipguard.store import Store, StoreError

log = logging.getLogger("sipguard")

DRAIN_TIMEOUT = 3.0  # seconds granted to close connections on stop; the whole stop stays under 5 s
ALERT_GRACE = 1.0  # seconds granted on stop to deliver the alerts still queued
HOUSEKEEPING_INTERVAL = 1.0  # seconds between sweeps (ban expiry, idle buckets)
OFFENCE_MEMORY = 30 * 86400.0  # seconds of ban history that count for escalation after a restart


@dataclass(frozen=True, slots=True)
class Running:
    """What a started sipguard looks like from outside: its addresses, counters and handles."""

    outside: tuple[Address, ...]
    inside: Address
    upstream: Address
    counters: Counters
    engine: Engine
    pump: EffectPump
    request_reload: Callable[[str], None]
    metrics: MetricsServer | None = None  # the Prometheus endpoint, when the policy has one
    rollups: RollupWriter | None = None  # the per-minute record (tests call its `flush`)

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
    watch_policy: bool = True,
) -> Counters:
    """Run the proxy for `policy` until `shutdown_trigger` returns, then stop in order."""
    counters = Counters()
    limiter = ConnectionLimiter(tcp_limits or TcpLimits())

    def stream_factory(side: Side, listener: int, pending: bytes = b"") -> SipStreamProtocol:
        return SipStreamProtocol(dispatcher, counters, limiter, side, listener, pending)

    connector = StreamConnector(counters, stream_factory)
    dispatcher = Dispatcher(None, clock, counters, connector.send)
    store = await _open_store(policy)
    closers: list[Callable[[], None]] = []
    geo_box: list[GeoResolver] = []  # the resolver in use; a reload replaces it
    pump: EffectPump | None = None
    alerts: AlertRouter | None = None
    rollups: RollupWriter | None = None
    try:
        outside = await _bind_outside(policy, dispatcher, counters, stream_factory, closers)
        inside = await _bind_inside(policy, dispatcher, counters, stream_factory, closers)
        upstream = Address(policy.upstream.transport, policy.upstream.host, policy.upstream.port)
        router = Router(_advertised(outside, inside, policy.advertise), inside, upstream)
        own = [ip_network(a.host) for a in (*outside, inside, upstream)]
        geo = await _open_geo(policy)
        geo_box.append(geo)
        engine = Engine(router, compile_policy(policy, own), geo=geo.lookup)
        _warn_if_stale(geo, engine, clock())
        await _restore_bans(engine, store, clock())
        await _record_start(policy, engine, store, clock)
        control = ControlServer(policy.control_path, engine, clock, counters)
        try:
            await control.start()
        except OSError as exc:
            raise StartupError(
                f"cannot open control socket {policy.control_path}: {_why(exc)}"
            ) from exc
        closers.append(control.close)

        alerts = AlertRouter(policy.alerts, clock=clock)
        event_lines = EventLog()

        def take() -> list[Effect]:
            batch, engine.effects = engine.effects, []
            # alerts see every event, before the store may shed some under a flood
            alerts.submit([e for e in batch if isinstance(e, SecurityEvent)])
            event_lines.submit(batch, clock())
            return batch

        records = PseudonymisingSink(
            store.write,
            key_path(policy.storage_path),
            lambda: engine.policy.policy.records.pseudonymise_numbers,
        )
        pump = EffectPump(take, records)
        rollups = RollupWriter(counters, engine, store.write_rollups, clock)
        metrics = await _start_metrics(policy, counters, engine, pump, geo_box, alerts, clock)
        if metrics is not None:
            closers.append(metrics.close)

        def prepare(new: Policy) -> tuple[CompiledPolicy, GeoResolver]:
            """Off the loop: compile, and re-open the GeoIP data (a swapped .mmdb is picked up)."""
            try:
                resolver = GeoResolver.open(new.geo)
            except GeoDatabaseError as exc:
                raise ValueError(f"geo.database: {exc}") from exc
            return compile_policy(new, own), resolver

        def apply(_new: Policy, prepared: tuple[CompiledPolicy, GeoResolver]) -> None:
            compiled, resolver = prepared
            engine.swap_policy(compiled, resolver.lookup)
            old, geo_box[0] = geo_box[0], resolver
            old.close()
            _warn_if_stale(resolver, engine, clock())

        reloader = PolicyReloader(
            policy.source_path,
            policy,
            prepare,
            apply,
            lambda outcome: _record_reload(outcome, engine, store, clock),
        )
        control.reload = reloader.reload_now
        dispatcher.engine = engine
        running = Running(
            tuple(outside),
            inside,
            upstream,
            counters,
            engine,
            pump,
            reloader.request,
            metrics,
            rollups,
        )
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(pump.run(stop))
            tasks.create_task(alerts.run(stop))
            tasks.create_task(_housekeeping(engine, clock, stop))
            tasks.create_task(reloader.run(stop))
            tasks.create_task(rollups.run(stop))
            tasks.create_task(prune_loop(store, lambda: engine.policy.policy.records, clock, stop))
            tasks.create_task(run_log_tasks(event_lines, ActivityLog(counters), clock, stop))
            if watch_policy and _is_file(policy.source_path):
                tasks.create_task(reloader.watch(stop))
            log.info("%s", running.describe())
            if on_ready is not None:
                on_ready(running)
            await shutdown_trigger()
            log.info("stopping: closing listeners")
            _close_all(closers)  # 1. stop reading
            stop.set()  # 2. stop the background tasks
    finally:
        _close_all(closers)
        for link in list(dispatcher.sockets.streams.values()):  # 3. close connections
            if isinstance(link, SipStreamProtocol):
                link.close()
        await connector.close(DRAIN_TIMEOUT)
        if pump is not None:
            await pump.flush()  # 4. persist the last decisions
            event_lines.flush(clock())  # and log what the last windows held back
        if rollups is not None:
            await rollups.flush()  # the partial minute of the record of normal behaviour
        if alerts is not None:
            await alerts.close(ALERT_GRACE)  # 5. what is queued for the NOC, briefly
        await store.close()
        for resolver in geo_box:
            resolver.close()
    log.info("stopped")
    return counters


# A burst of datagrams while the loop is busy must wait in the kernel, not be dropped there: the
# default (~208 KB, about 150 SIP datagrams) overflowed under load in bench/ runs. The kernel caps
# it at net.core.rmem_max; raise that sysctl on busy hosts.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


def _enlarge_receive_buffer(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)


def _is_file(path: str) -> bool:
    return Path(path).is_file()


def _close_all(closers: list[Callable[[], None]]) -> None:
    for close in closers:
        close()
    closers.clear()


async def _open_store(policy: Policy) -> Store:
    try:
        return await Store.open(policy.storage_path)
    except StoreError as exc:
        raise StartupError(f"cannot open the store: {exc}") from exc


async def _start_metrics(
    policy: Policy,
    counters: Counters,
    engine: Engine,
    pump: EffectPump,
    geo_box: list[GeoResolver],
    alerts: AlertRouter,
    clock: Callable[[], float],
) -> MetricsServer | None:
    """The Prometheus endpoint at `metrics: HOST:PORT` (none without it), on this loop."""
    if policy.metrics is None:
        return None
    collector = SipguardCollector(
        counters,
        engine,
        pump,
        geo=lambda: geo_box[0] if geo_box else None,
        alerts=alerts.stats,
        clock=clock,
    )
    try:
        return await start_metrics_server(
            policy.metrics.host, policy.metrics.port, metrics_registry(collector)
        )
    except OSError as exc:
        raise StartupError(f"cannot serve metrics on {policy.metrics}: {_why(exc)}") from exc


async def _open_geo(policy: Policy) -> GeoResolver:
    try:
        return await asyncio.to_thread(GeoResolver.open, policy.geo)
    except GeoDatabaseError as exc:
        raise StartupError(f"cannot open geo.database {policy.geo.database}: {exc}") from exc


def _warn_if_stale(geo: GeoResolver, engine: Engine, now: float) -> None:
    """Old allocation data geo-blocks the wrong countries: say so in the log and as an event."""
    warning = geo.stale_warning(datetime.fromtimestamp(now, UTC).date())
    if warning is not None:
        log.warning("%s", warning)
        engine.effects.append(SecurityEvent(now, "geo_stale", Severity.WARNING, detail=warning))


async def _restore_bans(engine: Engine, store: Store, now: float) -> None:
    """The in-memory table is authoritative while running; the store brings it back after a
    restart."""
    records = await store.active_bans(now)
    offences = await store.offence_counts(now - OFFENCE_MEMORY)
    bans = [
        ActiveBan(r.ip, r.issued_at, r.until, r.reason, r.rule, r.evidence, r.offences, r.actor)
        for r in records
    ]
    loaded = engine.load_bans(bans, offences, now)
    engine.load_logins(await store.login_history())
    if loaded:
        log.info("restored %d active bans from the store", loaded)


async def _housekeeping(engine: Engine, clock: Callable[[], float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HOUSEKEEPING_INTERVAL)
        engine.sweep(clock())


async def _record_start(
    policy: Policy, engine: Engine, store: Store, clock: Callable[[], float]
) -> None:
    """The policy in force from the start goes to the audit trail too (actor "start"), saying
    whether it is the one last recorded."""
    try:
        last = [r for r in await store.reloads(0.0) if r.outcome == "ok"]
    except StoreError as exc:
        log.error("audit trail not read: %s", exc)
        last = []
    if not last:
        summary = f"started sipguard {__version__}; first policy on record"
    elif last[-1].sha256 == policy.source_sha256:
        summary = f"started sipguard {__version__}; policy unchanged since the last record"
    else:
        when = datetime.fromtimestamp(last[-1].at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        summary = (
            f"started sipguard {__version__}; the policy differs from the last one on record "
            f"(sha256 {last[-1].sha256[:12]}, {last[-1].actor} at {when})"
        )
    outcome = ReloadOutcome("start", policy.source_path, True, policy.source_sha256, summary)
    await _record_reload(outcome, engine, store, clock)


async def _record_reload(
    outcome: ReloadOutcome, engine: Engine, store: Store, clock: Callable[[], float]
) -> None:
    """Every reload goes to the audit trail and becomes an event (a failed one is an error)."""
    now = clock()
    severity = Severity.INFO if outcome.ok else Severity.ERROR
    engine.effects.append(
        SecurityEvent(now, "policy_reload", severity, rule=outcome.actor, detail=outcome.summary)
    )
    try:
        await store.record_reload(
            now,
            actor=outcome.actor,
            path=outcome.path,
            sha256=outcome.sha256,
            outcome="ok" if outcome.ok else "failed",
            summary=outcome.summary,
        )
    except StoreError as exc:
        log.error("policy reload not recorded: %s", exc)


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
                    partial(SipDatagramProtocol, dispatcher, counters, Side.OUTSIDE, index),
                    local_addr=(endpoint.host, endpoint.port),
                )
                closers.append(transport.close)
                _enlarge_receive_buffer(transport)
                dispatcher.sockets.outside_udp.append(transport)
                port = transport.get_extra_info("sockname")[1]
            else:
                server = await loop.create_server(
                    partial(stream_factory, Side.OUTSIDE, index),
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
            _enlarge_receive_buffer(transport)
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
        raise StartupError(f"cannot bind inside address {endpoint.url}: {_why(exc)}") from exc
    return Address(upstream.transport, endpoint.host, int(port))


def _advertised(outside: list[Address], inside: Address, advertise: str | None) -> list[Address]:
    """Concrete addresses for Via/Record-Route: a wildcard listener advertises `advertise`, or
    (with a warning: phones on the internet cannot reach it) the inside host."""
    faces = []
    for face in outside:
        if ipaddress.ip_address(face.host).is_unspecified:
            if advertise is None:
                log.warning(
                    "listen %s is a wildcard and the policy has no `advertise`: Record-Route "
                    "will name %s; set `advertise` to the public address",
                    _url(face),
                    inside.host,
                )
            face = Address(face.transport, advertise or inside.host, face.port)
        faces.append(face)
    return faces


def _local_ip_toward(upstream: Endpoint) -> str:
    """The local address the kernel routes to the upstream from (no packet is sent)."""
    family = socket.AF_INET6 if ":" in upstream.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((upstream.host, upstream.port or 5060))
        except OSError as exc:
            raise StartupError(f"no route to upstream {upstream.url}: {_why(exc)}") from exc
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
