"""Alert sinks on real loopback sockets (an HTTP receiver, UDP and TCP syslog collectors, files),
de-duplication with an injected clock, and what a dead sink costs the proxy (nothing)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from sipguard.engine.effects import SecurityEvent
from sipguard.policy.model import (
    Endpoint,
    FileSink,
    Severity,
    SyslogFormat,
    SyslogSink,
    Transport,
    WebhookSink,
)
from sipguard.services.alert_formats import Alert
from sipguard.services.alerts import AlertRouter, Deduplicator
from tests.alerts.test_formats import parse_cef, parse_rfc5424

pytestmark = pytest.mark.timeout(60)

T0 = 1_714_564_800.0
SECRET = "change-me"

BRUTE_FORCE = SecurityEvent(
    T0,
    "brute_force",
    Severity.WARNING,
    "203.0.113.66",
    5062,
    "RU",
    "1000",
    "REGISTER",
    "brute_force",
    "5 failed logins within 60s (401); accounts: '1000'",
)
BAN = SecurityEvent(
    T0,
    "ban",
    Severity.WARNING,
    "203.0.113.66",
    5062,
    "RU",
    "1000",
    "REGISTER",
    "brute_force",
    "brute_force: banned until 1714565400 (1 offences): 5 failed logins within 60s (401)",
)
TOLL_FRAUD = SecurityEvent(
    T0 + 5,
    "fraud_destination",
    Severity.ERROR,
    "10.0.0.5",
    5060,
    None,
    "2001",
    "INVITE",
    "fraud.destinations.deny_types",
    "call to +881612345678: satellite (GMSS) is a denied number type",
)


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def wait_until(what: Callable[[], bool], within: float = 5.0) -> None:
    """Poll `what` until it holds; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not what():
        if loop.time() > deadline:
            raise AssertionError(f"not within {within}s")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(router: AlertRouter, grace: float = 2.0) -> AsyncIterator[AlertRouter]:
    stop = asyncio.Event()
    task = asyncio.create_task(router.run(stop))
    try:
        yield router
    finally:
        stop.set()
        await task
        await router.close(grace)


# ------------------------------------------------------------------------------------ receivers


@dataclass
class Request:
    line: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        return cast(dict[str, object], json.loads(self.body))


@dataclass
class HttpReceiver:
    """A minimal HTTP/1.1 server: records each request, answers `statuses` in turn (then 200),
    or never answers (`answer=False`)."""

    statuses: list[int] = field(default_factory=list)
    answer: bool = True
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> HttpReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._release.set()  # silent handlers return (cancelling them upsets 3.11's streams)
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        if self.tls is not None:
            return f"https://localhost:{port}/hooks/sipguard"
        return f"http://127.0.0.1:{port}/hooks/sipguard?token=abc"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("ascii")
            line, *rest = head.split("\r\n")
            headers = {}
            for h in rest:
                if h:
                    name, _, value = h.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers["content-length"]))
            self.requests.append(Request(line, headers, body))
            if not self.answer:
                await self._release.wait()
                return
            status = self.statuses.pop(0) if self.statuses else 200
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


class UdpCollector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.datagrams.append(data)


@contextlib.asynccontextmanager
async def udp_collector() -> AsyncIterator[tuple[UdpCollector, int]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        UdpCollector, local_addr=("127.0.0.1", 0)
    )
    try:
        yield proto, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


@dataclass
class TcpCollector:
    """Reads RFC 6587 octet-counted frames."""

    frames: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = await reader.readuntil(b" ")
                self.frames.append(await reader.readexactly(int(length[:-1])))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def tcp_collector() -> AsyncIterator[TcpCollector]:
    collector = TcpCollector()
    server = await asyncio.start_server(collector.handle, "127.0.0.1", 0)
    collector.port = server.sockets[0].getsockname()[1]
    try:
        yield collector
    finally:
        server.close()


def free_port() -> int:
    """A loopback TCP port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_signature(request: Request) -> None:
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-sipguard-signature"] == f"sha256={expected}"


# --------------------------------------------------------------------------------------- webhook


@pytest.mark.asyncio
@pytest.mark.integration
async def test_webhook_gets_a_brute_force_ban_and_toll_fraud_with_fields_and_hmac() -> None:
    async with HttpReceiver() as hook:
        router = AlertRouter(
            [WebhookSink(hook.url, Severity.WARNING, SECRET)], clock=FakeClock(), hostname="edge1"
        )
        async with running(router):
            router.submit([BRUTE_FORCE, BAN])  # one batch of the effect pump
            router.submit([SecurityEvent(T0, "rule", Severity.NOTICE, "198.51.100.1")])  # below
            router.submit([TOLL_FRAUD])
            await wait_until(lambda: len(hook.requests) == 3)
    assert [r.line for r in hook.requests] == ["POST /hooks/sipguard?token=abc HTTP/1.1"] * 3
    for request in hook.requests:
        check_signature(request)
        assert request.headers["content-type"] == "application/json"
        assert request.headers["host"].startswith("127.0.0.1:")
    bodies = {str(r.json()["event"]): r.json() for r in hook.requests}
    assert set(bodies) == {"brute_force", "ban", "fraud_destination"}
    ban = bodies["ban"]
    assert ban["severity"] == "warning"
    assert ban["time"] == "2024-05-01T12:00:00.000Z"
    assert ban["source"] == {"ip": "203.0.113.66", "port": 5062}
    assert (ban["country"], ban["account"], ban["method"], ban["rule"]) == (
        "RU",
        "1000",
        "REGISTER",
        "brute_force",
    )
    assert ban["evidence"] == BAN.detail
    assert (ban["count"], ban["summary"], ban["host"]) == (1, False, "edge1")
    assert ban["sipguard"]
    fraud = bodies["fraud_destination"]
    assert fraud["severity"] == "error" and fraud["account"] == "2001"
    assert fraud["evidence"] == TOLL_FRAUD.detail
    assert fraud["rule"] == "fraud.destinations.deny_types"
    (stats,) = router.stats().values()
    assert stats["delivered"] == 3 and stats["filtered"] == 1 and stats["failed"] == 0


@pytest.mark.asyncio
@pytest.mark.integration
async def test_a_flood_gives_one_alert_and_one_summary_with_the_count() -> None:
    clock = FakeClock()
    async with HttpReceiver() as hook:
        router = AlertRouter(
            [WebhookSink(hook.url, Severity.INFO, None)], clock=clock, window=60.0, tick=3600.0
        )
        async with running(router):
            for _ in range(10_000):
                router.submit([BRUTE_FORCE])
            await wait_until(lambda: len(hook.requests) == 1)
            (stats,) = router.stats().values()
            assert stats["suppressed"] == 9_999 and stats["queued"] == 0
            clock.now += 61.0  # the window closes
            router.tick()
            await wait_until(lambda: len(hook.requests) == 2)
            clock.now += 61.0  # a quiet window: nothing more
            router.tick()
            router.submit([BRUTE_FORCE])  # the next one after the quiet is news again
            await wait_until(lambda: len(hook.requests) == 3)
    first, summary, again = (r.json() for r in hook.requests)
    assert "X-SIPGuard-Signature".lower() not in hook.requests[0].headers  # no secret
    assert (first["count"], first["summary"]) == (1, False)
    assert (summary["count"], summary["summary"]) == (9_999, True)
    assert str(summary["title"]).startswith("9999 more like this: SIP brute force")
    assert (again["count"], again["summary"]) == (1, False)
    (stats,) = router.stats().values()
    assert stats["delivered"] == 3 and stats["dropped"] == 0


@pytest.mark.asyncio
@pytest.mark.integration
async def test_close_sends_the_pending_summaries() -> None:
    async with HttpReceiver() as hook:
        router = AlertRouter([WebhookSink(hook.url, Severity.INFO, None)], clock=FakeClock())
        async with running(router):
            router.submit([TOLL_FRAUD] * 3)
            await wait_until(lambda: len(hook.requests) == 1)
        # closed without the window closing: the summary still went out
        assert [r.json()["count"] for r in hook.requests] == [1, 2]


@pytest.mark.asyncio
@pytest.mark.integration
async def test_webhook_retries_with_backoff_and_does_not_retry_a_client_error() -> None:
    async with HttpReceiver(statuses=[503, 502, 200, 400]) as hook:
        router = AlertRouter(
            [WebhookSink(hook.url, Severity.INFO, SECRET)],
            clock=FakeClock(),
            retries=3,
            backoff=0.01,
        )
        async with running(router):
            router.submit([BAN])
            await wait_until(lambda: next(iter(router.stats().values()))["delivered"] == 1)
            router.submit([TOLL_FRAUD])  # answered 400: a misconfiguration, not retried
            await wait_until(lambda: next(iter(router.stats().values()))["failed"] == 1)
        (stats,) = router.stats().values()
        assert stats["retried"] == 2 and len(hook.requests) == 4
        for request in hook.requests:
            check_signature(request)


@pytest.mark.asyncio
@pytest.mark.integration
@pytest.mark.parametrize("dead", ["refused", "silent"])
async def test_a_dead_webhook_does_not_slow_submit_and_its_failures_are_counted(
    dead: str,
) -> None:
    async with HttpReceiver(answer=False) as silent:
        url = silent.url if dead == "silent" else f"http://127.0.0.1:{free_port()}/hook"
        router = AlertRouter(
            [
                WebhookSink(url, Severity.INFO, SECRET),
                SyslogSink(Endpoint(Transport.UDP, "127.0.0.1", 9)),
            ],
            clock=time.time,
            timeout=0.2,
            retries=1,
            backoff=0.01,
            queue_size=100,
        )
        name = next(n for n in router.stats() if n.startswith("webhook:"))
        async with running(router, grace=0.3):
            router.submit([BAN])
            await wait_until(lambda: router.stats()[name]["failed"] >= 1)  # really dead
            events = [
                SecurityEvent(T0, "rate_limited", Severity.WARNING, f"198.51.{n >> 8}.{n & 255}")
                for n in range(10_000)
            ]
            started = time.perf_counter()
            for event in events:  # 10,000 distinct sources: the worst case for the tables
                router.submit([event])
            for _ in range(10_000):  # and a flood from one
                router.submit([BRUTE_FORCE])
            took = time.perf_counter() - started
            stats = router.stats()[name]
            await wait_until(lambda: router.stats()[name]["failed"] >= 3)
        print(f"20,000 submits with a {dead} webhook: {took * 1000:.1f} ms")
        assert took < 1.0  # measured: a few tens of ms
        assert stats["suppressed"] > 9_000  # over budget and repeats: counted, not queued
        assert stats["dropped"] >= 0 and stats["queued"] <= 100
        final = router.stats()[name]
        assert final["failed"] >= 3 and final["delivered"] == 0
        assert final["queued"] == 0  # close() dropped what it could not send: counted
        assert final["failed"] + final["dropped"] >= 100  # 1 + 99 (budget) + 2 summaries


@pytest.mark.asyncio
@pytest.mark.integration
async def test_close_is_bounded_by_its_grace_with_a_silent_webhook() -> None:
    async with HttpReceiver(answer=False) as silent:
        router = AlertRouter(
            [WebhookSink(silent.url, Severity.INFO, None)], clock=FakeClock(), timeout=30.0
        )
        stop = asyncio.Event()
        task = asyncio.create_task(router.run(stop))
        router.submit([BAN, TOLL_FRAUD])
        await wait_until(lambda: len(silent.requests) == 1)  # stuck in the first request
        stop.set()
        await task  # run() returns at once, the request in flight stays queued
        started = time.perf_counter()
        await router.close(0.3)
        assert time.perf_counter() - started < 1.0
        (stats,) = router.stats().values()
        assert stats["dropped"] == 2 and stats["queued"] == 0


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (openssl), and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        [openssl, *args, "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.asyncio
@pytest.mark.integration
async def test_https_webhook_verifies_the_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    async with HttpReceiver(tls=server_tls) as hook:
        trusting = AlertRouter(
            [WebhookSink(hook.url, Severity.INFO, SECRET)],
            clock=FakeClock(),
            ssl_context=ssl.create_default_context(cafile=str(cert)),
        )
        async with running(trusting):
            trusting.submit([BAN])
            await wait_until(lambda: len(hook.requests) == 1)
        check_signature(hook.requests[0])
        assert hook.requests[0].headers["host"].startswith("localhost:")
        default = AlertRouter(  # the system's CAs do not know a self-signed certificate
            [WebhookSink(hook.url, Severity.INFO)], clock=FakeClock(), retries=0
        )
        async with running(default):
            default.submit([BAN])
            await wait_until(lambda: next(iter(default.stats().values()))["failed"] == 1)
        assert len(hook.requests) == 1


# ---------------------------------------------------------------------------------------- syslog


@pytest.mark.asyncio
@pytest.mark.integration
async def test_syslog_udp_rfc5424_and_tcp_cef_lines_parse() -> None:
    async with udp_collector() as (udp, udp_port), tcp_collector() as tcp:
        sinks = [
            SyslogSink(Endpoint(Transport.UDP, "127.0.0.1", udp_port), SyslogFormat.RFC5424),
            # a DNS name: resolved off the loop
            SyslogSink(Endpoint(Transport.TCP, "localhost", tcp.port), SyslogFormat.CEF),
        ]
        router = AlertRouter(sinks, clock=FakeClock(), hostname="edge1")
        async with running(router):
            router.submit([BAN, TOLL_FRAUD])
            await wait_until(lambda: len(udp.datagrams) == 2 and len(tcp.frames) == 2)
    plain = [parse_rfc5424(d) for d in udp.datagrams]
    assert {m.msgid for m in plain} == {"ban", "fraud_destination"}
    ban = next(m for m in plain if m.msgid == "ban")
    assert ban.pri == 16 * 8 + 4 and ban.host == "edge1" and ban.app == "sipguard"
    assert ban.sd["sipguard@32473"]["src"] == "203.0.113.66"
    assert ban.sd["sipguard@32473"]["account"] == "1000"
    assert ban.sd["sipguard@32473"]["rule"] == "brute_force"
    cefs = [parse_cef(parse_rfc5424(f).msg) for f in tcp.frames]
    fraud = next(c for c in cefs if c.signature_id == "fraud_destination")
    assert fraud.severity == "8" and fraud.ext["suser"] == "2001"
    assert fraud.ext["cat"] == "toll_fraud" and fraud.ext["cs1"] == "fraud.destinations.deny_types"
    banned = next(c for c in cefs if c.signature_id == "ban")
    assert banned.ext["src"] == "203.0.113.66" and banned.ext["act"] == "ban"
    stats = router.stats()
    assert stats[f"syslog:tcp://localhost:{tcp.port}/cef"]["delivered"] == 2


@pytest.mark.asyncio
@pytest.mark.integration
async def test_syslog_tcp_failures_are_counted_and_it_connects_once_the_collector_is_up() -> None:
    port = free_port()
    router = AlertRouter(
        [SyslogSink(Endpoint(Transport.TCP, "127.0.0.1", port), min_severity=Severity.INFO)],
        clock=FakeClock(),
        backoff=0.01,
    )
    collector = TcpCollector(port=port)
    async with running(router):
        router.submit([BAN])  # nobody listens yet
        await wait_until(lambda: next(iter(router.stats().values()))["failed"] == 1)
        server = await asyncio.start_server(collector.handle, "127.0.0.1", port)
        try:
            router.submit([TOLL_FRAUD])
            await wait_until(lambda: len(collector.frames) == 1)
        finally:
            server.close()
    (stats,) = router.stats().values()
    assert stats["retried"] == 1 and stats["delivered"] == 1
    assert parse_rfc5424(collector.frames[0]).msgid == "fraud_destination"


# ------------------------------------------------------------------------------------------ file


@pytest.mark.asyncio
@pytest.mark.integration
async def test_file_sink_appends_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"earlier": true}\n')
    router = AlertRouter([FileSink(str(path), Severity.INFO)], clock=FakeClock())
    async with running(router):
        router.submit([BAN, TOLL_FRAUD, BAN])
        await wait_until(lambda: path.read_text().count("\n") == 3)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"earlier": True}
    assert [(r["event"], r["count"]) for r in lines[1:]] == [
        ("ban", 1),
        ("fraud_destination", 1),
        ("ban", 1),  # the summary of the repeat, at close
    ]
    assert lines[3]["summary"] is True


def unwritable_path(tmp_path: Path) -> str:
    """A file in a read-only directory; root writes there anyway, so then a path under a regular
    file (which fails the same way, with an OSError from open)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").touch()
    except PermissionError:
        return str(ro / "alerts.jsonl")
    (tmp_path / "a-file").touch()
    return str(tmp_path / "a-file" / "alerts.jsonl")


@pytest.mark.asyncio
@pytest.mark.integration
async def test_file_sink_survives_a_read_only_directory_and_a_full_disk(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    sinks = [
        FileSink(unwritable_path(tmp_path), Severity.INFO),
        FileSink("/dev/full", Severity.INFO),  # every write fails with ENOSPC
        FileSink(str(good), Severity.INFO),
    ]
    router = AlertRouter(sinks, clock=FakeClock())
    async with running(router):
        router.submit([BAN])
        router.submit([TOLL_FRAUD])
        await wait_until(lambda: sum(s["failed"] for s in router.stats().values()) >= 4)
        await wait_until(lambda: good.exists() and good.read_text().count("\n") == 2)
    stats = list(router.stats().values())
    assert stats[0]["failed"] >= 2 and stats[0]["delivered"] == 0
    assert stats[1]["failed"] >= 2 and stats[1]["delivered"] == 0
    assert stats[2]["delivered"] == 2 and stats[2]["failed"] == 0
    (tmp_path / "ro").chmod(0o755)


# -------------------------------------------------------------------------- routing (no sockets)


def test_submit_never_raises_and_counts_what_it_cannot_handle() -> None:
    router = AlertRouter([FileSink(os.devnull)], clock=FakeClock())
    router.submit(cast(Sequence[SecurityEvent], [object()]))
    assert router.errors == 1
    router.submit([])
    AlertRouter([], clock=FakeClock()).submit([BAN])


def test_queue_bound_drops_and_counts() -> None:
    router = AlertRouter(
        [FileSink(os.devnull, Severity.INFO)], clock=FakeClock(), queue_size=10
    )  # not running: nothing drains
    router.submit(
        [SecurityEvent(T0, "rule", Severity.WARNING, f"198.51.100.{n}") for n in range(25)]
    )
    (stats,) = router.stats().values()
    assert stats["queued"] == 10 and stats["dropped"] == 15


def test_sink_names_are_unique_and_hide_credentials() -> None:
    router = AlertRouter(
        [
            WebhookSink("https://user:pw@noc.example.net/hook?token=secret"),
            WebhookSink("https://user:pw@noc.example.net/hook?token=other"),
            SyslogSink(Endpoint(Transport.UDP, "::1", 514), SyslogFormat.CEF),
            FileSink("/var/log/sipguard/alerts.jsonl"),
        ],
        clock=FakeClock(),
    )
    assert list(router.stats()) == [
        "webhook:https://noc.example.net/hook",
        "webhook:https://noc.example.net/hook#2",
        "syslog:udp://[::1]:514/cef",
        "file:/var/log/sipguard/alerts.jsonl",
    ]


# ------------------------------------------------------------------- de-duplication (pure)


def dedup(
    window: float = 60.0, max_keys: int = 10_000, max_per_window: int = 100
) -> tuple[Deduplicator, list[Alert]]:
    out: list[Alert] = []
    d = Deduplicator(out.append, window=window, max_keys=max_keys, max_per_window=max_per_window)
    return d, out


def ev(ip: str = "203.0.113.1", kind: str = "rate_limited", at: float = T0) -> SecurityEvent:
    return SecurityEvent(at, kind, Severity.WARNING, ip)


def test_dedup_one_alert_then_one_summary_per_window_while_the_flood_lasts() -> None:
    d, out = dedup(window=60.0)
    for t in range(0, 180):  # three windows of one event per second
        d.offer(ev(at=T0 + t), T0 + t)
    d.expire(T0 + 180)
    assert [(a.count, a.summary) for a in out] == [(1, False), (59, True), (60, True), (60, True)]
    assert out[1].first_at == T0 + 1 and out[1].last_at == T0 + 59
    d.expire(T0 + 240)  # a quiet window: the key is forgotten
    assert len(d) == 0 and len(out) == 4
    d.offer(ev(), T0 + 241)
    assert (out[-1].count, out[-1].summary) == (1, False)


def test_dedup_keys_on_kind_source_and_account() -> None:
    d, out = dedup()
    d.offer(ev(), T0)
    d.offer(ev(kind="ban"), T0)
    d.offer(ev(ip="203.0.113.2"), T0)
    d.offer(SecurityEvent(T0, "fraud_limit", Severity.WARNING, "10.0.0.5", account="1"), T0)
    d.offer(SecurityEvent(T0, "fraud_limit", Severity.WARNING, "10.0.0.5", account="2"), T0)
    d.offer(ev(), T0)
    assert len(out) == 5 and d.suppressed == 1


def test_dedup_budget_turns_a_many_source_flood_into_one_summary_per_kind() -> None:
    d, out = dedup(window=60.0, max_per_window=10)
    for n in range(1_000):
        d.offer(ev(ip=f"198.51.{n >> 8}.{n & 255}"), T0)
    assert len(out) == 10 and d.suppressed == 990
    d.expire(T0 + 60)
    overflow = [a for a in out if a.overflow]
    assert len(overflow) == 1 and overflow[0].count == 990 and overflow[0].summary


def test_dedup_table_is_bounded_and_an_evicted_key_keeps_its_count() -> None:
    d, out = dedup(max_keys=3, max_per_window=100)
    d.offer(ev("203.0.113.1"), T0)
    d.offer(ev("203.0.113.1"), T0)  # a repeat held back
    for n in range(2, 5):
        d.offer(ev(f"203.0.113.{n}"), T0)
    assert len(d) == 3
    assert [(a.event.ip, a.count) for a in out if a.summary] == [("203.0.113.1", 1)]


def test_dedup_clock_stepping_back_does_not_reopen_windows() -> None:
    d, out = dedup(window=60.0)
    d.offer(ev(), T0 + 100)
    d.offer(ev(), T0)  # NTP stepped the clock back: still the same window
    assert len(out) == 1 and d.suppressed == 1
    d.flush()
    assert out[-1].count == 1 and out[-1].summary and len(d) == 0
