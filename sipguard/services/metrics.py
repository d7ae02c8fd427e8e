"""The Prometheus endpoint: plain counters read at scrape time, served over a tiny HTTP responder.

The hot path only bumps plain integers (STYLE C17, D5); `SipguardCollector.collect()` turns them
into metric families when Prometheus asks. The responder runs on sipguard's own event loop, so a
scrape reads the counters between two messages, never while one is being decided (no locks, no
thread). A scrape costs the loop about 0.8 ms with 64 message series (process collectors
included) and 5 ms with all 756 (side, kind, action, reason) combinations present.

Wiring (app.py): build the collector from what `serve()` holds, give it its own registry
(`metrics_registry`) and `await start_metrics_server(host, port, registry)` when the policy has
`metrics: HOST:PORT`; `close()` the handle when stopping.

Every label value comes from a closed set in the code (sides, methods, actions, reasons, finding
kinds) or from the policy (rule names, alert sinks), never from message bytes.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from sipguard import __version__
from sipguard.engine.engine import Engine
from sipguard.io.counters import DECISION_BOUNDS_NS, Counters
from sipguard.io.geoip import GeoResolver
from sipguard.services.outbox import EffectPump

__all__ = [
    "AlertStats",
    "MetricsServer",
    "SipguardCollector",
    "metrics_registry",
    "start_metrics_server",
]

log = logging.getLogger("sipguard.metrics")

#: What the alert router's `stats()` returns: {sink name: {outcome: count}}.
AlertStats = Callable[[], Mapping[str, Mapping[str, int]]]

#: Outcome keys of the alert router's stats read as deliveries and as failures.
DELIVERED_KEYS = frozenset({"delivered", "deliveries", "sent", "ok"})
FAILED_KEYS = frozenset({"failed", "failures", "failure", "errors", "error"})
GAUGE_KEYS = frozenset({"queued"})  # a level, not a count: exported as a gauge
MAX_SINKS = 64  # alert sinks exported (they come from the policy; this is a safety cap)
MAX_OUTCOMES = 16  # outcome keys per sink
MAX_LABEL = 200  # characters of a policy-given label value (sink names are URLs)
NO_RULE = "-"  # the rule label of drops and rejects whose verdict names no rule

#: The HTTP side: requests are tiny (`GET /metrics`), clients are few (Prometheus, an operator).
MAX_REQUEST_HEAD = 8192
MAX_CLIENTS = 16
READ_TIMEOUT = 5.0
WRITE_TIMEOUT = 10.0
METRICS_PATH = "/metrics"


class SipguardCollector(Collector):
    """Reads sipguard's plain counters at scrape time and yields Prometheus metric families.

    `geo` returns the resolver in use (a reload replaces it); `alerts` the alert router's
    `stats()`. Both are optional: their metrics are absent without them."""

    def __init__(
        self,
        counters: Counters,
        engine: Engine,
        pump: EffectPump,
        *,
        geo: Callable[[], GeoResolver | None] | None = None,
        alerts: AlertStats | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._counters = counters
        self._engine = engine
        self._pump = pump
        self._geo = geo
        self._alerts = alerts
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "sipguard_build_info", "sipguard's version, always 1", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        yield from self._messages()
        yield from self._engine_stats()
        yield from self._store()
        yield from self._sockets()
        yield self._decision_time()
        if self._geo is not None:
            resolver = self._geo()
            if resolver is not None:
                yield from self._geo_metrics(resolver)
        if self._alerts is not None:
            yield from self._alert_metrics(self._alerts)

    # ---- messages and verdicts -------------------------------------------------------------

    def _messages(self) -> Iterator[Metric]:
        counters = self._counters
        messages = CounterMetricFamily(
            "sipguard_messages",
            "SIP messages by the side they came from (outside, inside), kind (method, `response`, "
            "`malformed`, `-` when dropped by the ban table before parsing), action (forward, "
            "drop, reject) and reason",
            labels=["side", "kind", "action", "reason"],
        )
        refused: dict[tuple[str, str], int] = defaultdict(int)  # (action, reason) -> messages
        for (side, kind, action, reason), n in counters.messages.items():
            messages.add_metric([side, kind, action, reason], n)
            if action != "forward":
                refused[(action, reason)] += n
        yield messages
        named: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        for (action, reason, rule), n in counters.rules.items():
            named[(action, reason)][rule] = n
        drops = CounterMetricFamily(
            "sipguard_drops",
            "Messages dropped silently, by reason and by the policy rule that decided (`-` when "
            "the verdict names none: the ban table, a parse error); sums to the drop actions of "
            "sipguard_messages_total",
            labels=["reason", "rule"],
        )
        rejects = CounterMetricFamily(
            "sipguard_rejects",
            "Messages answered with an error instead of being forwarded, by reason and rule "
            "(`-` when the verdict names none)",
            labels=["reason", "rule"],
        )
        for (action, reason), total in sorted(refused.items()):
            family = drops if action == "drop" else rejects
            rules = named.get((action, reason), {})
            for rule, n in sorted(rules.items()):
                family.add_metric([reason, rule], n)
            rest = total - sum(rules.values())
            if rest > 0 or not rules:
                family.add_metric([reason, NO_RULE], max(rest, 0))
        yield drops
        yield rejects

    def _decision_time(self) -> Metric:
        times = self._counters.decision_times
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, n in zip((*DECISION_BOUNDS_NS, None), times.buckets, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound is None else repr(bound / 1e9), cumulative))
        return HistogramMetricFamily(
            "sipguard_decision_seconds",
            f"Time the engine took to decide one message (parse, checks, routing), sampled: one "
            f"message in {times.every} is timed, so _count counts samples, not messages",
            buckets=buckets,
            sum_value=times.sum_ns / 1e9,
        )

    # ---- what the engine knows -------------------------------------------------------------

    def _engine_stats(self) -> Iterator[Metric]:
        engine = self._engine
        stats = engine.stats()
        yield GaugeMetricFamily(
            "sipguard_bans_active", "Sources in the ban table now", value=stats.bans_active
        )
        issued = CounterMetricFamily(
            "sipguard_bans_issued",
            "Bans issued since start, by reason (rate_limited, rule, brute_force, enumeration, "
            "manual)",
            labels=["reason"],
        )
        for reason, n in sorted(stats.bans_issued.items()):
            issued.add_metric([reason], n)
        yield issued
        yield CounterMetricFamily(
            "sipguard_auth_failures",
            "Authentication failures the PBX answered (401/403/407 to requests that carried "
            "credentials) for untrusted sources; plain digest challenges are not failures",
            value=stats.auth_failures,
        )
        findings = CounterMetricFamily(
            "sipguard_findings",
            "Detector and toll-fraud findings by kind (brute_force, distributed_brute_force, "
            "enumeration, unusual_login, fraud_destination, fraud_limit, fraud_quiet_hours, "
            "fraud_spike)",
            labels=["kind"],
        )
        for kind, n in sorted(stats.findings.items()):
            findings.add_metric([kind], n)
        yield findings
        yield GaugeMetricFamily(
            "sipguard_calls_active",
            "Calls in progress (ringing or answered), all accounts together",
            value=stats.calls_in_progress,
        )
        yield GaugeMetricFamily(
            "sipguard_tracked_sources",
            "Rate-limit buckets held (sources times limit classes); bounded and swept",
            value=stats.tracked_sources,
        )
        yield GaugeMetricFamily(
            "sipguard_effects_pending",
            "Bans, events and logins decided but not yet handed to the store (flushed every "
            "quarter second)",
            value=len(engine.effects),
        )

    def _store(self) -> Iterator[Metric]:
        pump = self._pump
        yield GaugeMetricFamily(
            "sipguard_store_queue_depth",
            "Records in the batch being written to the store, or left by a failed write",
            value=pump.queue_depth,
        )
        yield CounterMetricFamily(
            "sipguard_store_written", "Records written to the store", value=pump.written
        )
        yield CounterMetricFamily(
            "sipguard_store_shed",
            "Event records shed under a flood or a failing store (bans are never shed)",
            value=pump.shed,
        )
        yield CounterMetricFamily(
            "sipguard_store_write_failures", "Store writes that failed", value=pump.failures
        )

    def _sockets(self) -> Iterator[Metric]:
        counters = self._counters
        yield CounterMetricFamily(
            "sipguard_tcp_connections_refused",
            "TCP connections refused by the connection limits",
            value=counters.tcp_refused,
        )
        closed = CounterMetricFamily(
            "sipguard_tcp_connections_closed",
            "TCP connections sipguard closed, by reason (bad_stream: unframeable bytes)",
            labels=["reason"],
        )
        closed.add_metric(["bad_stream"], counters.tcp_closed_bad_stream)
        yield closed
        yield CounterMetricFamily(
            "sipguard_socket_errors",
            "Errors reported by the UDP sockets (ICMP unreachable and the like)",
            value=counters.socket_errors,
        )
        yield CounterMetricFamily(
            "sipguard_send_errors",
            "Messages that could not be sent (no socket for the hop, TCP connect failed, TCP "
            "connect backlog full)",
            value=counters.send_errors,
        )

    # ---- GeoIP and alerts ------------------------------------------------------------------

    def _geo_metrics(self, resolver: GeoResolver) -> Iterator[Metric]:
        database = resolver.database
        today = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC).date()
        built = database.built
        info = GaugeMetricFamily(
            "sipguard_geo_database_info",
            "The GeoIP database in use (source builtin or mmdb, build date), always 1",
            labels=["source", "built"],
        )
        info.add_metric([database.source, built.isoformat() if built else ""], 1)
        yield info
        age = database.age_days(today)
        if age is not None:  # absent when the build date is unknown: alert with absent()
            yield GaugeMetricFamily(
                "sipguard_geo_database_age_days",
                "Age of the GeoIP data in days (old data geo-blocks the wrong countries)",
                value=age,
            )
        yield GaugeMetricFamily(
            "sipguard_geo_database_stale",
            "1 when the GeoIP data is older than geo.max_age_days",
            value=1 if resolver.is_stale(today) else 0,
        )
        cache = resolver.cache
        yield CounterMetricFamily(
            "sipguard_geo_cache_hits",
            "Country lookups answered by the per-address cache (resets when a reload builds a "
            "new resolver)",
            value=cache.hits,
        )
        yield CounterMetricFamily(
            "sipguard_geo_cache_misses",
            "Country lookups that went to the database",
            value=cache.misses,
        )
        yield GaugeMetricFamily(
            "sipguard_geo_cache_entries", "Addresses in the country cache", value=len(cache)
        )

    def _alert_metrics(self, alerts: AlertStats) -> Iterator[Metric]:
        try:
            stats = alerts()
        except Exception:  # a bug in the router must not break the scrape of everything else
            log.exception("alert router stats failed")
            return
        deliveries = CounterMetricFamily(
            "sipguard_alert_deliveries",
            "Alerts delivered, by sink (the policy's alert sinks)",
            labels=["sink"],
        )
        failures = CounterMetricFamily(
            "sipguard_alert_failures",
            "Alerts that could not be delivered (after the retries), by sink",
            labels=["sink"],
        )
        queued = GaugeMetricFamily(
            "sipguard_alert_queue_depth", "Alerts waiting for their sink", labels=["sink"]
        )
        outcomes = CounterMetricFamily(
            "sipguard_alerts",
            "Everything the alert router counts, by sink and outcome (delivered, failed, "
            "dropped, suppressed, filtered, retried, and per transport extras)",
            labels=["sink", "outcome"],
        )
        seen: set[str] = set()
        for sink, counts in sorted(stats.items())[:MAX_SINKS]:
            name = _unique(str(sink)[:MAX_LABEL], seen)
            delivered = failed = 0
            for outcome, n in sorted(counts.items())[:MAX_OUTCOMES]:
                key = str(outcome)[:MAX_LABEL]
                if key in GAUGE_KEYS:
                    queued.add_metric([name], n)
                    continue
                outcomes.add_metric([name, key], n)
                if key in DELIVERED_KEYS:
                    delivered += n
                elif key in FAILED_KEYS:
                    failed += n
            deliveries.add_metric([name], delivered)
            failures.add_metric([name], failed)
        yield deliveries
        yield failures
        yield queued
        yield outcomes


def _unique(label: str, seen: set[str]) -> str:
    """`label`, or `label~2`, `label~3`... when a cut-off name collides with one already used."""
    candidate, n = label, 1
    while candidate in seen:
        n += 1
        candidate = f"{label}~{n}"
    seen.add(candidate)
    return candidate


def metrics_registry(collector: Collector, *, process: bool = True) -> CollectorRegistry:
    """A registry of its own for one sipguard (never the global one), with `collector` and, when
    `process`, the client's process, platform and GC collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


# ------------------------------------------------------------------------------------ the endpoint


class MetricsServer:
    """`GET /metrics` (and HEAD) on one address; every response closes its connection."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self.host = ""
        self.port = 0
        self.scrapes = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=MAX_REQUEST_HEAD, reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = str(sockname[0]), int(sockname[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{METRICS_PATH}"

    def close(self) -> None:
        """Stop listening and drop the connections in progress (a scrape has nothing to
        lose)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.transport.abort()
        self._clients.clear()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._clients) >= MAX_CLIENTS:
            writer.transport.abort()
            return
        self._clients.add(writer)
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            status, headers, body = self._respond(head)
            lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
            lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
            writer.write("\r\n".join(lines).encode("latin-1"))
            if not head.startswith(b"HEAD "):
                writer.write(body)
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def _respond(self, head: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _plain("400 Bad Request", "bad request line\n")
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            status, headers, body = _plain("405 Method Not Allowed", "GET or HEAD\n")
            return status, [*headers, ("Allow", "GET, HEAD")], body
        path = urlsplit(target).path
        if path == "/":
            return _plain("200 OK", f"sipguard {__version__}: metrics at {METRICS_PATH}\n")
        if path != METRICS_PATH:
            return _plain("404 Not Found", f"not found; metrics at {METRICS_PATH}\n")
        fields: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        encoder, content_type = choose_encoder(fields.get("accept", ""))
        try:
            body = encoder(self._registry)
        except Exception:  # a collector bug: answer 500, keep serving
            log.exception("metrics collection failed")
            return _plain("500 Internal Server Error", "collection failed, see the log\n")
        self.scrapes += 1
        headers = [("Content-Type", content_type)]
        if gzip_accepted(fields.get("accept-encoding", "")):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        return "200 OK", headers, body


def _plain(status: str, text: str) -> tuple[str, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "text/plain; charset=utf-8")], text.encode()


async def start_metrics_server(host: str, port: int, registry: CollectorRegistry) -> MetricsServer:
    """Serve `registry` at `http://HOST:PORT/metrics` on the running loop; port 0 picks a free
    one (read it from the handle). Raises OSError when the address cannot be bound."""
    server = MetricsServer(registry)
    await server.start(host, port)
    log.info("metrics at %s", server.url)
    return server
