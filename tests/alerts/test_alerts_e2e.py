"""Alerts of real attacks, end to end: Kamailio is the PBX behind a sipguard running in-process
with the sinks written the DESIGN.md way (`alerts: [{webhook: URL, min_severity: ...}, {syslog:
URL, format: cef}]`); SIPp guesses a password and calls a satellite number. A local HTTP receiver
and a local syslog receiver (threads of this test, loopback) must get those alerts with their
fields, and the CEF lines must parse. Then the webhooks die (one accepts and never answers, one
refuses) and the syslog collector is gone while 40 scanner bans are alerted: OPTIONS round trips
through sipguard must be as fast as with live sinks, measured in the same test, and the failures
must show in the metrics."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.test_formats import parse_cef, parse_rfc5424
from tests.alerts.test_sinks import free_port
from tests.peers.kamailio import ALICE, start_kamailio
from tests.peers.require import need_binary
from tests.peers.sipp import call_once, guess_password
from tests.proxy.guard import policy_text, running_guard
from tests.proxy.stub import UdpPeer, answer, wait_until

pytestmark = [pytest.mark.peers, pytest.mark.integration, pytest.mark.timeout(120)]

BRUTE, CALLER = "127.0.0.3", "127.0.0.5"
SATELLITE = "+881612345678"
FAILURES = 3


class Webhook(ThreadingHTTPServer):
    """Records every POST; answers 200, or (`silent`) holds the connection until closed."""

    daemon_threads = True

    def __init__(self, *, silent: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.silent = silent
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _Hook)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _Hook(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(json.loads(body))
        if self.server.silent:
            self.server.release.wait(30)
            return
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def syslog_collector() -> Iterator[tuple[list[bytes], int]]:
    """A UDP syslog collector on loopback: the datagrams it got, and its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    got: list[bytes] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                got.append(sock.recv(65535))
            except TimeoutError:
                continue

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield got, sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        sock.close()


def alerting_policy(pbx: str, webhook: str, syslog_port: int, *, also: str = "") -> str:
    return policy_text(
        pbx,
        listen=("udp://127.0.0.1:0",),
        extra=f"""geo:
  overrides: {{{BRUTE}/32: RU, {CALLER}/32: NL}}
auth: {{failures: {FAILURES}, within: 10m, ban: 1h}}
fraud: {{home_country: NL}}
metrics: 127.0.0.1:0
alerts:
  - {{webhook: "{webhook}", min_severity: warning}}
  - {{syslog: "udp://127.0.0.1:{syslog_port}", format: cef}}
{also}""",
    )


def test_a_brute_force_and_a_toll_fraud_call_reach_the_webhook_and_the_siem(
    tmp_path: Path,
) -> None:
    sipp_bin, kamailio_bin = need_binary("sipp"), need_binary("kamailio")
    pbx = start_kamailio(tmp_path, tcp=False, binary=kamailio_bin)
    try:
        with (
            Webhook() as hook,
            syslog_collector() as (syslog, syslog_port),
            running_guard(
                alerting_policy(f"udp://{pbx.host}:{pbx.port}", hook.url, syslog_port), tmp_path
            ) as guard,
        ):
            outside = guard.outside("udp")
            brute = guess_password(
                tmp_path, outside, local_ip=BRUTE, user=ALICE[0], tries=FAILURES, binary=sipp_bin
            )
            assert brute.successful == 0, brute.describe()
            fraud = call_once(tmp_path, outside, SATELLITE, local_ip=CALLER, binary=sipp_bin)
            assert fraud.failed == 1, fraud.describe()  # refused by sipguard with a 403
            wanted = {"ban", "fraud_destination"}  # a brute force is alerted as its ban
            assert wait_until(lambda: wanted <= {b["event"] for b in hook.bodies}, 10)
            assert wait_until(lambda: len(syslog) >= len(wanted), 10)
    finally:
        pbx.stop()
    bodies = {b["event"]: b for b in hook.bodies}
    banned = bodies["ban"]  # the brute force, alerted as the ban it caused
    assert banned["source"]["ip"] == BRUTE and banned["country"] == "RU"
    assert banned["rule"] == "auth" and banned["method"] == "REGISTER"
    assert banned["severity"] == "warning" and banned["count"] == 1
    assert banned["evidence"].startswith("brute_force: banned until")
    assert f"{FAILURES} failed logins" in banned["evidence"] and "'alice'" in banned["evidence"]
    fraud_alert = bodies["fraud_destination"]
    assert fraud_alert["source"]["ip"] == CALLER and fraud_alert["country"] == "NL"
    assert fraud_alert["severity"] == "error" and fraud_alert["account"] == "sipp"
    assert fraud_alert["rule"] == "fraud.destinations.deny_types"
    assert "+881612345678" in fraud_alert["evidence"] and fraud_alert["method"] == "INVITE"
    cefs = {c.signature_id: c for c in (parse_cef(parse_rfc5424(d).msg) for d in syslog)}
    assert wanted <= set(cefs)
    assert (cefs["ban"].vendor, cefs["ban"].product) == ("sipguard", "sipguard")
    assert cefs["ban"].ext["src"] == BRUTE and cefs["ban"].ext["act"] == "ban"
    assert cefs["ban"].ext["cs1"] == "auth" and cefs["ban"].ext["cs2"] == "RU"
    fraud_cef = cefs["fraud_destination"]
    assert fraud_cef.ext["src"] == CALLER and fraud_cef.ext["suser"] == "sipp"
    assert fraud_cef.ext["cat"] == "toll_fraud" and fraud_cef.severity == "8"


# -- dead sinks ----------------------------------------------------------------------------------

OPTIONS_ROUNDS = 300
SCANNERS = 40


def _round_trips(
    client: UdpPeer, outside: tuple[str, int], pbx: UdpPeer, rounds: int
) -> list[float]:
    """Milliseconds for an OPTIONS through sipguard to the PBX and its 200 back, one at a time."""
    times: list[float] = []
    for n in range(rounds):
        request = (
            f"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.20:{client.port};branch=z9hG4bK-rt{n}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:noc@127.0.0.20>;tag=t{n}\r\n"
            f"To: <sip:100@127.0.0.1>\r\nCall-ID: rt-{n}-{time.monotonic_ns()}\r\n"
            f"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        client.send(request, outside)
        got = pbx.recv(2.0)
        assert got is not None, "sipguard did not forward the OPTIONS"
        pbx.send(answer(got[0]), got[1])
        back = client.recv(2.0)
        assert back is not None and back[0].startswith(b"SIP/2.0 200"), back
        times.append((time.perf_counter() - started) * 1000)
    return times


def _scan(outside: tuple[str, int], first: int) -> None:
    """Scanners from SCANNERS addresses: each is banned by the User-Agent rule, each ban an
    alert for the sinks."""
    for n in range(SCANNERS):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            ip = f"127.0.4.{first + n}"
            sock.bind((ip, 0))
            sock.sendto(
                (
                    "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {ip}:5060;branch=z9hG4bK-s{n}\r\n"
                    f"Max-Forwards: 70\r\nFrom: <sip:s@{ip}>;tag=s\r\nTo: <sip:100@127.0.0.1>\r\n"
                    f"Call-ID: scan-{ip}\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode(),
                outside,
            )


def _measure(
    tmp_path: Path, hook: Webhook, syslog_port: int, first_scanner: int
) -> tuple[list[float], str]:
    """Round trips while SCANNERS bans send alerts; the metrics page at the end."""
    tmp_path.mkdir()
    pbx, client = UdpPeer(), UdpPeer("127.0.0.20")
    # with a silent webhook, a second one that refuses: its failures are counted within
    # seconds (the silent one's only after 4 tries of 5 s)
    refused = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens: refused at once
    also = f'  - {{webhook: "{refused}", min_severity: warning}}\n' if hook.silent else ""
    text = alerting_policy(pbx.url, hook.url, syslog_port, also=also) + (
        "rules:\n  - {name: scanners, match: {user_agent: [friendly-scanner]}, action: ban}\n"
    )
    try:
        with running_guard(text, tmp_path) as guard:
            outside = guard.outside("udp")
            _round_trips(client, outside, pbx, 20)  # warm up
            _scan(outside, first_scanner)
            assert wait_until(lambda: len(guard.info.engine.active_bans(time.time())) == SCANNERS)
            times = _round_trips(client, outside, pbx, OPTIONS_ROUNDS)
            assert guard.info.metrics is not None
            url = guard.info.metrics.url
            if hook.silent:
                assert wait_until(lambda: _failures(url) >= 1, 15)
            with urllib.request.urlopen(url, timeout=5) as page:
                metrics = page.read().decode()
    finally:
        pbx.close()
        client.close()
    return times, metrics


def _failures(url: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as page:
        body = page.read().decode()
    return sum(
        float(line.rpartition(" ")[2])
        for line in body.splitlines()
        if line.startswith("sipguard_alert_failures_total{") and "webhook" in line
    )


def test_a_dead_webhook_and_a_gone_collector_do_not_slow_forwarding(tmp_path: Path) -> None:
    with Webhook() as live, syslog_collector() as (_, live_port):
        healthy, _ = _measure(tmp_path / "live", live, live_port, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
        gone.bind(("127.0.0.1", 0))
        gone_port = gone.getsockname()[1]  # closed below: nobody listens there during the run
    with Webhook(silent=True) as dead:
        slowed, metrics = _measure(tmp_path / "dead", dead, gone_port, 101)
        assert dead.bodies, "the dead webhook was never tried"
    healthy_p50, dead_p50 = statistics.median(healthy), statistics.median(slowed)
    healthy_p99 = statistics.quantiles(healthy, n=100)[98]
    dead_p99 = statistics.quantiles(slowed, n=100)[98]
    print(
        f"OPTIONS round trip through sipguard, {OPTIONS_ROUNDS} each: live sinks p50 "
        f"{healthy_p50:.3f} ms p99 {healthy_p99:.3f} ms; dead webhook + gone collector p50 "
        f"{dead_p50:.3f} ms p99 {dead_p99:.3f} ms"
    )
    # the same within the noise of a shared 2-core machine: a blocking sink would add its 5 s
    # timeout to some round trip, and a slow one milliseconds to all of them
    assert dead_p50 < healthy_p50 * 2 + 1.0
    assert max(slowed) < 500.0
    failures = {
        line.partition("{")[2].partition("}")[0]: float(line.rpartition(" ")[2])
        for line in metrics.splitlines()
        if line.startswith("sipguard_alert_failures_total{")
    }
    assert len(failures) == 3  # the two webhooks and the syslog sink, each by name
    assert max(failures.values()) >= 1  # the refusing webhook's failures, in the metrics
