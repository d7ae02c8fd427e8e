"""Alert sinks: webhook (JSON POST, optional HMAC), syslog (RFC 5424 or CEF, UDP or TCP) and a
JSON-lines file, with de-duplication and rate limiting so the NOC sees a flood as one alert and a
count, not ten thousand alerts.

The proxy never waits for a sink: `AlertRouter.submit` is synchronous and O(events x sinks), it
only updates bounded tables and appends to a bounded per-sink queue (what does not fit is dropped
and counted). One task per sink delivers in the background (`run`), with a per-request timeout and
retries with exponential backoff; failures are counted (`stats`) and logged at most once per
`LOG_INTERVAL` per sink.

Per sink and per (kind, source IP, account): the first event goes out at once; repeats within
`window` seconds are counted, and when the window closes one summary ("N more like this") goes
out. While repeats go on, the next window only counts, so a lasting flood gives one summary per
window. The account is part of the source because toll-fraud events of every account come from
the PBX's address. On top of that a sink sends at most `max_per_window` first alerts per window;
past that budget (a flood from many spoofed sources) events are counted per kind and summarised as
one alert "N more ... from several sources".
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import math
import os
import socket
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

from sipguard import __version__
from sipguard.engine.effects import SecurityEvent
from sipguard.policy.model import AlertSink, FileSink, SyslogFormat, SyslogSink, Transport
from sipguard.services.alert_formats import (
    FACILITY_LOCAL0,
    SIGNATURE_HEADER,
    Alert,
    Origin,
    json_body,
    json_line,
    octet_frame,
    sign,
    syslog_message,
)

__all__ = [
    "BACKOFF",
    "MAX_KEYS",
    "MAX_PER_WINDOW",
    "QUEUE_SIZE",
    "RETRIES",
    "TIMEOUT",
    "WINDOW",
    "AlertRouter",
    "Deduplicator",
    "DeliveryError",
]

log = logging.getLogger("sipguard.alerts")

WINDOW = 60.0  # seconds of de-duplication per (kind, source)
MAX_KEYS = 10_000  # (kind, source) windows held per sink; the oldest goes first (its summary out)
MAX_KINDS = 256  # over-budget summaries held per sink (one per kind)
MAX_PER_WINDOW = 100  # first alerts a sink sends per window; past that, per-kind summaries only
QUEUE_SIZE = 1_000  # alerts waiting per sink; past that new ones are dropped (counted)
TIMEOUT = 5.0  # seconds per webhook request / syslog send
RETRIES = 3  # tries after the first (webhook; syslog TCP reconnects once)
BACKOFF = 0.5  # seconds before the first retry, doubled for each next one (0.5, 1, 2)
TICK = 1.0  # seconds between checks for windows that closed
LOG_INTERVAL = 60.0  # at most one failure line per sink per this many seconds
RESOLVE_TTL = 300.0  # seconds a UDP syslog socket is used before re-opening (re-resolving)
SYSLOG_BATCH = 50  # alerts per syslog send
FILE_BATCH = 200  # alerts per file append
MAX_RESPONSE_LINE = 8 * 1024  # bytes of the webhook's status line we read

Clock = Callable[[], float]


class DeliveryError(Exception):
    """A sink answered, but not with success (`retryable`: 5xx, 408 and 429 are)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


# ------------------------------------------------------------------------------ de-duplication


@dataclass(slots=True)
class _Window:
    opened: float  # router clock
    count: int = 0  # repeats held back since the window opened
    first_at: float = 0.0  # event times of the first and last repeat
    last: SecurityEvent | None = None


class Deduplicator:
    """The de-duplication and budget of one sink. `emit` receives each alert to send; `now` is
    the router clock (a clock that steps back is held at its latest value)."""

    def __init__(
        self,
        emit: Callable[[Alert], None],
        *,
        window: float = WINDOW,
        max_keys: int = MAX_KEYS,
        max_per_window: int = MAX_PER_WINDOW,
    ) -> None:
        if window <= 0 or max_keys < 1 or max_per_window < 1:
            raise ValueError("window, max_keys and max_per_window must be positive")
        self._emit = emit
        self._window = window
        self._max_keys = max_keys
        self._max_per_window = max_per_window
        self._open: OrderedDict[tuple[str, str, str], _Window] = OrderedDict()  # oldest first
        self._overflow: dict[str, _Window] = {}  # kind -> over-budget events (insertion order)
        self._due = math.inf  # when the oldest window closes
        self._now = -math.inf
        self._budget_start = -math.inf
        self._budget_used = 0
        self.suppressed = 0  # events held back and counted into a summary

    def __len__(self) -> int:
        return len(self._open) + len(self._overflow)

    def offer(self, event: SecurityEvent, now: float) -> None:
        now = self._monotone(now)
        if now >= self._due:
            self.expire(now)
        key = (event.kind, event.ip, event.account or "")
        window = self._open.get(key)
        if window is not None:
            self._repeat(window, event)
            return
        if now - self._budget_start >= self._window:
            self._budget_start, self._budget_used = now, 0
        if self._budget_used >= self._max_per_window:
            window = self._overflow.get(event.kind)
            if window is None:
                if len(self._overflow) >= MAX_KINDS:
                    oldest = next(iter(self._overflow))
                    self._close(self._overflow.pop(oldest), overflow=True)
                window = self._overflow[event.kind] = _Window(now)
                self._due = min(self._due, now + self._window)
            self._repeat(window, event)
            return
        self._budget_used += 1
        self._open[key] = _Window(now)
        self._due = min(self._due, now + self._window)
        if len(self._open) > self._max_keys:
            _, evicted = self._open.popitem(last=False)
            self._close(evicted, overflow=False)  # early, so its count is not lost
        self._emit(Alert(event, first_at=event.at, last_at=event.at))

    def expire(self, now: float) -> None:
        """Close the windows that are `window` old: summaries of what they held back go out."""
        now = self._monotone(now)
        if now < self._due:
            return
        span = self._window
        while self._open:
            key, window = next(iter(self._open.items()))
            if now - window.opened < span:
                break
            del self._open[key]
            if window.count:
                self._close(window, overflow=False)
                self._open[key] = _Window(now)  # the flood goes on: the next window only counts
        for kind, window in list(self._overflow.items()):
            if now - window.opened >= span:
                del self._overflow[kind]
                self._close(window, overflow=True)
        opened = [w.opened for w in self._overflow.values()]
        if self._open:
            opened.append(next(iter(self._open.values())).opened)
        self._due = min(opened) + span if opened else math.inf

    def flush(self) -> None:
        """Every pending summary now (at shutdown)."""
        for window in self._open.values():
            self._close(window, overflow=False)
        for window in self._overflow.values():
            self._close(window, overflow=True)
        self._open.clear()
        self._overflow.clear()
        self._due = math.inf

    def _repeat(self, window: _Window, event: SecurityEvent) -> None:
        if not window.count:
            window.first_at = event.at
        window.count += 1
        window.last = event
        self.suppressed += 1

    def _close(self, window: _Window, *, overflow: bool) -> None:
        if window.count and window.last is not None:
            self._emit(
                Alert(
                    window.last,
                    window.count,
                    summary=True,
                    first_at=window.first_at,
                    last_at=window.last.at,
                    overflow=overflow,
                )
            )

    def _monotone(self, now: float) -> float:
        if now < self._now:
            return self._now
        self._now = now
        return now


# -------------------------------------------------------------------------------- transports


class _Transport(Protocol):
    name: str
    tries: int  # 1 = no retry
    batch: int  # alerts per send
    timeout: float | None  # per send; None: no timeout (a thread cannot be cancelled)

    async def send(self, alerts: list[Alert]) -> None: ...

    def close(self) -> None: ...

    def counters(self) -> dict[str, int]: ...


class _Webhook:
    """HTTP/1.1 POST of the JSON body, one connection per alert (`Connection: close`); https with
    the system's CA store. Redirects are not followed."""

    batch = 1

    def __init__(
        self,
        url: str,
        secret: str | None,
        origin: Origin,
        *,
        timeout: float,
        tries: int,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
            raise ValueError(f"webhook URL with a space or control character: {url!r}")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook URL must be http:// or https://HOST...: {url!r}")
        self._host = parts.hostname.encode("idna").decode("ascii")  # IDN: its A-label
        default_port = 443 if scheme == "https" else 80
        self._port = parts.port or default_port
        bracketed = f"[{self._host}]" if ":" in self._host else self._host
        authority = bracketed if self._port == default_port else f"{bracketed}:{self._port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._target = quote(target, safe="!#$%&'()*+,/:;=?@[]~")  # non-ASCII: UTF-8, %-encoded
        path = self._target.partition("?")[0]
        self.name = f"webhook:{scheme}://{authority}{path}"  # no credentials, no query
        head = [
            f"POST {self._target} HTTP/1.1",
            f"Host: {authority}",
            f"User-Agent: sipguard/{origin.version}",
            "Content-Type: application/json",
            "Connection: close",
        ]
        if parts.username is not None:
            userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            head.append(f"Authorization: Basic {base64.b64encode(userinfo.encode()).decode()}")
        self._head = "\r\n".join(head)
        self._secret = secret
        self._origin = origin
        self._ssl = (ssl_context or ssl.create_default_context()) if scheme == "https" else None
        self.timeout: float | None = timeout
        self.tries = tries

    def request(self, alert: Alert) -> bytes:
        body = json_body(alert, self._origin)
        head = f"{self._head}\r\nContent-Length: {len(body)}"
        if self._secret is not None:
            head += f"\r\n{SIGNATURE_HEADER}: {sign(body, self._secret)}"
        return head.encode("ascii") + b"\r\n\r\n" + body

    async def send(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            status = await self._post(self.request(alert))
            if not 200 <= status < 300:
                retryable = status >= 500 or status in (408, 429)
                raise DeliveryError(f"HTTP {status}", retryable=retryable)

    async def _post(self, request: bytes) -> int:
        reader, writer = await asyncio.open_connection(
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl is not None else None,
            limit=MAX_RESPONSE_LINE,
        )
        try:
            writer.write(request)
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()  # not awaited: a peer that never finishes the close must not hang us
        fields = line.split(None, 2)
        if not line:
            raise DeliveryError("connection closed without a response")
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/1.") or not fields[1].isdigit():
            raise DeliveryError(f"not an HTTP response: {line[:60]!r}")
        return int(fields[1])

    def close(self) -> None:
        return

    def counters(self) -> dict[str, int]:
        return {}


class _UdpErrors(asyncio.DatagramProtocol):
    """Remembers ICMP errors (port unreachable...) of a connected UDP socket."""

    def __init__(self) -> None:
        self.error: OSError | None = None
        self.errors = 0

    def error_received(self, exc: Exception) -> None:
        self.errors += 1
        if isinstance(exc, OSError):
            self.error = exc


class _Syslog:
    """RFC 5424 over UDP (one message per datagram, RFC 5426) or TCP (octet counting, RFC 6587,
    one connection kept open and re-opened after an error). The host may be a DNS name: asyncio
    resolves it off the loop (`getaddrinfo` in a thread, or libuv's under uvloop) when the
    connection is opened; the UDP socket is re-opened, so re-resolved, every RESOLVE_TTL seconds.

    TCP syslog has no acknowledgement: an alert written just as the collector hangs up is lost
    (RFC 6587's known limit); the next one reconnects."""

    batch = SYSLOG_BATCH

    def __init__(self, spec: SyslogSink, origin: Origin, *, facility: int, timeout: float) -> None:
        cef = spec.format is SyslogFormat.CEF
        self.name = f"syslog:{spec.endpoint.url}" + ("/cef" if cef else "")
        self._host = spec.endpoint.host
        self._port = spec.endpoint.port
        self._udp = spec.endpoint.transport is Transport.UDP
        self._cef = cef
        self._origin = origin
        self._facility = facility
        self.timeout: float | None = timeout
        self.tries = 1 if self._udp else 2  # TCP: reconnect once
        self._datagrams: asyncio.DatagramTransport | None = None
        self._opened_at = -math.inf
        self._icmp = _UdpErrors()
        self._icmp_errors = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None

    def message(self, alert: Alert) -> bytes:
        return syslog_message(alert, self._origin, cef=self._cef, facility=self._facility)

    async def send(self, alerts: list[Alert]) -> None:
        messages = [self.message(a) for a in alerts]
        if self._udp:
            await self._send_udp(messages)
        else:
            await self._send_tcp(messages)

    async def _send_udp(self, messages: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        if self._icmp.error is not None:  # the collector refused an earlier datagram: re-open
            self._close_udp()
        if self._datagrams is not None and loop.time() - self._opened_at >= RESOLVE_TTL:
            self._close_udp()
        if self._datagrams is None:
            icmp = self._icmp = _UdpErrors()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: icmp, remote_addr=(self._host, self._port)
            )
            self._datagrams = transport
            self._opened_at = loop.time()
        for message in messages:
            self._datagrams.sendto(message)

    async def _send_tcp(self, messages: list[bytes]) -> None:
        if self._writer is not None and (
            self._writer.is_closing() or (self._reader is not None and self._reader.at_eof())
        ):
            self._close_tcp()  # the collector hung up since the last send
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self._host, self._port, limit=MAX_RESPONSE_LINE
            )
        try:
            self._writer.write(b"".join(octet_frame(m) for m in messages))
            await self._writer.drain()
        except BaseException:
            self._close_tcp()
            raise

    def _close_udp(self) -> None:
        self._icmp_errors += self._icmp.errors
        self._icmp = _UdpErrors()
        if self._datagrams is not None:
            self._datagrams.close()
            self._datagrams = None

    def _close_tcp(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = self._reader = None

    def close(self) -> None:
        self._close_udp()
        self._close_tcp()

    def counters(self) -> dict[str, int]:
        """UDP: ICMP errors (port unreachable...) reported by the kernel after a send; UDP has
        no other failure to see, so `delivered` counts datagrams sent."""
        return {"icmp_errors": self._icmp_errors + self._icmp.errors} if self._udp else {}


class _File:
    """Appends one JSON object per line. Each batch opens the file in append mode in a thread
    (so a rotated file is picked up) and closes it."""

    batch = FILE_BATCH
    tries = 1
    timeout: float | None = None

    def __init__(self, spec: FileSink, origin: Origin) -> None:
        self.name = f"file:{spec.path}"
        self._path = spec.path
        self._origin = origin

    async def send(self, alerts: list[Alert]) -> None:
        data = b"".join(json_line(a, self._origin) for a in alerts)
        await asyncio.to_thread(_append, self._path, data)

    def close(self) -> None:
        return

    def counters(self) -> dict[str, int]:
        return {}


def _append(path: str, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


# ------------------------------------------------------------------------------------- router


class _LogGate:
    """At most one line per `interval`; says how many were held back in between."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = -math.inf
        self._held = 0

    def allow(self) -> int | None:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return None
        held, self._held = self._held, 0
        self._next = now + self._interval
        return held


class _Channel:
    """One sink: its filter, de-duplication, queue, transport and counters."""

    def __init__(
        self,
        transport: _Transport,
        min_level: int,
        *,
        queue_size: int,
        window: float,
        max_keys: int,
        max_per_window: int,
        log_interval: float,
    ) -> None:
        self.transport = transport
        self.name = transport.name
        self.min_level = min_level
        self.queue: deque[Alert] = deque()
        self.queue_size = queue_size
        self.wake = asyncio.Event()
        self.dedup = Deduplicator(
            self.enqueue, window=window, max_keys=max_keys, max_per_window=max_per_window
        )
        self.gate = _LogGate(log_interval)
        self.down = False  # the last delivery failed: no retries until one succeeds
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.filtered = 0
        self.retried = 0

    def enqueue(self, alert: Alert) -> None:
        if len(self.queue) >= self.queue_size:
            self.dropped += 1
            return
        self.queue.append(alert)
        self.wake.set()

    def stats(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "suppressed": self.dedup.suppressed,
            "filtered": self.filtered,
            "retried": self.retried,
            "queued": len(self.queue),
            **self.transport.counters(),
        }


class AlertRouter:
    """Routes the engine's SecurityEvents to the policy's alert sinks.

    Call `submit` from the loop thread (the effect pump), run `run(stop)` as a task, and after it
    returned, `close(grace)` to send what is still queued (summaries of open windows included).
    `clock` gives epoch seconds (the de-duplication windows); tests inject a fake one.
    """

    def __init__(
        self,
        sinks: Sequence[AlertSink],
        *,
        clock: Clock = time.time,
        window: float = WINDOW,
        max_keys: int = MAX_KEYS,
        max_per_window: int = MAX_PER_WINDOW,
        queue_size: int = QUEUE_SIZE,
        timeout: float = TIMEOUT,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
        tick: float = TICK,
        log_interval: float = LOG_INTERVAL,
        facility: int = FACILITY_LOCAL0,
        hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._clock = clock
        self._backoff = backoff
        self._tick = tick
        self._closed = False
        self.errors = 0  # bugs caught in submit (logged)
        origin = Origin(hostname or socket.gethostname(), __version__, str(os.getpid()))
        self._channels: list[_Channel] = []
        names: set[str] = set()
        for spec in sinks:
            transport: _Transport
            if isinstance(spec, FileSink):
                transport = _File(spec, origin)
            elif isinstance(spec, SyslogSink):
                transport = _Syslog(spec, origin, facility=facility, timeout=timeout)
            else:
                transport = _Webhook(
                    spec.url,
                    spec.secret,
                    origin,
                    timeout=timeout,
                    tries=1 + retries,
                    ssl_context=ssl_context,
                )
            base, n = transport.name, 1
            while transport.name in names:
                n += 1
                transport.name = f"{base}#{n}"
            names.add(transport.name)
            self._channels.append(
                _Channel(
                    transport,
                    spec.min_severity.level,
                    queue_size=queue_size,
                    window=window,
                    max_keys=max_keys,
                    max_per_window=max_per_window,
                    log_interval=log_interval,
                )
            )

    # ---- on the loop, synchronous --------------------------------------------------------------

    def submit(self, events: Sequence[SecurityEvent]) -> None:
        """Queue alerts for `events`. Never blocks, never raises."""
        if not events or not self._channels:
            return
        try:
            if self._closed:
                for channel in self._channels:
                    channel.dropped += len(events)
                return
            now = self._clock()
            for channel in self._channels:
                dedup, level = channel.dedup, channel.min_level
                dedup.expire(now)
                for event in events:
                    if event.severity.level < level:
                        channel.filtered += 1
                    else:
                        dedup.offer(event, now)
        except Exception:  # a bug here must not reach the effect pump (or the proxy)
            self.errors += 1
            log.exception("alert routing failed; %d events not alerted", len(events))

    def tick(self) -> None:
        """Close the de-duplication windows that are due (`run` calls it every `tick` s)."""
        now = self._clock()
        for channel in self._channels:
            channel.dedup.expire(now)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per sink name: delivered, failed, dropped, suppressed (folded into summaries),
        filtered (below min_severity), retried, queued, and per transport extras."""
        return {channel.name: channel.stats() for channel in self._channels}

    # ---- background ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; an alert being sent then stays queued for `close`."""
        async with asyncio.TaskGroup() as tasks:
            workers = [
                tasks.create_task(self._work(channel), name=f"alerts {channel.name}")
                for channel in self._channels
            ]
            workers.append(tasks.create_task(self._ticker(), name="alerts tick"))
            await stop.wait()
            for worker in workers:
                worker.cancel()

    async def close(self, grace: float) -> None:
        """Send the pending summaries and what is queued within `grace` seconds (one try per
        alert; a sink stops at its first failure); what is left is dropped (counted)."""
        if self._closed:
            return
        self._closed = True
        for channel in self._channels:
            channel.dedup.flush()
        try:
            async with asyncio.timeout(grace), asyncio.TaskGroup() as tasks:
                for channel in self._channels:
                    tasks.create_task(self._drain(channel))
        except TimeoutError:
            log.warning("alerts: closing timed out after %.1fs", grace)
        finally:
            for channel in self._channels:
                if channel.queue:
                    channel.dropped += len(channel.queue)
                    channel.queue.clear()
                channel.transport.close()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            self.tick()

    async def _work(self, channel: _Channel) -> None:
        while True:
            if not channel.queue:
                channel.wake.clear()
                await channel.wake.wait()
                continue
            batch = list(itertools.islice(channel.queue, channel.transport.batch))
            await self._deliver(channel, batch, final=False)
            for _ in batch:  # only after the send: a cancelled send stays queued for close()
                channel.queue.popleft()

    async def _drain(self, channel: _Channel) -> None:
        while channel.queue:
            batch = list(itertools.islice(channel.queue, channel.transport.batch))
            ok = await self._deliver(channel, batch, final=True)
            for _ in batch:
                channel.queue.popleft()
            if not ok:
                return

    async def _deliver(self, channel: _Channel, batch: list[Alert], *, final: bool) -> bool:
        """One batch, with retries; True when it was delivered. Raises nothing but
        CancelledError."""
        transport = channel.transport
        tries = 1 if final or channel.down else transport.tries
        error: BaseException | None = None
        attempts = 0
        for attempt in range(tries):
            attempts += 1
            if attempt:
                channel.retried += 1
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            try:
                if transport.timeout is None:
                    await transport.send(batch)
                else:
                    async with asyncio.timeout(transport.timeout):
                        await transport.send(batch)
            except DeliveryError as exc:
                error = exc
                if not exc.retryable:
                    break
            except (OSError, TimeoutError, ValueError) as exc:
                error = exc
            except Exception as exc:  # a bug must not stop the other alerts
                log.exception("alerts: %s: sending failed unexpectedly", channel.name)
                error = exc
                break
            else:
                channel.delivered += len(batch)
                channel.down = False
                return True
        channel.failed += len(batch)
        channel.down = True
        held = channel.gate.allow()
        if held is not None:
            log.error(
                "alerts: %s: %d alert(s) not delivered after %d tries: %s%s (%d failed so far)",
                channel.name,
                len(batch),
                attempts,
                type(error).__name__,
                f": {error}" if str(error) else "",
                channel.failed,
            )
            if held:
                log.error("alerts: %s: %d similar failures not logged", channel.name, held)
        return False
