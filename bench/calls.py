"""Call benchmark: SIPp UAC -> [proxy] -> SIPp UAS over UDP on loopback.

Modes: ``baseline`` (SIPp UAC straight to SIPp UAS), ``guarded`` (through ``sipguard run``, a
separate process, as a user runs it, with a minimal policy), ``guarded-full`` (the same with
``policies/default.yaml``: every detector, the rules, limits, toll-fraud guard, and the monitoring
keys), ``kamailio`` (Kamailio 5.6 as a stateless proxy with pike and a scanner check,
``bench/kamailio.py``: the reference) and ``relay`` (through :func:`relay_main`, a dumb uvloop
UDP relay that forwards datagrams without parsing them: the floor of any Python proxy on this
host).

Scenarios (each returns a JSON-ready dict; :func:`markdown` renders them):

* ``throughput``: a step-up search for the highest sustained call rate, the modes interleaved
  rate by rate in the same run. A step is ``rate x step_s`` calls (capped) under a hard time
  limit; a mode stops at its first step with a failed call, retransmissions above 0.1 % of the
  messages, or an achieved rate under 95 % of the target. During every step a load probe (the
  precise probe below, in a process of its own, at ``load_probe_rate`` calls/s) times calls
  through the same proxy: latency under load, rate by rate (the plot's data).
* ``latency``: response times at a fixed moderate rate, measured twice: by SIPp
  (``-trace_rtt``: whole milliseconds, SIPp's clock ticks in ms) and by a precise probe
  (:func:`probe_calls`, a Python UAC timing each call with ``time.perf_counter_ns``).
* ``profile``: the guarded path once under a profiler: cProfile (deterministic, built in) or
  py-spy (sampling, attached by PID, near full speed) when it is installed.

The peers are the test harness's own (``tests.peers.sipp``, ``tests/peers/scenarios``):
``uas_call.xml``, and ``bench/scenarios/uac_call_pstn.xml`` (``uac_call.xml`` calling
``+31201234567`` from an account per call, so that the toll-fraud guard sees ordinary calls), a
call of 6 messages (INVITE, 180, 200, ACK, BYE, 200; the UAS sends no 100 Trying), each of which
passes the proxy once. Messages are counted from SIPp's
own per-message table (first copies + retransmissions, both sides), not assumed.

CPU: the proxy's exact runtime comes from ``/proc/PID/task/*/schedstat`` (its user/system split
from ``/proc/PID/stat``) before and after each step; SIPp's from ``getrusage(RUSAGE_CHILDREN)``
once the step's UAC and UAS are reaped; every other process's from its schedstat (noise). Not from
``/proc/stat``: with a tickless kernel, short busy bursts between idle periods are counted idle
there. Everything is loopback, every port ephemeral, every process started here and stopped by
its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import math
import os
import pstats
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from bench import kamailio as kam
from tests.peers.ports import LOOPBACK, free_tcp_port, free_udp_port
from tests.peers.sipp import SippConfig, SippProcess, SippResult, read_rtt, start

__all__ = [
    "FULL",
    "QUICK",
    "Bench",
    "CallsConfig",
    "ProbeResult",
    "Proxy",
    "ProxyProcess",
    "StepResult",
    "find_py_spy",
    "find_sipp",
    "goals",
    "latency",
    "markdown",
    "probe_calls",
    "profile",
    "relay_main",
    "throughput",
]

Mode = Literal["baseline", "relay", "guarded", "guarded-full", "kamailio"]
ProxyMode = Literal["relay", "guarded", "guarded-full", "kamailio"]
Profiler = Literal["cprofile", "py-spy"]
ALL_MODES: Final[tuple[Mode, ...]] = ("baseline", "relay", "guarded", "guarded-full", "kamailio")
THROUGHPUT_MODES: Final[tuple[Mode, ...]] = ALL_MODES
SIPP_LATENCY_MODES: Final[tuple[Mode, ...]] = ("baseline", "guarded", "guarded-full", "kamailio")
PROBE_MODES: Final[tuple[Mode, ...]] = ALL_MODES
SIPGUARD_MODES: Final[tuple[Mode, ...]] = ("guarded", "guarded-full")
REFERENCE: Final[Mode] = "kamailio"  # the ratios' second denominator

ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_POLICY: Final = ROOT / "policies" / "default.yaml"
UAC_SCENARIO: Final = Path(__file__).resolve().parent / "scenarios" / "uac_call_pstn.xml"
CALLED: Final = "+31201234567"  # a Dutch geographic number: an allowed destination for the guard
MESSAGES_PER_CALL: Final = 6  # INVITE, 180, 200, ACK, BYE, 200 (uas_call.xml sends no 100)
RETRANS_LIMIT: Final = 0.001  # a step fails above 0.1 % retransmissions
RATE_SHORTFALL: Final = 0.95  # ... or when SIPp achieved under 95 % of the target rate
CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
NPROC: Final = len(os.sched_getaffinity(0))
PY_SPY_RATE: Final = 200  # samples/s; each one pauses sipguard for a few tens of microseconds
PROXY_START_S: Final = 15.0
PROXY_STOP_S: Final = 20.0  # cProfile writes its file on exit: give it time
LISTEN_LINE: Final = re.compile(
    r"listening on udp://127\.0\.0\.1:(?P<outside>\d+).*?; inside udp://127\.0\.0\.1:(?P<inside>\d+)"
)

# The goals of the issue, and its long-run comparison points (measured elsewhere).
GOAL_CPS: Final = 4000  # sustained with zero failed calls
GOAL_MSGS_PER_CPU_S: Final = 50_000  # 0.35x of Kamailio with pike on the hardware
GOAL_ADDED_P99_MS: Final = 1.0  # at GOAL_LATENCY_CPS (load probe) ...
GOAL_LATENCY_CPS: Final = 1000
REFERENCE_POINTS: Final[Mapping[str, int]] = {
    "Kamailio stateless + pike, one worker (msgs per CPU-s)": 145_000,
    "dumb uvloop UDP relay (msgs per CPU-s)": 280_000,
}


@dataclass(frozen=True, slots=True)
class CallsConfig:
    """The sizes of one run. Every loop is bounded by a count and by a time limit."""

    rates: tuple[int, ...]  # step-up targets, calls/s
    step_s: float  # each step lasts about this long: rate x step_s calls ...
    step_cap: int  # ... but never more calls than this
    step_grace_s: float  # hard limit of a step: calls / rate + this
    settle_s: float  # idle time between steps
    latency_rate: int
    latency_calls: int
    profile_rate: int
    profile_calls: int
    load_probe_rate: int  # calls/s of the load probe during each throughput step (0: none)
    attack_rate: int  # legitimate calls/s during the attack scenario (bench/attack.py)
    attack_calls: int  # ... per run
    attack_multipliers: tuple[int, ...]  # flood rate = this x the legitimate packet rate
    attack_kinds: tuple[str, ...]  # bench/flood.py kinds
    attack_targets: tuple[str, ...]  # modes attacked
    attack_sources: int  # flood source addresses per run


FULL: Final = CallsConfig(
    rates=(250, 500, 750, 1000, 1250, 1500, 2000, 3000, 4000, 6000, 8000),
    step_s=5.0,
    step_cap=20_000,
    step_grace_s=10.0,
    settle_s=1.0,
    latency_rate=300,
    latency_calls=3000,
    profile_rate=300,
    profile_calls=3000,
    load_probe_rate=25,
    attack_rate=100,
    attack_calls=2000,
    attack_multipliers=(10, 50),
    attack_kinds=("banned", "register", "malformed"),
    attack_targets=("guarded-full", "kamailio"),
    attack_sources=50,
)
QUICK: Final = CallsConfig(
    rates=(250,),
    step_s=1.2,
    step_cap=1000,
    step_grace_s=5.0,
    settle_s=0.1,
    latency_rate=300,
    latency_calls=150,
    profile_rate=200,
    profile_calls=400,
    load_probe_rate=25,
    attack_rate=100,
    attack_calls=150,
    attack_multipliers=(10,),
    attack_kinds=("banned",),
    attack_targets=("guarded-full", "kamailio"),
    attack_sources=8,
)


def find_sipp() -> str | None:
    return shutil.which("sipp")


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


# ---- what the operating system knows ----------------------------------------------------------


def process_cpu(pid: int) -> tuple[float, float]:
    """(utime, stime) of a live process in seconds (``/proc/PID/stat`` fields 14 and 15)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def children_cpu_s() -> float:
    """CPU of every child this process has reaped so far (the SIPp runs of a step)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu_s() -> float:
    """CPU of this process (the bench: SIPp's watchdog, the probe)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def runtime_s(pid: int) -> float:
    """Exact CPU time of a process, all its threads (``/proc/PID/task/*/schedstat``, ns)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def all_runtimes() -> dict[int, float]:
    """``runtime_s`` of every process on the host (kernel threads included)."""
    return {int(entry.name): runtime_s(int(entry.name)) for entry in _proc_pids()}


def _proc_pids() -> list[Path]:
    return [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def udp_snmp() -> dict[str, int]:
    """The kernel's UDP counters (``/proc/net/snmp``): RcvbufErrors, NoPorts, InErrors..."""
    lines = Path("/proc/net/snmp").read_text().splitlines()
    udp = [line.split()[1:] for line in lines if line.startswith("Udp:")]
    if len(udp) < 2:
        return {}
    return {name: int(value) for name, value in zip(udp[0], udp[1], strict=False)}


def socket_drops(ports: Sequence[int]) -> int:
    """Datagrams the kernel dropped on the UDP sockets bound to ``ports`` (``/proc/net/udp``)."""
    total = 0
    wanted = set(ports)
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) < 13:
            continue
        if int(fields[1].rsplit(":", 1)[1], 16) in wanted:
            total += int(fields[-1])
    return total


# ---- the proxy under test as a process --------------------------------------------------------


def sipguard_argv(
    policy: Path, *, profile_to: Path | None = None, launcher: Sequence[str] = ()
) -> list[str]:
    """How sipguard is started: the console script a user runs, or under cProfile.

    ``launcher`` (experiments) replaces the interpreter part; it must run sipguard in its own
    process (a Python wrapper that calls ``sipguard.cli.main``), since only that PID is measured
    and stopped.
    """
    script = Path(sys.executable).parent / "sipguard"
    if launcher:
        argv = list(launcher)
    elif profile_to is not None:
        argv = [sys.executable, "-m", "cProfile", "-o", str(profile_to), "-m", "sipguard"]
    elif script.exists():
        argv = [str(script)]
    else:
        argv = [sys.executable, "-m", "sipguard"]
    return [*argv, "run", "-c", str(policy)]


class Proxy(Protocol):
    """What the bench needs of a proxy under test: its processes, its ports, a way to stop it."""

    argv: tuple[str, ...]
    outside_port: int

    @property
    def pid(self) -> int: ...

    @property
    def ports(self) -> list[int]: ...

    def pids(self) -> list[int]:
        """Every process whose CPU is the proxy's (Kamailio has several)."""
        ...

    def stop(self) -> int: ...


class ProxyProcess:
    """sipguard (or the relay) as a subprocess; ready once it logs its listening line."""

    def __init__(self, argv: Sequence[str], log_path: Path) -> None:
        self.argv = tuple(argv)
        self.lines: list[str] = []
        self._log_path = log_path
        self._ready = threading.Event()
        self.outside_port = 0
        self.inside_port = 0
        self._popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="proxy-stderr", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def ports(self) -> list[int]:
        return [self.outside_port, self.inside_port]

    def pids(self) -> list[int]:
        return [self.pid]

    def _read(self) -> None:
        stream = self._popen.stderr
        assert stream is not None
        with self._log_path.open("w", encoding="utf-8") as log:
            for line in stream:
                self.lines.append(line.rstrip("\n"))
                log.write(line)
                log.flush()
                found = LISTEN_LINE.search(line)
                if found is not None and not self._ready.is_set():
                    self.outside_port = int(found.group("outside"))
                    self.inside_port = int(found.group("inside"))
                    self._ready.set()
        self._ready.set()  # the process ended: wake the waiter

    def wait_ready(self, timeout_s: float = PROXY_START_S) -> None:
        self._ready.wait(timeout_s)
        if not self.outside_port:
            self.stop()
            raise RuntimeError(f"{self.argv[0]} did not start: {self.lines[-5:]}")

    def cpu(self) -> tuple[float, float]:
        return process_cpu(self.pid)

    def stop(self) -> int:
        """SIGTERM (graceful), then SIGKILL past the deadline; always reaped."""
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(signal.SIGTERM)
        try:
            code = self._popen.wait(PROXY_STOP_S)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            code = self._popen.wait()
        self._reader.join(2.0)
        return code


# ---- the dumb relay: what a Python proxy costs when it does nothing -----------------------------


class _Relay:
    """A symmetric NAT, no parsing: each outside client gets an inside socket of its own; what the
    upstream sends to that socket goes back to that client. (One shared inside socket would send
    every answer to the last client: the load probe and SIPp's UAC run side by side.)"""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.outside: asyncio.DatagramTransport | None = None
        self.inside: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self.pending: dict[tuple[str, int], list[bytes]] = {}  # while its socket is being made
        self.first_inside_port = 0


class _RelayOutside(asyncio.DatagramProtocol):
    def __init__(self, relay: _Relay) -> None:
        self._relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        relay = self._relay
        client = (addr[0], addr[1])
        inside = relay.inside.get(client)
        if inside is not None:
            inside.sendto(data, relay.upstream)
            return
        waiting = relay.pending.get(client)
        if waiting is not None:
            if len(waiting) < MAX_PENDING:
                waiting.append(data)
            return
        if len(relay.inside) >= MAX_CLIENTS:
            return
        relay.pending[client] = [data]
        asyncio.get_running_loop().create_task(_relay_open(relay, client))


class _RelayInside(asyncio.DatagramProtocol):
    def __init__(self, relay: _Relay, client: tuple[str, int]) -> None:
        self._relay = relay
        self._client = client

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        outside = self._relay.outside
        if outside is not None:
            outside.sendto(data, self._client)


MAX_CLIENTS: Final = 64  # the UAC and the probes: a handful
MAX_PENDING: Final = 64


async def _relay_open(relay: _Relay, client: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()
    try:
        inside, _ = await loop.create_datagram_endpoint(
            lambda: _RelayInside(relay, client), local_addr=(LOOPBACK, 0)
        )
    except OSError:
        relay.pending.pop(client, None)
        return
    relay.inside[client] = inside
    for data in relay.pending.pop(client, []):
        inside.sendto(data, relay.upstream)


async def _relay(upstream_port: int) -> None:
    from sipguard.io import signals  # SIGTERM/SIGINT set the event, as in `sipguard run`

    loop = asyncio.get_running_loop()
    relay = _Relay((LOOPBACK, upstream_port))
    outside, _ = await loop.create_datagram_endpoint(
        lambda: _RelayOutside(relay), local_addr=(LOOPBACK, 0)
    )
    relay.outside = outside
    stop = asyncio.Event()
    remove = signals.install(stop, lambda: None)
    port = outside.get_extra_info("sockname")[1]
    # "inside" names no fixed socket here (one per client); the outside port stands in for it
    print(
        f"relay listening on udp://{LOOPBACK}:{port}; inside udp://{LOOPBACK}:{port};"
        f" forwarding to udp://{LOOPBACK}:{upstream_port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        remove()
        outside.close()
        for inside in relay.inside.values():
            inside.close()


def relay_main(argv: Sequence[str]) -> int:
    """``python -m bench.calls relay --upstream PORT``: the dumb relay, on uvloop like sipguard;
    ``python -m bench.calls probe --port PORT --calls N --rate R --limit S``: the load probe
    (prints its ProbeResult as one JSON line)."""
    parser = argparse.ArgumentParser(prog="python -m bench.calls")
    sub = parser.add_subparsers(dest="what", required=True)
    relay = sub.add_parser("relay")
    relay.add_argument("--upstream", type=int, required=True, help="the UAS port on loopback")
    probe = sub.add_parser("probe")
    probe.add_argument("--port", type=int, required=True, help="the target's port on loopback")
    probe.add_argument("--mode", default="baseline")
    probe.add_argument("--calls", type=int, required=True)
    probe.add_argument("--rate", type=int, required=True)
    probe.add_argument("--limit", type=float, required=True, help="seconds, at most")
    args = parser.parse_args(argv)
    if args.what == "probe":
        return _probe_main(args)
    from sipguard.io.loop import run

    run(_relay(args.upstream))
    return 0


# ---- SIPp's per-message table -----------------------------------------------------------------

_ARROW_RIGHT = "---------->"
_ARROW_LEFT = "<----------"
_RTD = r"(?:[EB]-RTD\d+\s+|RTD\d+\s+)?"
_NAME_LEFT = re.compile(rf"^\s*(\S+)\s+({_ARROW_RIGHT}|{_ARROW_LEFT})\s+{_RTD}(\d+)\s+(\d+)")
_NAME_RIGHT = re.compile(rf"^\s*({_ARROW_RIGHT}|{_ARROW_LEFT})\s+(\S+)\s+{_RTD}(\d+)\s+(\d+)")


@dataclass(frozen=True, slots=True)
class MessageCounts:
    """One SIPp's message table: what it sent (first copies, retransmissions) and received."""

    sent: int = 0
    sent_retrans: int = 0
    received: int = 0


def read_message_counts(screen: Path) -> MessageCounts | None:
    """Parse the Scenario Screen of ``-trace_screen``; None when it is missing."""
    try:
        text = screen.read_text(errors="replace")
    except FileNotFoundError:
        return None
    sent = retrans = received = 0
    seen = False
    for line in text.splitlines():
        if "Statistics Screen" in line:
            break
        if (left := _NAME_LEFT.match(line)) is not None:
            outgoing = left.group(2) == _ARROW_RIGHT
            count, again = int(left.group(3)), int(left.group(4))
        elif (right := _NAME_RIGHT.match(line)) is not None:
            outgoing = right.group(1) == _ARROW_LEFT
            count, again = int(right.group(3)), int(right.group(4))
        else:
            continue
        seen = True
        if outgoing:
            sent += count
            retrans += again
        else:
            received += count
    return MessageCounts(sent, retrans, received) if seen else None


# ---- statistics ---------------------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p90, p99, p99.9 (nearest rank) and max of ``values``."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    n = len(ordered)

    def rank(p: float) -> float:
        index = math.ceil(p / 100.0 * n - 1e-9) - 1
        return ordered[max(0, min(n - 1, index))]

    return {
        "n": n,
        "mean": sum(ordered) / n,
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "p99_9": rank(99.9),
        "max": ordered[-1],
    }


def _difference(more: Mapping[str, float], base: Mapping[str, float]) -> dict[str, float]:
    """Percentile by percentile (not the percentiles of per-call differences)."""
    keys = ("mean", "p50", "p90", "p99", "p99_9", "max")
    return {k: more[k] - base[k] for k in keys if k in more and k in base}


# ---- one step: a bounded SIPp run -------------------------------------------------------------


@dataclass(slots=True)
class StepResult:
    """One SIPp UAC run at one target rate (JSON: ``asdict``). ``proxy_*`` is None in baseline."""

    mode: Mode
    target_cps: int
    calls_planned: int
    calls_created: int = 0
    successful: int = 0
    failed: int = 0  # UAC + UAS (an aborted step counts the calls its stop cut off)
    retransmissions: int = 0  # UAC + UAS
    retrans_ratio: float = 0.0  # retransmissions / messages
    unexpected: int = 0  # UAC + UAS: FailedUnexpectedMessage, out-of-call and dead-call messages
    achieved_cps: float = 0.0  # SIPp's CallRate(C): calls created / SIPp's elapsed time
    wall_s: float = 0.0  # UAC start to UAC exit
    messages: int = 0  # datagrams the two SIPps sent (first copies + retransmissions)
    messages_per_call: float = 0.0
    messages_per_s: float = 0.0  # through the proxy, in relay and guarded modes
    proxy_cpu_s: float | None = None
    proxy_user_s: float | None = None
    proxy_sys_s: float | None = None
    proxy_cpu_pct: float | None = None  # of one core
    proxy_msgs_per_cpu_s: float | None = None
    proxy_cpu_s_per_1000_msgs: float | None = None
    proxy_us_per_msg: float | None = None
    proxy_socket_drops: int | None = None  # kernel drops on the proxy's own UDP sockets
    sipp_cpu_s: float = 0.0  # UAC + UAS
    sipp_cpu_pct: float = 0.0  # of one core
    bench_cpu_s: float = 0.0  # this process (watchdog)
    other_cpu_s: float = 0.0  # every other process and kernel thread on the host: noise
    other_cpu_pct: float = 0.0  # of one core
    udp_rcvbuf_errors: int = 0  # whole host (/proc/net/snmp), during the step
    aborted: str = ""  # why the watchdog ended the UAC early
    ok: bool = False
    reason: str = ""  # why the step does not count as sustained
    uac_returncode: int = 0
    uac_failed: int = 0  # the UAC's failed calls alone (the legitimate calls of an attack run)
    uas_unexpected: int = 0  # unexpected, out-of-call, dead-call messages at the UAS: under a
    # flood, what leaked through the proxy
    uas_failures: dict[str, int] = field(default_factory=dict)  # the UAS's Failed* counters
    rtt_ms: dict[str, float] = field(default_factory=dict)  # latency steps only
    load_probe: dict[str, Any] = field(default_factory=dict)  # ProbeResult of the load probe


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The precise probe's calls: times in microseconds, measured by perf_counter_ns."""

    mode: Mode
    target_cps: int
    calls_planned: int
    completed: int
    failed: int
    stray: int  # datagrams that matched no waiting transaction (late retransmissions)
    wall_s: float
    setup_us: dict[str, float]  # INVITE sent -> 200 received
    ringing_us: dict[str, float]  # INVITE sent -> 180 received
    bye_us: dict[str, float]  # BYE sent -> 200 received
    proxy_cpu_s: float | None = None
    other_cpu_pct: float = 0.0  # of one core: every other process on the host meanwhile
    sent: int = 0  # datagrams the probe sent (INVITE, ACK, BYE per call)


@dataclass(frozen=True, slots=True)
class _Cpu:
    """Every CPU clock a step reads, at one moment."""

    proxy_split: tuple[float, float]  # utime, stime (tick-sampled, scaled by the kernel)
    proxy: float  # exact runtime
    bench: float
    everyone: dict[int, float]

    @classmethod
    def now(cls, proxy: Proxy | None) -> _Cpu:
        user = system = exact = 0.0
        for pid in proxy.pids() if proxy is not None else ():
            with contextlib.suppress(OSError, ValueError, IndexError):
                u, s = process_cpu(pid)
                user, system = user + u, system + s
            exact += runtime_s(pid)
        return cls((user, system), exact, self_cpu_s(), all_runtimes())

    def others_since(self, before: _Cpu, exclude: set[int]) -> float:
        """CPU used meanwhile by processes that are not ours (and lived through the step)."""
        return sum(
            max(0.0, now - before.everyone[pid])  # a reused PID would count negative
            for pid, now in self.everyone.items()
            if pid in before.everyone and pid not in exclude
        )


class Bench:
    """The shared pieces of one run: a work folder, the SIPp binary, the UAS port, the proxies."""

    def __init__(self, work_dir: Path, sipp: str, *, kamailio: str | None = None) -> None:
        self.work_dir = work_dir
        self.sipp = sipp
        self.kamailio = kamailio
        self.uas_port = free_udp_port(LOOPBACK)  # the UAS (a fresh one per step) always sits here
        self.proxies: dict[Mode, Proxy] = {}
        self.metrics_ports: dict[str, int] = {}  # full policy name -> its metrics port
        self._started = 0
        work_dir.mkdir(parents=True, exist_ok=True)

    def policy(self, name: str) -> Path:
        """sipguard's policy: loopback, ephemeral ports, upstream the UAS, files in the work dir."""
        path = self.work_dir / f"policy-{name}.yaml"
        path.write_text(
            "# written by bench/calls.py\n"
            "listen: [udp://127.0.0.1:0]\n"
            f"upstream: udp://127.0.0.1:{self.uas_port}\n"
            "inside: udp://127.0.0.1:0\n"
            f"storage: sqlite://{self.work_dir / f'store-{name}.db'}\n"
            f"control: {self.work_dir / f'control-{name}.sock'}\n",
            encoding="utf-8",
        )
        return path

    def full_policy(self, name: str) -> Path:
        """``policies/default.yaml`` with its addresses and files replaced (as the detection
        tests do, ``tests.detect.policy_from_default``), and the monitoring keys on: a metrics
        endpoint on a free loopback port and an alert file taking every severity."""
        from tests.detect import policy_from_default  # here: it pulls in pytest

        path = self.work_dir / f"policy-{name}.yaml"
        self.metrics_ports[name] = free_tcp_port(LOOPBACK)
        text = policy_from_default(
            f"udp://127.0.0.1:{self.uas_port}",
            storage=f"sqlite://{self.work_dir / f'store-{name}.db'}",
            base=DEFAULT_POLICY,
        )
        path.write_text(
            "# written by bench/calls.py from policies/default.yaml\n"
            + text
            + "inside: udp://127.0.0.1:0\n"
            f"control: {self.work_dir / f'control-{name}.sock'}\n"
            f"metrics: 127.0.0.1:{self.metrics_ports[name]}\n"
            "alerts:\n"
            f"  - {{file: {self.work_dir / f'alerts-{name}.jsonl'}, min_severity: info}}\n",
            encoding="utf-8",
        )
        return path

    def control_path(self, name: str) -> Path:
        return self.work_dir / f"control-{name}.sock"

    def scrape(self, name: str) -> dict[str, Any]:
        """One Prometheus scrape of the full policy ``name``'s sipguard: how long it took, its
        size, and the message, drop, reject and ban samples; the alert lines written so far."""
        port = self.metrics_ports.get(name)
        out: dict[str, Any] = {"ok": False}
        alerts = self.work_dir / f"alerts-{name}.jsonl"
        with contextlib.suppress(OSError):
            out["alert_lines"] = sum(1 for _ in alerts.open("rb"))
        if port is None:
            return out
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5.0) as r:
                body = r.read().decode("utf-8", "replace")
        except OSError as exc:
            out["error"] = str(exc)
            return out
        out.update(ok=True, ms=1e3 * (time.perf_counter() - began), bytes=len(body))
        wanted = (
            "sipguard_messages_total",
            "sipguard_drops_total",
            "sipguard_rejects_total",
            "sipguard_bans_active",
            "sipguard_bans_issued_total",
        )
        samples: dict[str, float] = {}
        for line in body.splitlines():
            if line.startswith(wanted):
                key, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    samples[key] = float(value)
        out["samples"] = samples
        return out

    @contextlib.contextmanager
    def proxy(
        self,
        mode: ProxyMode,
        name: str,
        *,
        profile_to: Path | None = None,
        launcher: Sequence[str] = (),
        policy: Path | None = None,
    ) -> Iterator[Proxy]:
        """The proxy of ``mode`` in front of the UAS port, started here, stopped by its PID.
        ``policy`` replaces the policy the sipguard modes write for themselves."""
        self._started += 1
        proc: Proxy
        if mode == "kamailio":
            where = self.work_dir / f"kamailio-{name}-{self._started}"
            proc = kam.start_kamailio(where, self.uas_port, binary=self.kamailio)
        else:
            if mode == "guarded":
                argv = sipguard_argv(self.policy(name), profile_to=profile_to, launcher=launcher)
            elif mode == "guarded-full":
                chosen = policy or self.full_policy(f"full-{name}")
                argv = sipguard_argv(chosen, profile_to=profile_to)
            else:
                argv = [
                    sys.executable,
                    "-m",
                    "bench.calls",
                    "relay",
                    "--upstream",
                    str(self.uas_port),
                ]
            started = ProxyProcess(argv, self.work_dir / f"{mode}-{name}-{self._started}.log")
            try:
                started.wait_ready()
            except BaseException:
                started.stop()
                raise
            proc = started
        try:
            self.proxies[mode] = proc
            yield proc
        finally:
            self.proxies.pop(mode, None)
            proc.stop()

    def target(self, mode: Mode) -> tuple[str, int]:
        if mode == "baseline":
            return (LOOPBACK, self.uas_port)
        proxy = self.proxies.get(mode)
        if proxy is None:
            raise RuntimeError(f"{mode} mode needs its proxy running (Bench.proxy)")
        return (LOOPBACK, proxy.outside_port)

    def our_pids(self) -> set[int]:
        """This process and every proxy process (not "others" in the noise column)."""
        return {os.getpid(), *(pid for p in self.proxies.values() for pid in p.pids())}

    @contextlib.contextmanager
    def uas(self, label: str, limit_s: float, *, trace_err: bool = True) -> Iterator[SippProcess]:
        config = SippConfig(
            scenario="uas_call.xml",
            local_port=self.uas_port,
            timeout_s=limit_s + 30.0,
            timeout_error=False,
            trace_logs=False,  # a log line per call is disk I/O that has nothing to do with SIP
            trace_err=trace_err,  # off under a flood: a line per unexpected REGISTER
            label=label,
        )
        proc = start(self.work_dir, config, binary=self.sipp)
        try:
            yield proc
        finally:
            proc.stop(grace_s=2.0)

    def step(
        self,
        mode: Mode,
        rate: int,
        calls: int,
        grace_s: float,
        *,
        rtt: bool = False,
        watch: bool = True,
        probe_rate: int = 0,
        uas_trace_err: bool = True,
        extra_pids: Sequence[int] = (),
        before_uac: Callable[[], None] | None = None,
    ) -> StepResult:
        """``calls`` calls at ``rate`` calls/s, bounded by ``calls / rate + grace_s`` seconds.

        ``watch`` ends the UAC as soon as the step has failed anyway (a failed call, more
        retransmissions than the whole step may have): an overloaded step would otherwise wait
        for SIPp's retransmission timers (about 30 s). ``probe_rate`` runs the load probe (a
        process of its own) alongside at that many calls/s. ``extra_pids`` are processes of the
        bench (a flood generator) that the "others" column must not count; ``before_uac`` runs
        once the UAS is up, before the measured part begins (e.g. starts the flood).
        """
        limit_s = calls / rate + grace_s
        result = StepResult(mode=mode, target_cps=rate, calls_planned=calls)
        budget = int(RETRANS_LIMIT * MESSAGES_PER_CALL * calls) if watch else 1 << 62
        proxy = self.proxies.get(mode)
        child0 = children_cpu_s()
        with self.uas(f"uas-{mode}-{rate}-{self._next()}", limit_s, trace_err=uas_trace_err) as uas:
            uac_config = SippConfig(
                scenario=UAC_SCENARIO,
                remote=self.target(mode),
                service=CALLED,
                calls=calls,
                rate=rate,
                timeout_s=limit_s + 5.0,
                trace_logs=False,
                trace_rtt=rtt,
                rtt_freq=50 if rtt else None,
                stat_freq_ms=500,
                label=f"uac-{mode}-{rate}-{self._next()}",
            )
            if before_uac is not None:
                before_uac()
            snmp0 = udp_snmp()
            drops0 = socket_drops(proxy.ports) if proxy is not None else 0
            cpu0 = _Cpu.now(proxy)
            t0 = time.monotonic()
            uac = start(self.work_dir, uac_config, binary=self.sipp)
            prober = None
            if probe_rate > 0:
                probe_calls_n = max(1, int((calls / rate - 0.5) * probe_rate))
                prober = LoadProbe(self.target(mode), mode, probe_calls_n, probe_rate, limit_s)
            try:
                result.aborted = _watch(uac, budget, t0 + limit_s, fail_fast=watch)
            finally:
                uac_result = uac.stop(soft=False) if uac.running() else uac.result()
                probed = prober.finish() if prober is not None else None
            result.wall_s = time.monotonic() - t0
            cpu1 = _Cpu.now(proxy)
            ours = {*self.our_pids(), uas.pid, *extra_pids}
            if prober is not None:
                ours.add(prober.pid)
            result.other_cpu_s = cpu1.others_since(cpu0, ours)
            if proxy is not None:
                result.proxy_socket_drops = socket_drops(proxy.ports) - drops0
            snmp1 = udp_snmp()
        uas_result = uas.result()
        result.sipp_cpu_s = children_cpu_s() - child0
        result.udp_rcvbuf_errors = snmp1.get("RcvbufErrors", 0) - snmp0.get("RcvbufErrors", 0)
        _account(result, cpu0, cpu1, with_proxy=proxy is not None)
        result.uas_failures = uas_result.stats.failures() if uas_result.stats is not None else {}
        if probed is not None:
            result.load_probe = asdict(probed)
        _fill(result, uac_result, uas_result, probe_sent=probed.sent if probed else 0)
        if rtt:
            rtt_file = uac_result.files.rtt(uac_result.pid)
            samples = read_rtt(rtt_file) if rtt_file is not None else []
            result.rtt_ms = percentiles([s.response_ms for s in samples if s.rtd == 1])
        return result

    def _next(self) -> int:
        self._started += 1
        return self._started


def _watch(uac: SippProcess, retrans_budget: int, deadline: float, *, fail_fast: bool) -> str:
    """Wait for the UAC; end it at the deadline, or early once the step has failed anyway."""
    while uac.running():
        if time.monotonic() >= deadline:
            uac.stop(soft=False)
            return "time limit"
        stats = uac.stats() if fail_fast else None
        if stats is not None:
            if stats.failed:
                uac.stop(soft=False)
                return "failed calls"
            if stats.retransmissions > retrans_budget:
                uac.stop(soft=False)
                return "retransmissions"
        time.sleep(0.1)
    return ""


def _account(result: StepResult, cpu0: _Cpu, cpu1: _Cpu, *, with_proxy: bool) -> None:
    """CPU of the proxy (exact total, tick-sampled user/system split) and of the bench."""
    result.bench_cpu_s = cpu1.bench - cpu0.bench
    if with_proxy:
        result.proxy_cpu_s = cpu1.proxy - cpu0.proxy
        result.proxy_user_s = cpu1.proxy_split[0] - cpu0.proxy_split[0]
        result.proxy_sys_s = cpu1.proxy_split[1] - cpu0.proxy_split[1]


def _fill(result: StepResult, uac: SippResult, uas: SippResult, *, probe_sent: int = 0) -> None:
    """Counters, rates and the verdict of a finished step (``probe_sent``: the load probe's
    datagrams, which passed the proxy too)."""
    result.uac_returncode = uac.returncode
    if uac.stats is not None:
        result.calls_created = uac.stats.created
        result.successful = uac.stats.successful
        result.failed = uac.stats.failed
        result.uac_failed = uac.stats.failed
        result.retransmissions = uac.stats.retransmissions
        with contextlib.suppress(ValueError):
            result.achieved_cps = float(uac.stats.values.get("CallRate(C)", "0"))
    if uas.stats is not None:
        result.failed += uas.stats.failed
        result.retransmissions += uas.stats.retransmissions
        uas_stats = uas.stats
        result.uas_unexpected = (
            uas_stats.unexpected + uas_stats.out_of_call + uas_stats.dead_call_msgs
        )
    for stats in (uac.stats, uas.stats):
        if stats is not None:
            result.unexpected += stats.unexpected + stats.out_of_call + stats.dead_call_msgs
    counts = [read_message_counts(r.files.screen) for r in (uac, uas)]
    if all(c is not None for c in counts):
        result.messages = sum(c.sent + c.sent_retrans for c in counts if c is not None)
    else:  # no screen (SIPp killed hard): the scenario's count
        result.messages = MESSAGES_PER_CALL * result.successful + result.retransmissions
    result.messages += probe_sent
    if result.successful:
        result.messages_per_call = (result.messages - result.retransmissions) / result.successful
    if result.wall_s > 0:
        result.messages_per_s = result.messages / result.wall_s
        result.sipp_cpu_pct = 100.0 * result.sipp_cpu_s / result.wall_s
        result.other_cpu_pct = 100.0 * result.other_cpu_s / result.wall_s
    if result.messages:
        result.retrans_ratio = result.retransmissions / result.messages
    cpu = result.proxy_cpu_s
    if cpu is not None and result.wall_s > 0:
        result.proxy_cpu_pct = 100.0 * cpu / result.wall_s
        if cpu > 0 and result.messages:
            result.proxy_msgs_per_cpu_s = result.messages / cpu
            result.proxy_cpu_s_per_1000_msgs = 1000.0 * cpu / result.messages
            result.proxy_us_per_msg = 1e6 * cpu / result.messages
    reasons = []
    if result.aborted:
        reasons.append(f"stopped early: {result.aborted}")
    if result.failed:
        reasons.append(f"{result.failed} failed calls")
    if result.successful < result.calls_planned:
        reasons.append(f"{result.successful}/{result.calls_planned} calls completed")
    if result.retrans_ratio > RETRANS_LIMIT:
        reasons.append(f"retransmissions {100 * result.retrans_ratio:.2f}%")
    if result.achieved_cps < RATE_SHORTFALL * result.target_cps:
        reasons.append(f"achieved {result.achieved_cps:.0f} calls/s")
    if uac.returncode != 0 and not reasons:
        reasons.append(f"sipp exit {uac.returncode}")
    result.reason = "; ".join(reasons)
    result.ok = not reasons


def _progress(step: StepResult) -> None:
    verdict = "ok" if step.ok else f"FAIL ({step.reason})"
    cpu = f", proxy {step.proxy_cpu_pct:.0f}% CPU" if step.proxy_cpu_pct is not None else ""
    print(
        f"  {step.mode:8s} {step.target_cps:5d} calls/s: {step.successful}/{step.calls_planned}"
        f" calls, {step.achieved_cps:.0f} calls/s, {step.messages_per_s:.0f} msgs/s{cpu},"
        f" SIPp {step.sipp_cpu_pct:.0f}%, others {step.other_cpu_pct:.0f}% -> {verdict}",
        file=sys.stderr,
        flush=True,
    )


# ---- scenario: throughput ----------------------------------------------------------------------


def throughput(
    bench: Bench, config: CallsConfig, modes: Sequence[Mode] = THROUGHPUT_MODES
) -> dict[str, Any]:
    """Step up the rate for every mode (interleaved); each stops at its first failed step."""
    steps: dict[Mode, list[StepResult]] = {mode: [] for mode in modes}
    done: dict[Mode, bool] = dict.fromkeys(modes, False)
    with contextlib.ExitStack() as stack:
        for mode in modes:
            if mode != "baseline":
                stack.enter_context(bench.proxy(mode, "throughput"))
        for rate in config.rates:
            for mode in modes:
                if done[mode]:
                    continue
                calls = min(round(rate * config.step_s), config.step_cap)
                step = bench.step(
                    mode, rate, calls, config.step_grace_s, probe_rate=config.load_probe_rate
                )
                steps[mode].append(step)
                _progress(step)
                done[mode] = not step.ok
                time.sleep(config.settle_s)
            if all(done.values()):
                break
    out: dict[str, Any] = {
        "modes": list(modes),
        "rates": list(config.rates),
        "step_s": config.step_s,
        "step_cap": config.step_cap,
        "retrans_limit": RETRANS_LIMIT,
        "rate_shortfall": RATE_SHORTFALL,
        "load_probe_rate": config.load_probe_rate,
    }
    for mode in modes:
        sustained = [s for s in steps[mode] if s.ok]
        best = sustained[-1] if sustained else None
        out[mode] = {
            "max_sustained_cps": best.target_cps if best else 0,
            "max_sustained_msgs_per_s": best.messages_per_s if best else 0.0,
            "msgs_per_cpu_s_at_max": best.proxy_msgs_per_cpu_s if best else None,
            "first_failure": next((asdict(s) for s in steps[mode] if not s.ok), None),
            "steps": [asdict(s) for s in steps[mode]],
        }
    out["comparison"] = comparison(out)
    return out


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return value / base


def _step_at(data: Mapping[str, Any], mode: str, rate: int) -> Mapping[str, Any] | None:
    for step in data[mode]["steps"]:
        if step["target_cps"] == rate:
            found: Mapping[str, Any] = step
            return found
    return None


def _probe_p(step: Mapping[str, Any] | None, key: str, pct: str) -> float | None:
    if step is None:
        return None
    value = step.get("load_probe", {}).get(key, {}).get(pct)
    return float(value) if value is not None else None


def comparison(data: Mapping[str, Any]) -> dict[str, Any]:
    """Every mode as ratios to the baseline (SIPp to SIPp) and to Kamailio, in the same run.

    * capacity: the highest sustained rate / the baseline's and / Kamailio's;
    * efficiency: messages per CPU-second of the proxy at ``common_cps``, the highest rate that
      every proxy mode sustained (the same load for all: CPU per message falls with load; a mode
      that sustained no step has no say, and with no such rate it is the lowest rate measured),
      and at each mode's own highest sustained rate;
    * latency under load: the load probe's INVITE->180 at ``common_cps``, minus the baseline's at
      the same rate (what the proxy adds), percentile by percentile.
    """
    modes: list[str] = list(data["modes"])
    proxies = [m for m in modes if m != "baseline"]
    sustained_rates = [
        rates
        for rates in ({s["target_cps"] for s in data[m]["steps"] if s["ok"]} for m in proxies)
        if rates  # a mode that sustained nothing has no say (its first step is still shown)
    ]
    common_set = set.intersection(*sustained_rates) if sustained_rates else set()
    first = [s["target_cps"] for m in modes for s in data[m]["steps"][:1]]
    common = max(common_set) if common_set else (min(first) if first else None)
    base_max = data["baseline"]["max_sustained_cps"] if "baseline" in data else None
    ref_max = data[REFERENCE]["max_sustained_cps"] if REFERENCE in data else None

    def at_common(mode: str) -> Mapping[str, Any] | None:
        return _step_at(data, mode, common) if common is not None else None

    ref_common = at_common(REFERENCE) if REFERENCE in data else None
    base_common = at_common("baseline") if "baseline" in data else None
    ref_eff = ref_common["proxy_msgs_per_cpu_s"] if ref_common is not None else None
    ref_best_eff = data[REFERENCE]["msgs_per_cpu_s_at_max"] if REFERENCE in data else None
    out: dict[str, Any] = {"common_cps": common, "reference": REFERENCE, "modes": {}}
    added_ref: dict[str, float | None] = {}
    for pct in ("p50", "p90", "p99"):
        ref_p = _probe_p(ref_common, "ringing_us", pct)
        base_p = _probe_p(base_common, "ringing_us", pct)
        added_ref[pct] = ref_p - base_p if ref_p is not None and base_p is not None else None
    for mode in modes:
        best = data[mode]["max_sustained_cps"]
        step = at_common(mode)
        eff = step["proxy_msgs_per_cpu_s"] if step is not None else None
        row: dict[str, Any] = {
            "max_sustained_cps": best,
            "cps_x_baseline": _ratio(best, base_max),
            "cps_x_kamailio": _ratio(best, ref_max),
            "msgs_per_cpu_s_at_common": eff,
            "us_per_msg_at_common": step["proxy_us_per_msg"] if step is not None else None,
            "cpu_pct_at_common": step["proxy_cpu_pct"] if step is not None else None,
            "msgs_per_cpu_s_x_kamailio": _ratio(eff, ref_eff),
            "msgs_per_cpu_s_at_max": data[mode]["msgs_per_cpu_s_at_max"],
            "msgs_per_cpu_s_at_max_x_kamailio": _ratio(
                data[mode]["msgs_per_cpu_s_at_max"], ref_best_eff
            ),
        }
        for pct in ("p50", "p90", "p99"):
            mine = _probe_p(step, "ringing_us", pct)
            base_p = _probe_p(base_common, "ringing_us", pct)
            added = mine - base_p if mine is not None and base_p is not None else None
            row[f"probe_ringing_{pct}_us"] = mine
            row[f"added_ringing_{pct}_us"] = added
            ref_added = added_ref[pct]
            row[f"added_ringing_{pct}_x_kamailio"] = (
                _ratio(added, ref_added) if ref_added is not None and ref_added > 0 else None
            )
        out["modes"][mode] = row
    return out


# ---- scenario: latency -------------------------------------------------------------------------


def latency(bench: Bench, config: CallsConfig, modes: Sequence[Mode] = ALL_MODES) -> dict[str, Any]:
    """Response times at ``latency_rate``: SIPp's (ms) and the probe's (us), every mode."""
    rate, calls = config.latency_rate, config.latency_calls
    limit_s = calls / rate + config.step_grace_s
    sipp: dict[str, Any] = {}
    probe: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        for mode in modes:
            if mode != "baseline":
                stack.enter_context(bench.proxy(mode, "latency"))
        for mode in (m for m in SIPP_LATENCY_MODES if m in modes):
            step = bench.step(mode, rate, calls, config.step_grace_s, rtt=True)
            _progress(step)
            sipp[mode] = asdict(step)
            time.sleep(config.settle_s)
        for mode in (m for m in PROBE_MODES if m in modes):
            proxy = bench.proxies.get(mode)
            with bench.uas(f"uas-probe-{mode}-{bench._next()}", limit_s) as uas:
                cpu0 = _Cpu.now(proxy)
                result = probe_calls(
                    bench.target(mode), mode=mode, calls=calls, rate=rate, limit_s=limit_s
                )
                cpu1 = _Cpu.now(proxy)
                others = cpu1.others_since(cpu0, {*bench.our_pids(), uas.pid})
                result = replace(
                    result,
                    proxy_cpu_s=cpu1.proxy - cpu0.proxy if proxy is not None else None,
                    other_cpu_pct=100.0 * others / result.wall_s if result.wall_s else 0.0,
                )
            print(
                f"  probe    {mode:12s}: {result.completed}/{calls} calls,"
                f" INVITE->180 p50 {result.ringing_us.get('p50', 0):.0f} us"
                f" p99 {result.ringing_us.get('p99', 0):.0f} us",
                file=sys.stderr,
                flush=True,
            )
            probe[mode] = asdict(result)
            time.sleep(config.settle_s)
    keys = ("setup_us", "ringing_us", "bye_us")
    if "baseline" in sipp:
        sipp["added_ms_by_mode"] = {
            m: _difference(sipp[m]["rtt_ms"], sipp["baseline"]["rtt_ms"])
            for m in SIPP_LATENCY_MODES
            if m in sipp and m != "baseline"
        }
        if "guarded" in sipp:
            sipp["added_ms"] = sipp["added_ms_by_mode"]["guarded"]
    if "baseline" in probe:
        by_mode: dict[str, dict[str, dict[str, float]]] = {
            m: {k: _difference(probe[m][k], probe["baseline"][k]) for k in keys}
            for m in PROBE_MODES
            if m in probe and m != "baseline"
        }
        probe["added_us_by_mode"] = by_mode
        if "guarded" in by_mode:
            probe["added_us"] = by_mode["guarded"]
        if "relay" in by_mode:
            probe["relay_added_us"] = by_mode["relay"]
        ref = by_mode.get(REFERENCE)
        probe["added_x_kamailio"] = {
            m: {
                k: {
                    pct: _ratio(added[k].get(pct), ref[k].get(pct))
                    if ref is not None and ref[k].get(pct, 0) > 0
                    else None
                    for pct in ("p50", "p90", "p99")
                }
                for k in keys
            }
            for m, added in by_mode.items()
        }
    return {"rate": rate, "calls": calls, "modes": list(modes), "sipp": sipp, "probe": probe}


# ---- the precise probe -------------------------------------------------------------------------

_SDP: Final = (
    b"v=0\r\no=probe 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
    b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
_COMPACT: Final = {b"i": b"call-id", b"t": b"to", b"m": b"contact", b"f": b"from", b"v": b"via"}
ACK_GAP_S: Final = 0.0005  # between ACK and BYE, so the BYE is not timed behind the ACK


@dataclass(slots=True)
class _Response:
    status: int
    headers: dict[bytes, list[bytes]]

    def first(self, name: bytes) -> bytes:
        values = self.headers.get(name)
        return values[0] if values else b""


def _parse_response(data: bytes) -> _Response | None:
    head, _, _ = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or parts[0] != b"SIP/2.0" or not parts[1].isdigit():
        return None
    headers: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        headers.setdefault(key, []).append(value.strip())
    return _Response(int(parts[1]), headers)


def _uri_of(name_addr: bytes) -> bytes:
    if b"<" in name_addr:
        return name_addr.split(b"<", 1)[1].split(b">", 1)[0]
    return name_addr.split(b";", 1)[0].strip()


class _Probe:
    """A one-call-at-a-time UAC on a blocking socket; everything it waits for has a deadline."""

    def __init__(self, target: tuple[str, int], timeout_s: float) -> None:
        self.target = target
        self.timeout_ns = int(timeout_s * 1e9)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port: int = self.sock.getsockname()[1]
        self.stray = 0
        self.sent = 0
        self.tag = b"pr%d" % os.getpid()

    def close(self) -> None:
        self.sock.close()

    def _request(
        self,
        method: bytes,
        uri: bytes,
        call_id: bytes,
        cseq: int,
        branch: bytes,
        user: bytes,
        **h: bytes,
    ) -> bytes:
        host, port = self.target
        lines = [
            b"%s %s SIP/2.0" % (method, uri),
            b"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s;rport" % (self.port, branch),
            b"From: <sip:%s@127.0.0.1:%d>;tag=%s" % (user, self.port, self.tag),
            b"To: " + h.get("to", b"<sip:%s@%s:%d>" % (CALLED.encode(), host.encode(), port)),
            b"Call-ID: " + call_id,
            b"CSeq: %d %s" % (cseq, method),
        ]
        if h.get("route"):
            lines.append(b"Route: " + h["route"])
        lines += [
            b"Contact: <sip:%s@127.0.0.1:%d;transport=UDP>" % (user, self.port),
            b"Max-Forwards: 70",
            b"User-Agent: sipguard-bench-probe",
        ]
        body = h.get("body", b"")
        if body:
            lines.append(b"Content-Type: application/sdp")
        lines.append(b"Content-Length: %d" % len(body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def _wait(
        self, call_id: bytes, method: bytes, sent_ns: int
    ) -> tuple[_Response | None, int | None, int]:
        """Responses to (call_id, method) until a final one: (final, first 180 at, final at)."""
        ringing_at: int | None = None
        deadline = sent_ns + self.timeout_ns
        while True:
            left = deadline - time.perf_counter_ns()
            if left <= 0:
                return None, ringing_at, 0
            self.sock.settimeout(left / 1e9)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                return None, ringing_at, 0
            at = time.perf_counter_ns()
            resp = _parse_response(data)
            if (
                resp is None
                or resp.first(b"call-id") != call_id
                or not resp.first(b"cseq").endswith(method)
            ):
                self.stray += 1  # e.g. a 200 retransmitted before our ACK arrived
                continue
            if resp.status == 180 and ringing_at is None:
                ringing_at = at
            if resp.status >= 200:
                return resp, ringing_at, at

    def call(self, index: int) -> tuple[float, float | None, float] | None:
        """One call; (setup us, ringing us, bye us) or None when any step failed."""
        host, port = self.target
        call_id = b"probe-%d-%d@127.0.0.1" % (index, os.getpid())
        uri = b"sip:%s@%s:%d" % (CALLED.encode(), host.encode(), port)
        user = b"probe%d" % index  # an account per call, as the SIPp UAC (toll-fraud limits)
        invite = self._request(b"INVITE", uri, call_id, 1, b"inv%d" % index, user, body=_SDP)
        sent = time.perf_counter_ns()
        self.sock.sendto(invite, self.target)
        self.sent += 1
        ok, ringing_at, ok_at = self._wait(call_id, b"INVITE", sent)
        if ok is None or ok.status != 200:
            return None
        to = ok.first(b"to")
        target_uri = _uri_of(ok.first(b"contact")) or uri
        record_route = [
            v.strip() for line in ok.headers.get(b"record-route", []) for v in line.split(b",")
        ]
        route = b", ".join(reversed(record_route))
        ack = self._request(
            b"ACK", target_uri, call_id, 1, b"ack%d" % index, user, to=to, route=route
        )
        self.sock.sendto(ack, self.target)
        self.sent += 1
        time.sleep(ACK_GAP_S)
        bye = self._request(
            b"BYE", target_uri, call_id, 2, b"bye%d" % index, user, to=to, route=route
        )
        bye_sent = time.perf_counter_ns()
        self.sock.sendto(bye, self.target)
        self.sent += 1
        done, _, done_at = self._wait(call_id, b"BYE", bye_sent)
        if done is None or done.status != 200:
            return None
        ringing = (ringing_at - sent) / 1e3 if ringing_at is not None else None
        return (ok_at - sent) / 1e3, ringing, (done_at - bye_sent) / 1e3


def probe_calls(
    target: tuple[str, int],
    *,
    mode: Mode,
    calls: int,
    rate: int,
    limit_s: float,
    timeout_s: float = 1.0,
) -> ProbeResult:
    """``calls`` sequential calls to ``target``, started every 1/``rate`` s (bounded by
    ``limit_s``); every call times INVITE->180, INVITE->200 and BYE->200 with perf_counter_ns.

    The probe is one Python process with a blocking socket and the garbage collector paused, so
    its own overhead is small and the same in every mode: the difference of two modes' runs is
    what the proxy adds. A call waits at most ``timeout_s`` for each response (no retransmission).
    """
    probe = _Probe(target, timeout_s)
    setup: list[float] = []
    ringing: list[float] = []
    bye: list[float] = []
    failed = 0
    period_ns = int(1e9 / rate)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    start_ns = time.perf_counter_ns()
    deadline = start_ns + int(limit_s * 1e9)
    try:
        for index in range(calls):
            due = start_ns + index * period_ns
            now = time.perf_counter_ns()
            if now >= deadline:
                failed += calls - index
                break
            if due > now:
                time.sleep((due - now) / 1e9)
            timed = probe.call(index)
            if timed is None:
                failed += 1
                continue
            setup.append(timed[0])
            if timed[1] is not None:
                ringing.append(timed[1])
            bye.append(timed[2])
    finally:
        wall_s = (time.perf_counter_ns() - start_ns) / 1e9
        probe.close()
        if gc_was_enabled:
            gc.enable()
    return ProbeResult(
        mode=mode,
        target_cps=rate,
        calls_planned=calls,
        completed=len(setup),
        failed=failed,
        stray=probe.stray,
        wall_s=wall_s,
        setup_us=percentiles(setup),
        ringing_us=percentiles(ringing),
        bye_us=percentiles(bye),
        sent=probe.sent,
    )


class LoadProbe:
    """:func:`probe_calls` in a process of its own (``python -m bench.calls probe``) alongside a
    SIPp step: latency under load. Its own process, so that no thread of the bench (the GIL, a
    5 ms switch interval) can delay its timestamps. Bounded: ``calls`` calls, ``limit_s``."""

    def __init__(
        self, target: tuple[str, int], mode: Mode, calls: int, rate: int, limit_s: float
    ) -> None:
        self.limit_s = limit_s
        argv = [
            sys.executable,
            "-m",
            "bench.calls",
            "probe",
            "--port",
            str(target[1]),
            "--mode",
            mode,
            "--calls",
            str(calls),
            "--rate",
            str(rate),
            "--limit",
            f"{limit_s:.2f}",
        ]
        self._popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def finish(self) -> ProbeResult | None:
        """Wait for the probe (bounded), its result; None when it failed."""
        try:
            out, _ = self._popen.communicate(timeout=self.limit_s + 15.0)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.communicate()
            return None
        lines = out.strip().splitlines()
        try:
            data = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            return None
        return ProbeResult(**data) if isinstance(data, dict) else None


def _probe_main(args: argparse.Namespace) -> int:
    result = probe_calls(
        (LOOPBACK, args.port),
        mode=args.mode,
        calls=args.calls,
        rate=args.rate,
        limit_s=args.limit,
    )
    print(json.dumps(asdict(result)), flush=True)
    return 0


# ---- scenario: profile -------------------------------------------------------------------------


def profile(
    bench: Bench,
    config: CallsConfig,
    out_stem: Path,
    *,
    profiler: Profiler = "cprofile",
    top: int = 25,
) -> dict[str, Any]:
    """One guarded step (not cut short on failure) with sipguard under ``profiler``.

    cProfile: deterministic, every call counted, but about 2-3x slower, and its times are wall
    times (the event loop's own entry includes the idle wait). py-spy: samples the event-loop
    thread at ``PY_SPY_RATE`` from outside, idle excluded, so its shares are shares of
    sipguard's CPU time; written as ``<stem>.pyspy.txt`` (collapsed stacks). Its self time of
    ``Runner.run`` and ``Dispatcher.send`` is overstated (see bench/README.md).
    """
    rate, calls = config.profile_rate, config.profile_calls
    if profiler == "cprofile":
        prof = out_stem.with_suffix(".prof")
        with bench.proxy("guarded", "profile", profile_to=prof):
            step = bench.step("guarded", rate, calls, config.step_grace_s, watch=False)
            _progress(step)
        if not prof.exists():
            return {"profiler": profiler, "step": asdict(step), "error": f"no {prof}"}
        entries = _cprofile_entries(prof, max(step.messages, 1))
        out_file = prof
    else:
        spy = find_py_spy()
        if spy is None:
            return {"profiler": profiler, "error": "py-spy is not installed"}
        out_file = out_stem.with_suffix(".pyspy.txt")
        with bench.proxy("guarded", "profile") as guard:
            argv = [
                spy,
                "record",
                "--pid",
                str(guard.pid),
                "--rate",
                str(PY_SPY_RATE),
                "--format",
                "raw",
                "--duration",
                str(math.ceil(calls / rate) + 2),
                "-o",
                str(out_file),
            ]
            log = (bench.work_dir / "py-spy.log").open("w")
            with log:
                sampler = subprocess.Popen(argv, stdout=log, stderr=log)
                try:
                    time.sleep(1.0)  # attached before the first call
                    step = bench.step("guarded", rate, calls, config.step_grace_s, watch=False)
                    _progress(step)
                    sampler.wait(calls / rate + 30.0)
                finally:
                    if sampler.poll() is None:
                        sampler.send_signal(signal.SIGINT)  # py-spy writes what it has
                        try:
                            sampler.wait(10.0)
                        except subprocess.TimeoutExpired:
                            sampler.kill()
                            sampler.wait()
        if not out_file.exists():
            return {"profiler": profiler, "step": asdict(step), "error": f"no {out_file}"}
        entries = _pyspy_entries(out_file, step)
    return {
        "profiler": profiler,
        "step": asdict(step),
        "profile_file": str(out_file),
        "messages": step.messages,
        "by_cumulative": sorted(entries, key=lambda e: e["cum_pct"], reverse=True)[:top],
        "by_self": sorted(entries, key=lambda e: e["self_pct"], reverse=True)[:top],
    }


def _cprofile_entries(prof: Path, messages: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(str(prof))
    table: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in table.values()) or 1.0
    return [
        {
            "function": _label(func),
            "calls": ncalls,
            "self_pct": 100.0 * tottime / total,
            "cum_pct": 100.0 * cumtime / total,
            "self_us_per_msg": 1e6 * tottime / messages,
            "cum_us_per_msg": 1e6 * cumtime / messages,
        }
        for func, (_, ncalls, tottime, cumtime, _) in table.items()
    ]


def _label(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name  # a builtin: "<method 'sendto' ...>"
    path = filename
    for marker in ("/site-packages/", f"{ROOT}/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path}:{line})"


_PYSPY_LINE = re.compile(r":\d+\)$")


def _pyspy_entries(path: Path, step: StepResult) -> list[dict[str, Any]]:
    """Self and inclusive sample counts per function (lines merged) from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_PYSPY_LINE.sub(")", frame) for frame in stack.split(";")]
        if "(threading.py)" in frames[0]:
            continue  # sipguard's helper threads (aiosqlite, executor), waiting: not the loop
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    cpu_per_msg = 1e6 * (step.proxy_cpu_s or 0.0) / max(step.messages, 1)
    total = samples or 1
    return [
        {
            "function": name,
            "calls": None,
            "samples": inclusive[name],
            "self_pct": 100.0 * own[name] / total,
            "cum_pct": 100.0 * inclusive[name] / total,
            "self_us_per_msg": cpu_per_msg * own[name] / total,
            "cum_us_per_msg": cpu_per_msg * inclusive[name] / total,
        }
        for name in inclusive
    ]


# ---- Markdown ----------------------------------------------------------------------------------


def _num(value: object, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(results: Mapping[str, Any]) -> str:
    """The tables of the call scenarios in ``results`` (the JSON's ``scenarios``)."""
    out: list[str] = []
    if "throughput" in results:
        out += _comparison_md(results["throughput"])
        out += _throughput_md(results["throughput"])
    if "latency" in results:
        out += _latency_md(results["latency"])
    for key in ("profile", "profile_py_spy"):
        if key in results:
            out += _profile_md(results[key])
    if "throughput" in results or "latency" in results:
        out += _goals_md(results)
    return "\n".join(out)


def _x(value: object) -> str:
    return f"{value:.2f}x" if isinstance(value, float) else "-"


def _comparison_md(data: Mapping[str, Any]) -> list[str]:
    comp = data.get("comparison")
    if not comp:
        return []
    common = comp["common_cps"]
    at = f"{common:,} calls/s" if common is not None else "(no rate every proxy sustained)"
    out = [
        f"### Side by side: ratios to the baseline and to {comp['reference']} (same run)",
        "",
        f"Efficiency and latency at {at}, the highest rate every proxy mode sustained (load probe:"
        f" {data.get('load_probe_rate', 0)} calls/s alongside SIPp; added = mode minus baseline"
        " at the same rate).",
        "",
        "| mode | highest sustained calls/s | x baseline | x kamailio |"
        " msgs per CPU-s | x kamailio | us CPU/msg | proxy CPU % |"
        " msgs per CPU-s at own max | x kamailio |"
        " INVITE->180 p50 us | added p50 | x kamailio | p99 us | added p99 | x kamailio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, r in comp["modes"].items():
        out.append(
            f"| {mode} | {r['max_sustained_cps']:,} | {_x(r['cps_x_baseline'])} |"
            f" {_x(r['cps_x_kamailio'])} | {_num(r['msgs_per_cpu_s_at_common'])} |"
            f" {_x(r['msgs_per_cpu_s_x_kamailio'])} | {_num(r['us_per_msg_at_common'], 1)} |"
            f" {_num(r['cpu_pct_at_common'])} | {_num(r['msgs_per_cpu_s_at_max'])} |"
            f" {_x(r['msgs_per_cpu_s_at_max_x_kamailio'])} |"
            f" {_num(r['probe_ringing_p50_us'])} | {_num(r['added_ringing_p50_us'])} |"
            f" {_x(r['added_ringing_p50_x_kamailio'])} | {_num(r['probe_ringing_p99_us'])} |"
            f" {_num(r['added_ringing_p99_us'])} | {_x(r['added_ringing_p99_x_kamailio'])} |"
        )
    out.append("")
    return out


def _throughput_md(data: Mapping[str, Any]) -> list[str]:
    out = [
        "### Throughput: step-up search (UDP, 6 messages per call)",
        "",
        "| mode | target calls/s | achieved calls/s | calls ok/planned | failed | retrans |"
        " msgs/s | proxy CPU % | user/sys s | msgs per CPU-s | CPU-s per 1k msgs |"
        " us CPU/msg | drops | probe INVITE->180 p50/p99 us | SIPp CPU % | others CPU % |"
        " sustained |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for mode in data["modes"]:
        for s in data[mode]["steps"]:
            verdict = "yes" if s["ok"] else f"no: {s['reason']}"
            split = (
                f"{s['proxy_user_s']:.2f}/{s['proxy_sys_s']:.2f}"
                if s["proxy_user_s"] is not None
                else "-"
            )
            ringing = s.get("load_probe", {}).get("ringing_us", {})
            probe = (
                f"{_num(ringing.get('p50'))}/{_num(ringing.get('p99'))}"
                if ringing.get("n")
                else "-"
            )
            out.append(
                f"| {mode} | {s['target_cps']:,} | {_num(s['achieved_cps'])} |"
                f" {s['successful']:,}/{s['calls_planned']:,} | {s['failed']} |"
                f" {s['retransmissions']:,} | {_num(s['messages_per_s'])} |"
                f" {_num(s['proxy_cpu_pct'])} | {split} | {_num(s['proxy_msgs_per_cpu_s'])} |"
                f" {_num(s['proxy_cpu_s_per_1000_msgs'], 3)} | {_num(s['proxy_us_per_msg'], 1)} |"
                f" {_num(s['proxy_socket_drops'])} | {probe} |"
                f" {_num(s['sipp_cpu_pct'])} | {_num(s['other_cpu_pct'])} | {verdict} |"
            )
    out.append("")
    for mode in data["modes"]:
        best = data[mode]
        out.append(
            f"* {mode}: highest sustained rate {best['max_sustained_cps']:,} calls/s"
            f" ({_num(best['max_sustained_msgs_per_s'])} msgs/s)"
        )
    out.append("")
    return out


def _pct_row(label: str, what: str, mode: str, p: Mapping[str, float], digits: int) -> str:
    cells = "".join(f" {_num(p.get(k), digits)} |" for k in ("p50", "p90", "p99", "p99_9", "max"))
    return f"| {label} | {what} | {mode} | {_num(p.get('n'))} |{cells} {_num(p.get('mean'), 1)} |"


def _latency_md(data: Mapping[str, Any]) -> list[str]:
    rate, calls = data["rate"], data["calls"]
    out = [
        f"### Latency at {rate} calls/s, {calls:,} calls per run",
        "",
        "| measured by | what | mode | n | p50 | p90 | p99 | p99.9 | max | mean |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sipp = data["sipp"]
    sipp_modes = [m for m in SIPP_LATENCY_MODES if m in sipp]
    out.extend(_pct_row("SIPp", "INVITE->200 ms", m, sipp[m]["rtt_ms"], 0) for m in sipp_modes)
    for mode, added in sipp.get("added_ms_by_mode", {}).items():
        out.append(_pct_row("SIPp", "INVITE->200 ms", f"**{mode} added**", added, 0))
    probe = data["probe"]
    probe_modes = [m for m in PROBE_MODES if m in probe]
    by_mode = probe.get("added_us_by_mode", {})
    for key, what in (
        ("ringing_us", "INVITE->180 us"),
        ("setup_us", "INVITE->200 us"),
        ("bye_us", "BYE->200 us"),
    ):
        out.extend(_pct_row("probe", what, m, probe[m][key], 0) for m in probe_modes)
        out.extend(
            _pct_row("probe", what, f"**{m} added**", added[key], 0) for m, added in by_mode.items()
        )
    out.append("")
    ratios = probe.get("added_x_kamailio", {})
    if any(any(v is not None for v in r["ringing_us"].values()) for r in ratios.values()):
        out += [
            "| added, as a multiple of Kamailio's | INVITE->180 p50 | p90 | p99 |"
            " BYE->200 p50 | p90 | p99 |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for mode, r in ratios.items():
            cells = [_x(r[k][p]) for k in ("ringing_us", "bye_us") for p in ("p50", "p90", "p99")]
            out.append(f"| {mode} | " + " | ".join(cells) + " |")
        out.append("")
    for mode in probe_modes:
        p = probe[mode]
        cpu = f", proxy CPU {p['proxy_cpu_s']:.2f} s" if p["proxy_cpu_s"] is not None else ""
        out.append(
            f"* probe {mode}: {p['completed']}/{p['calls_planned']} calls in"
            f" {p['wall_s']:.1f} s{cpu}; other processes meanwhile {p['other_cpu_pct']:.0f}% CPU"
        )
    out += [
        "* X added = mode X minus baseline, percentile by percentile.",
        "",
    ]
    return out


def _profile_md(data: Mapping[str, Any]) -> list[str]:
    name = data.get("profiler", "cprofile")
    if "error" in data:
        return [f"### Profile ({name})", "", f"error: {data['error']}", ""]
    step = data["step"]
    unit = "under the profiler" if name == "cprofile" else "estimated, of real CPU"
    out = [
        f"### Profile ({name}): sipguard at {step['target_cps']} calls/s,"
        f" {step['successful']:,} calls, {data['messages']:,} messages",
        "",
        f"| by cumulative | calls | cum % | cum us/msg ({unit}) |",
        "|---|---:|---:|---:|",
    ]
    out.extend(
        f"| `{e['function']}` | {_num(e['calls'])} | {e['cum_pct']:.1f} |"
        f" {e['cum_us_per_msg']:.1f} |"
        for e in data["by_cumulative"][:20]
    )
    out += [
        "",
        f"| by self | calls | self % | self us/msg ({unit}) |",
        "|---|---:|---:|---:|",
    ]
    out.extend(
        f"| `{e['function']}` | {_num(e['calls'])} | {e['self_pct']:.1f} |"
        f" {e['self_us_per_msg']:.1f} |"
        for e in data["by_self"][:20]
    )
    out.append("")
    return out


def goals(results: Mapping[str, Any]) -> dict[str, Any]:
    """The issue's goals against what was measured (absent when the scenario did not run)."""
    out: dict[str, Any] = {"reference_points": dict(REFERENCE_POINTS)}
    if "throughput" in results:
        data = results["throughput"]
        comp = data.get("comparison", {}).get("modes", {})
        out["goal_cps"] = GOAL_CPS
        out["goal_msgs_per_cpu_s"] = GOAL_MSGS_PER_CPU_S
        for mode in SIPGUARD_MODES:
            if mode not in data:
                continue
            key = mode.replace("-", "_")
            cps = data[mode]["max_sustained_cps"]
            out[f"{key}_max_sustained_cps"] = cps
            out[f"{key}_goal_cps_met"] = cps >= GOAL_CPS
            eff = data[mode]["msgs_per_cpu_s_at_max"]
            out[f"{key}_msgs_per_cpu_s"] = eff
            out[f"{key}_msgs_per_cpu_s_x_kamailio"] = comp.get(mode, {}).get(
                "msgs_per_cpu_s_at_max_x_kamailio"
            )
            out[f"{key}_goal_msgs_per_cpu_s_met"] = eff is not None and eff >= GOAL_MSGS_PER_CPU_S
            step = _step_at(data, mode, GOAL_LATENCY_CPS)
            base = _step_at(data, "baseline", GOAL_LATENCY_CPS) if "baseline" in data else None
            mine, theirs = _probe_p(step, "ringing_us", "p99"), _probe_p(base, "ringing_us", "p99")
            if mine is not None and theirs is not None:
                out[f"{key}_added_p99_ms_at_{GOAL_LATENCY_CPS}"] = (mine - theirs) / 1000.0
        if "guarded" in data:  # the keys of the first harness
            out["guarded_max_sustained_cps"] = data["guarded"]["max_sustained_cps"]
            out["goal_cps_met"] = out["guarded_goal_cps_met"]
        for mode in ("baseline", "relay", REFERENCE):
            if mode in data:
                out[f"{mode}_max_sustained_cps"] = data[mode]["max_sustained_cps"]
                out[f"{mode}_msgs_per_cpu_s"] = data[mode]["msgs_per_cpu_s_at_max"]
    if "latency" in results and "added_us" in results["latency"]["probe"]:
        # The clean round trips through the proxy: INVITE->180 and BYE->200 (INVITE->200 also
        # holds the UAS's own ~1 ms tick between its 180 and its 200, which drowns the difference).
        added = results["latency"]["probe"]["added_us"]
        worst = [added[k]["p99"] for k in ("ringing_us", "bye_us") if "p99" in added[k]]
        out["latency_rate"] = results["latency"]["rate"]
        out["added_p99_ms"] = max(worst) / 1000.0 if worst else None
        out["added_p99_ms_by_exchange"] = {
            k: added[k]["p99"] / 1000.0
            for k in ("ringing_us", "setup_us", "bye_us")
            if "p99" in added[k]
        }
        out["goal_added_p99_ms"] = GOAL_ADDED_P99_MS
        out["goal_added_p99_met"] = bool(worst) and max(worst) / 1000.0 < GOAL_ADDED_P99_MS
    return out


def _goals_md(results: Mapping[str, Any]) -> list[str]:
    g = goals(results)
    out = ["### Goals", ""]
    for mode in SIPGUARD_MODES:
        key = mode.replace("-", "_")
        if f"{key}_goal_cps_met" not in g:
            continue
        eff = g[f"{key}_msgs_per_cpu_s"]
        out.append(
            f"* {mode}: >= {GOAL_CPS:,} calls/s with zero failed calls: measured"
            f" {g[f'{key}_max_sustained_cps']:,}"
            f" -> {'met' if g[f'{key}_goal_cps_met'] else 'NOT met'};"
            f" >= {GOAL_MSGS_PER_CPU_S:,} msgs per CPU-second: measured {_num(eff)}"
            f" ({_x(g[f'{key}_msgs_per_cpu_s_x_kamailio'])} Kamailio's)"
            f" -> {'met' if g[f'{key}_goal_msgs_per_cpu_s_met'] else 'NOT met'}"
        )
        at = g.get(f"{key}_added_p99_ms_at_{GOAL_LATENCY_CPS}")
        if at is not None:
            out.append(
                f"* {mode}: < {GOAL_ADDED_P99_MS:g} ms added p99 at {GOAL_LATENCY_CPS:,} calls/s"
                f" (load probe, INVITE->180): measured {at:.3f} ms ->"
                f" {'met' if at < GOAL_ADDED_P99_MS else 'NOT met'}"
            )
    if "goal_added_p99_met" in g:
        added = g["added_p99_ms"]
        text = f"{added:.3f} ms" if added is not None else "n/a"
        out.append(
            f"* guarded: < {GOAL_ADDED_P99_MS:g} ms added p99 at {g['latency_rate']} calls/s"
            " (latency scenario, worse of INVITE->180 and BYE->200):"
            f" measured {text} -> {'met' if g['goal_added_p99_met'] else 'NOT met'}"
        )
    if "relay_max_sustained_cps" in g:
        out.append(
            f"* on this host: dumb uvloop relay {g['relay_max_sustained_cps']:,} calls/s"
            f" ({_num(g['relay_msgs_per_cpu_s'])} msgs per CPU-s), Kamailio"
            f" {g.get('kamailio_max_sustained_cps', 0):,} calls/s"
            f" ({_num(g.get('kamailio_msgs_per_cpu_s'))} msgs per CPU-s), SIPp to SIPp"
            f" {g.get('baseline_max_sustained_cps', 0):,} calls/s"
        )
    out.extend(
        f"* comparison point from the issue (other hardware, not measured here): {name} ~{value:,}"
        for name, value in REFERENCE_POINTS.items()
    )
    out.append("")
    return out


if __name__ == "__main__":
    raise SystemExit(relay_main(sys.argv[1:]))
