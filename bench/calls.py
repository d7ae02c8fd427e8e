"""Call benchmark: SIPp UAC -> [sipguard] -> SIPp UAS over UDP on loopback.

Scenarios (each returns a JSON-ready dict; :func:`markdown` renders them):

* ``throughput``: a step-up search for the highest sustained call rate, for ``baseline`` (SIPp
  UAC straight to SIPp UAS) and ``guarded`` (SIPp UAC -> ``sipguard run`` as a separate process
  -> SIPp UAS), interleaved rate by rate in the same run. A step is ``rate x step_s`` calls
  (capped) under a hard time limit; a mode stops at its first step with a failed call,
  retransmissions above 0.1 % of the messages, or an achieved rate under 95 % of the target.
* ``latency``: response times at a fixed moderate rate, with and without sipguard, measured twice:
  by SIPp (``-trace_rtt``, whole milliseconds: SIPp's clock ticks in ms) and by a precise probe
  (:func:`probe_calls`, a Python UAC timing each call with ``time.perf_counter_ns``).
* ``profile``: the guarded path once under ``python -m cProfile``, top functions by cumulative
  and by self time.

The peers are the test harness's own (``tests.peers.sipp`` and ``tests/peers/scenarios``):
``uac_call.xml`` and ``uas_call.xml``, a call of 6 messages (INVITE, 180, 200, ACK, BYE, 200; the
UAS sends no 100 Trying), each of which passes sipguard once in guarded mode. Messages are counted
from SIPp's own per-message table (sent + retransmitted, both sides), not assumed.

CPU: sipguard's utime+stime come from ``/proc/PID/stat`` before and after each step; SIPp's from
``getrusage(RUSAGE_CHILDREN)`` once the step's UAC and UAS are reaped. Everything is loopback,
every port ephemeral, every process started here and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import gc
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from tests.peers.ports import LOOPBACK, free_udp_port
from tests.peers.sipp import SippConfig, SippProcess, SippResult, read_rtt, start

__all__ = [
    "FULL",
    "QUICK",
    "Bench",
    "CallsConfig",
    "GuardProcess",
    "ProbeResult",
    "StepResult",
    "latency",
    "markdown",
    "probe_calls",
    "profile",
    "throughput",
]

Mode = Literal["baseline", "guarded"]
MODES: Final[tuple[Mode, ...]] = ("baseline", "guarded")

MESSAGES_PER_CALL: Final = 6  # INVITE, 180, 200, ACK, BYE, 200 (uas_call.xml sends no 100)
RETRANS_LIMIT: Final = 0.001  # a step fails above 0.1 % retransmissions
RATE_SHORTFALL: Final = 0.95  # ... or when SIPp achieved under 95 % of the target rate
CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
GUARD_START_S: Final = 15.0
GUARD_STOP_S: Final = 20.0  # cProfile writes its file on exit: give it time
LISTEN_LINE: Final = re.compile(
    r"listening on udp://127\.0\.0\.1:(?P<outside>\d+).*?; inside udp://127\.0\.0\.1:(?P<inside>\d+)"
)

# The goals of the issue, and the long-run comparison points (not measured here).
GOAL_CPS: Final = 1000
GOAL_ADDED_P99_MS: Final = 1.0
REFERENCE_POINTS: Final[Mapping[str, int]] = {
    "Kamailio stateless + pike, one worker (calls/s)": 18_000,
    "dumb uvloop UDP relay (calls/s)": 26_000,
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


FULL: Final = CallsConfig(
    rates=(250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000),
    step_s=5.0,
    step_cap=20_000,
    step_grace_s=10.0,
    settle_s=1.0,
    latency_rate=300,
    latency_calls=3000,
    profile_rate=500,
    profile_calls=5000,
)
QUICK: Final = CallsConfig(
    rates=(200, 500),
    step_s=1.5,
    step_cap=1000,
    step_grace_s=5.0,
    settle_s=0.2,
    latency_rate=300,
    latency_calls=300,
    profile_rate=200,
    profile_calls=400,
)


# ---- what the operating system knows ----------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """utime + stime of a live process, in seconds (``/proc/PID/stat`` fields 14 and 15)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_cpu_s() -> float:
    """CPU of every child this process has reaped so far (the SIPp runs of a step)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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


# ---- sipguard as a process --------------------------------------------------------------------


class GuardProcess:
    """``sipguard run -c POLICY`` as a subprocess (optionally under cProfile), stopped by PID."""

    def __init__(
        self,
        policy: Path,
        log_path: Path,
        *,
        profile_to: Path | None = None,
        launcher: Sequence[str] = (),
    ) -> None:
        script = Path(sys.executable).parent / "sipguard"
        if launcher:
            argv = list(launcher)  # an experiment: anything that ends in sipguard.cli.main
        elif profile_to is not None:
            argv = [sys.executable, "-m", "cProfile", "-o", str(profile_to), "-m", "sipguard"]
        elif script.exists():
            argv = [str(script)]  # the console script, exactly what a user runs
        else:
            argv = [sys.executable, "-m", "sipguard"]
        self.argv = (*argv, "run", "-c", str(policy))
        self.lines: list[str] = []
        self._log_path = log_path
        self._ready = threading.Event()
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="sipguard-stderr", daemon=True)
        self._reader.start()
        self.outside_port = 0
        self.inside_port = 0

    @property
    def pid(self) -> int:
        return self._popen.pid

    def _read(self) -> None:
        stream = self._popen.stderr
        assert stream is not None
        with self._log_path.open("w", encoding="utf-8") as log:
            for line in stream:
                self.lines.append(line.rstrip("\n"))
                log.write(line)
                found = LISTEN_LINE.search(line)
                if found is not None and not self._ready.is_set():
                    self.outside_port = int(found.group("outside"))
                    self.inside_port = int(found.group("inside"))
                    self._ready.set()
        self._ready.set()  # the process ended: wake a waiter

    def wait_ready(self, timeout_s: float = GUARD_START_S) -> None:
        self._ready.wait(timeout_s)
        if not self.outside_port:
            self.stop()
            raise RuntimeError(f"sipguard did not start: {self.lines[-5:]}")

    def cpu_s(self) -> float:
        return process_cpu_s(self.pid)

    def stop(self) -> int:
        """SIGTERM (graceful), then SIGKILL past the deadline; always reaped."""
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(signal.SIGTERM)
        try:
            code = self._popen.wait(GUARD_STOP_S)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            code = self._popen.wait()
        self._reader.join(2.0)
        return code


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
        index = math.ceil(p / 100.0 * n - 1e-9) - 1  # nearest rank
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


def _difference(guarded: Mapping[str, float], baseline: Mapping[str, float]) -> dict[str, float]:
    keys = ("mean", "p50", "p90", "p99", "p99_9", "max")
    return {k: guarded[k] - baseline[k] for k in keys if k in guarded and k in baseline}


# ---- one step: a bounded SIPp run -------------------------------------------------------------


@dataclass(slots=True)
class StepResult:
    """One SIPp UAC run at one target rate (JSON: ``asdict``)."""

    mode: Mode
    target_cps: int
    calls_planned: int
    calls_created: int = 0
    successful: int = 0
    failed: int = 0  # UAC + UAS failed calls
    retransmissions: int = 0  # UAC + UAS
    retrans_ratio: float = 0.0  # retransmissions / messages
    achieved_cps: float = 0.0  # SIPp's CallRate(C): calls created / SIPp's elapsed time
    wall_s: float = 0.0  # UAC start to UAC exit
    messages: int = 0  # datagrams the two SIPps sent (first copies + retransmissions)
    messages_per_call: float = 0.0
    messages_per_s: float = 0.0  # in guarded mode: messages through sipguard per second
    guard_cpu_s: float | None = None
    guard_cpu_pct: float | None = None  # of one core
    guard_msgs_per_cpu_s: float | None = None
    guard_cpu_s_per_1000_msgs: float | None = None
    guard_us_per_msg: float | None = None
    guard_socket_drops: int | None = None  # kernel drops on sipguard's own UDP sockets
    sipp_cpu_s: float = 0.0  # UAC + UAS
    sipp_cpu_pct: float = 0.0
    udp_rcvbuf_errors: int = 0  # whole host (/proc/net/snmp), during the step
    aborted: str = ""  # why the watchdog ended the UAC early
    ok: bool = False
    reason: str = ""  # why the step does not count as sustained
    uac_returncode: int = 0
    rtt_ms: dict[str, float] = field(default_factory=dict)  # latency steps only
    work_dir: str = ""


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
    guard_cpu_s: float | None = None


class Bench:
    """The shared pieces of one run: a work folder, the SIPp binary, the UAS port, sipguard."""

    def __init__(self, work_dir: Path, sipp: str) -> None:
        self.work_dir = work_dir
        self.sipp = sipp
        self.uas_port = free_udp_port(LOOPBACK)  # the UAS (a fresh one per step) always sits here
        self.guard: GuardProcess | None = None
        work_dir.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def guarded(
        self, name: str, *, profile_to: Path | None = None, launcher: Sequence[str] = ()
    ) -> Iterator[GuardProcess]:
        """sipguard with upstream = the UAS port, for the duration of the block."""
        policy = self.work_dir / f"policy-{name}.yaml"
        policy.write_text(
            "# written by bench/calls.py: loopback only, ephemeral ports\n"
            "listen: [udp://127.0.0.1:0]\n"
            f"upstream: udp://127.0.0.1:{self.uas_port}\n"
            "inside: udp://127.0.0.1:0\n"
            f"storage: sqlite://{self.work_dir / f'store-{name}.db'}\n"
            f"control: {self.work_dir / f'control-{name}.sock'}\n",
            encoding="utf-8",
        )
        guard = GuardProcess(
            policy, self.work_dir / f"sipguard-{name}.log", profile_to=profile_to, launcher=launcher
        )
        try:
            guard.wait_ready()
            self.guard = guard
            yield guard
        finally:
            self.guard = None
            guard.stop()

    def target(self, mode: Mode) -> tuple[str, int]:
        if mode == "baseline":
            return (LOOPBACK, self.uas_port)
        if self.guard is None:
            raise RuntimeError("guarded mode needs a running sipguard (Bench.guarded)")
        return (LOOPBACK, self.guard.outside_port)

    @contextlib.contextmanager
    def uas(self, label: str, limit_s: float) -> Iterator[SippProcess]:
        config = SippConfig(
            scenario="uas_call.xml",
            local_port=self.uas_port,
            timeout_s=limit_s + 30.0,
            timeout_error=False,
            trace_logs=False,  # one log line per call would be disk I/O the proxy run doesn't do
            label=label,
        )
        proc = start(self.work_dir, config, binary=self.sipp)
        try:
            yield proc
        finally:
            proc.stop(grace_s=2.0)

    def step(
        self, mode: Mode, rate: int, calls: int, grace_s: float, *, rtt: bool = False
    ) -> StepResult:
        """``calls`` calls at ``rate`` calls/s; bounded by ``calls / rate + grace_s`` seconds."""
        limit_s = calls / rate + grace_s
        result = StepResult(mode=mode, target_cps=rate, calls_planned=calls)
        budget = int(RETRANS_LIMIT * MESSAGES_PER_CALL * calls)
        guard = self.guard if mode == "guarded" else None
        guard_ports = [guard.outside_port, guard.inside_port] if guard is not None else []
        child0 = children_cpu_s()
        with self.uas(f"uas-{mode}-{rate}", limit_s) as uas:
            uac_config = SippConfig(
                scenario="uac_call.xml",
                remote=self.target(mode),
                service="bob",
                calls=calls,
                rate=rate,
                timeout_s=limit_s + 5.0,
                trace_logs=False,
                trace_rtt=rtt,
                rtt_freq=50 if rtt else None,
                stat_freq_ms=500,
                label=f"uac-{mode}-{rate}",
            )
            snmp0 = udp_snmp()
            drops0 = socket_drops(guard_ports) if guard else 0
            guard0 = guard.cpu_s() if guard else 0.0
            t0 = time.monotonic()
            uac = start(self.work_dir, uac_config, binary=self.sipp)
            try:
                result.aborted = _watch(uac, budget, t0 + limit_s)
            finally:
                uac_result = uac.stop(soft=False) if uac.running() else uac.result()
            result.wall_s = time.monotonic() - t0
            if guard is not None:
                result.guard_cpu_s = guard.cpu_s() - guard0
                result.guard_socket_drops = socket_drops(guard_ports) - drops0
            snmp1 = udp_snmp()
        uas_result = uas.result()
        result.sipp_cpu_s = children_cpu_s() - child0
        result.udp_rcvbuf_errors = snmp1.get("RcvbufErrors", 0) - snmp0.get("RcvbufErrors", 0)
        _fill(result, uac_result, uas_result)
        if rtt:
            rtt_file = uac_result.files.rtt(uac_result.pid)
            samples = read_rtt(rtt_file) if rtt_file is not None else []
            result.rtt_ms = percentiles([s.response_ms for s in samples if s.rtd == 1])
        return result


def _watch(uac: SippProcess, retrans_budget: int, deadline: float) -> str:
    """Wait for the UAC; end it early once the step has failed anyway. Returns why, or ""."""
    while uac.running():
        if time.monotonic() >= deadline:
            uac.stop(soft=False)
            return "time limit"
        stats = uac.stats()
        if stats is not None:
            if stats.failed:
                uac.stop(soft=False)
                return "failed calls"
            if stats.retransmissions > retrans_budget:
                uac.stop(soft=False)
                return "retransmissions"
        time.sleep(0.1)
    return ""


def _fill(result: StepResult, uac: SippResult, uas: SippResult) -> None:
    """Counters, rates and the verdict of a finished step."""
    result.uac_returncode = uac.returncode
    result.work_dir = str(uac.files.work_dir.parent)
    if uac.stats is not None:
        result.calls_created = uac.stats.created
        result.successful = uac.stats.successful
        result.failed = uac.stats.failed
        result.retransmissions = uac.stats.retransmissions
        with contextlib.suppress(ValueError):
            result.achieved_cps = float(uac.stats.values.get("CallRate(C)", "0"))
    if uas.stats is not None:
        result.failed += uas.stats.failed
        result.retransmissions += uas.stats.retransmissions
    counts = [read_message_counts(r.files.screen) for r in (uac, uas)]
    if all(c is not None for c in counts):
        result.messages = sum(c.sent + c.sent_retrans for c in counts if c is not None)
    else:  # no screen (SIPp killed hard): the scenario's count
        result.messages = MESSAGES_PER_CALL * result.successful + result.retransmissions
    if result.successful:
        result.messages_per_call = (result.messages - result.retransmissions) / result.successful
    if result.wall_s > 0:
        result.messages_per_s = result.messages / result.wall_s
        result.sipp_cpu_pct = 100.0 * result.sipp_cpu_s / result.wall_s
    if result.messages:
        result.retrans_ratio = result.retransmissions / result.messages
    cpu = result.guard_cpu_s
    if cpu is not None and result.wall_s > 0:
        result.guard_cpu_pct = 100.0 * cpu / result.wall_s
        if cpu > 0 and result.messages:
            result.guard_msgs_per_cpu_s = result.messages / cpu
            result.guard_cpu_s_per_1000_msgs = 1000.0 * cpu / result.messages
            result.guard_us_per_msg = 1e6 * cpu / result.messages
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


# ---- scenario: throughput ----------------------------------------------------------------------


def throughput(bench: Bench, config: CallsConfig) -> dict[str, Any]:
    """Step up the rate for baseline and guarded (interleaved); each stops at its first failure."""
    steps: dict[Mode, list[StepResult]] = {"baseline": [], "guarded": []}
    done: dict[Mode, bool] = {"baseline": False, "guarded": False}
    with bench.guarded("throughput"):
        for rate in config.rates:
            for mode in MODES:
                if done[mode]:
                    continue
                calls = min(round(rate * config.step_s), config.step_cap)
                step = bench.step(mode, rate, calls, config.step_grace_s)
                steps[mode].append(step)
                _progress(step)
                done[mode] = not step.ok
                time.sleep(config.settle_s)
            if all(done.values()):
                break
    out: dict[str, Any] = {
        "rates": list(config.rates),
        "step_s": config.step_s,
        "step_cap": config.step_cap,
        "retrans_limit": RETRANS_LIMIT,
        "rate_shortfall": RATE_SHORTFALL,
    }
    for mode in MODES:
        sustained = [s for s in steps[mode] if s.ok]
        best = sustained[-1] if sustained else None
        out[mode] = {
            "max_sustained_cps": best.target_cps if best else 0,
            "max_sustained_msgs_per_s": best.messages_per_s if best else 0.0,
            "first_failure": next((asdict(s) for s in steps[mode] if not s.ok), None),
            "steps": [asdict(s) for s in steps[mode]],
        }
    return out


def _progress(step: StepResult) -> None:
    verdict = "ok" if step.ok else f"FAIL ({step.reason})"
    cpu = f" sipguard {step.guard_cpu_pct:.0f}% CPU" if step.guard_cpu_pct is not None else ""
    print(
        f"  {step.mode:8s} {step.target_cps:5d} calls/s: {step.successful}/{step.calls_planned}"
        f" calls, {step.achieved_cps:.0f} calls/s, {step.messages_per_s:.0f} msgs/s{cpu}"
        f" -> {verdict}",
        file=sys.stderr,
        flush=True,
    )


# ---- scenario: latency -------------------------------------------------------------------------


def latency(bench: Bench, config: CallsConfig) -> dict[str, Any]:
    """Response times at ``latency_rate``: SIPp's (ms) and the probe's (us), with and without."""
    rate, calls = config.latency_rate, config.latency_calls
    sipp: dict[str, Any] = {}
    probe: dict[str, Any] = {}
    with bench.guarded("latency"):
        for mode in MODES:
            step = bench.step(mode, rate, calls, config.step_grace_s, rtt=True)
            _progress(step)
            sipp[mode] = asdict(step)
            time.sleep(config.settle_s)
        for mode in MODES:
            with bench.uas(f"uas-probe-{mode}", calls / rate + config.step_grace_s):
                guard = bench.guard if mode == "guarded" else None
                cpu0 = guard.cpu_s() if guard is not None else 0.0
                result = probe_calls(
                    bench.target(mode),
                    mode=mode,
                    calls=calls,
                    rate=rate,
                    limit_s=calls / rate + config.step_grace_s,
                )
                if guard is not None:
                    result = _with_cpu(result, guard.cpu_s() - cpu0)
            print(
                f"  probe    {mode:8s}: {result.completed}/{calls} calls,"
                f" setup p50 {result.setup_us.get('p50', 0):.0f} us"
                f" p99 {result.setup_us.get('p99', 0):.0f} us",
                file=sys.stderr,
                flush=True,
            )
            probe[mode] = asdict(result)
            time.sleep(config.settle_s)
    sipp["added_ms"] = _difference(sipp["guarded"]["rtt_ms"], sipp["baseline"]["rtt_ms"])
    probe["added_us"] = {
        key: _difference(probe["guarded"][key], probe["baseline"][key])
        for key in ("setup_us", "ringing_us", "bye_us")
    }
    return {"rate": rate, "calls": calls, "sipp": sipp, "probe": probe}


def _with_cpu(result: ProbeResult, cpu: float) -> ProbeResult:
    return replace(result, guard_cpu_s=cpu)


# ---- the precise probe -------------------------------------------------------------------------

_SDP: Final = (
    b"v=0\r\no=probe 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
    b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
_COMPACT: Final = {b"i": b"call-id", b"t": b"to", b"m": b"contact", b"f": b"from", b"v": b"via"}


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
        self.tag = b"pr%d" % os.getpid()

    def close(self) -> None:
        self.sock.close()

    def _request(
        self, method: bytes, uri: bytes, call_id: bytes, cseq: int, branch: bytes, **h: bytes
    ) -> bytes:
        host, port = self.target
        lines = [
            b"%s %s SIP/2.0" % (method, uri),
            b"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s;rport" % (self.port, branch),
            b"From: <sip:probe@127.0.0.1:%d>;tag=%s" % (self.port, self.tag),
            b"To: " + h.get("to", b"<sip:bob@%s:%d>" % (host.encode(), port)),
            b"Call-ID: " + call_id,
            b"CSeq: %d %s" % (cseq, method),
        ]
        if h.get("route"):
            lines.append(b"Route: " + h["route"])
        lines += [
            b"Contact: <sip:probe@127.0.0.1:%d;transport=UDP>" % self.port,
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
        uri = b"sip:bob@%s:%d" % (host.encode(), port)
        invite = self._request(b"INVITE", uri, call_id, 1, b"inv%d" % index, body=_SDP)
        sent = time.perf_counter_ns()
        self.sock.sendto(invite, self.target)
        ok, ringing_at, ok_at = self._wait(call_id, b"INVITE", sent)
        if ok is None or ok.status != 200:
            return None
        to = ok.first(b"to")
        target_uri = _uri_of(ok.first(b"contact")) or uri
        record_route = [
            v.strip() for line in ok.headers.get(b"record-route", []) for v in line.split(b",")
        ]
        route = b", ".join(reversed(record_route))
        ack = self._request(b"ACK", target_uri, call_id, 1, b"ack%d" % index, to=to, route=route)
        self.sock.sendto(ack, self.target)
        bye = self._request(b"BYE", target_uri, call_id, 2, b"bye%d" % index, to=to, route=route)
        bye_sent = time.perf_counter_ns()
        self.sock.sendto(bye, self.target)
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
    its own overhead is small and the same with and without sipguard: the difference of the two
    runs is what sipguard adds.
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
    )


# ---- scenario: profile -------------------------------------------------------------------------


def profile(bench: Bench, config: CallsConfig, prof_path: Path, top: int = 25) -> dict[str, Any]:
    """One guarded step with sipguard under cProfile; top functions by cumulative and self time."""
    with bench.guarded("profile", profile_to=prof_path):
        step = bench.step(
            "guarded",
            config.profile_rate,
            config.profile_calls,
            config.step_grace_s,
        )
        _progress(step)
    if not prof_path.exists():
        return {"step": asdict(step), "error": f"cProfile wrote no {prof_path}"}
    stats = pstats.Stats(str(prof_path))
    entries = []
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for func, (_, ncalls, tottime, cumtime, _) in table.items():
        entries.append(
            {
                "function": _label(func),
                "ncalls": ncalls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
            }
        )
    messages = max(step.messages, 1)
    for entry in entries:
        entry["self_us_per_msg"] = 1e6 * entry["tottime_s"] / messages
        entry["cum_us_per_msg"] = 1e6 * entry["cumtime_s"] / messages
    by_cum = sorted(entries, key=lambda e: e["cumtime_s"], reverse=True)[:top]
    by_self = sorted(entries, key=lambda e: e["tottime_s"], reverse=True)[:top]
    total = sum(e["tottime_s"] for e in entries)
    return {
        "step": asdict(step),
        "profile_file": str(prof_path),
        "profiled_seconds": total,
        "messages": step.messages,
        "by_cumulative": by_cum,
        "by_self": by_self,
    }


def _label(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name  # a builtin: "<method 'sendto' ...>"
    path = filename
    for marker in ("/site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}({name})"


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
    """The tables of the call scenarios in ``results`` (a subset of the JSON's ``scenarios``)."""
    out: list[str] = []
    if "throughput" in results:
        out += _throughput_md(results["throughput"])
    if "latency" in results:
        out += _latency_md(results["latency"])
    if "profile" in results:
        out += _profile_md(results["profile"])
    if "throughput" in results or "latency" in results:
        out += _goals_md(results)
    return "\n".join(out)


def _throughput_md(data: Mapping[str, Any]) -> list[str]:
    out = [
        "### Throughput: step-up search (UDP, 6 messages per call)",
        "",
        "| mode | target calls/s | achieved calls/s | calls ok/planned | failed | retrans |"
        " msgs/s | sipguard CPU % | msgs per CPU-s | CPU-s per 1k msgs | us CPU/msg |"
        " SIPp CPU % | sustained |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for mode in MODES:
        for s in data[mode]["steps"]:
            verdict = "yes" if s["ok"] else f"no: {s['reason']}"
            out.append(
                f"| {mode} | {s['target_cps']:,} | {_num(s['achieved_cps'])} |"
                f" {s['successful']:,}/{s['calls_planned']:,} | {s['failed']} |"
                f" {s['retransmissions']:,} | {_num(s['messages_per_s'])} |"
                f" {_num(s['guard_cpu_pct'])} | {_num(s['guard_msgs_per_cpu_s'])} |"
                f" {_num(s['guard_cpu_s_per_1000_msgs'], 3)} | {_num(s['guard_us_per_msg'], 1)} |"
                f" {_num(s['sipp_cpu_pct'])} | {verdict} |"
            )
    out.append("")
    for mode in MODES:
        best = data[mode]
        out.append(
            f"* {mode}: highest sustained rate {best['max_sustained_cps']:,} calls/s"
            f" ({_num(best['max_sustained_msgs_per_s'])} msgs/s)"
        )
    out.append("")
    return out


def _latency_md(data: Mapping[str, Any]) -> list[str]:
    rate, calls = data["rate"], data["calls"]
    out = [
        f"### Latency at {rate} calls/s, {calls:,} calls per run",
        "",
        "| measured by | what | mode | n | p50 | p90 | p99 | p99.9 | max | mean |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sipp = data["sipp"]
    for mode in (*MODES, "added_ms"):
        p = sipp[mode]["rtt_ms"] if mode in MODES else sipp[mode]
        label = mode if mode in MODES else "**added**"
        out.append(
            f"| SIPp (whole ms) | INVITE->200 ms | {label} | {_num(p.get('n'))} |"
            + "".join(f" {_num(p.get(k), 1)} |" for k in ("p50", "p90", "p99", "p99_9", "max"))
            + f" {_num(p.get('mean'), 2)} |"
        )
    probe = data["probe"]
    for key, what in (
        ("setup_us", "INVITE->200 us"),
        ("ringing_us", "INVITE->180 us"),
        ("bye_us", "BYE->200 us"),
    ):
        for mode in (*MODES, "added_us"):
            p = probe[mode][key]
            label = mode if mode in MODES else "**added**"
            out.append(
                f"| probe (perf_counter_ns) | {what} | {label} | {_num(p.get('n'))} |"
                + "".join(f" {_num(p.get(k))} |" for k in ("p50", "p90", "p99", "p99_9", "max"))
                + f" {_num(p.get('mean'))} |"
            )
    base, guarded = probe["baseline"], probe["guarded"]
    out.append("")
    out.append(
        f"* probe: baseline {base['completed']}/{base['calls_planned']} calls,"
        f" guarded {guarded['completed']}/{guarded['calls_planned']} calls;"
        f" sipguard CPU during the guarded probe {_num(guarded['guard_cpu_s'], 2)} s"
    )
    out.append("")
    return out


def _profile_md(data: Mapping[str, Any]) -> list[str]:
    if "error" in data:
        return ["### Profile", "", f"error: {data['error']}", ""]
    step = data["step"]
    out = [
        f"### Profile: sipguard under cProfile, {step['target_cps']} calls/s,"
        f" {step['successful']:,} calls, {data['messages']:,} messages",
        "",
        "| by cumulative time | calls | cum s | cum us/msg |",
        "|---|---:|---:|---:|",
    ]
    out.extend(
        f"| `{e['function']}` | {e['ncalls']:,} | {e['cumtime_s']:.3f} |"
        f" {e['cum_us_per_msg']:.1f} |"
        for e in data["by_cumulative"][:15]
    )
    out += ["", "| by self time | calls | self s | self us/msg |", "|---|---:|---:|---:|"]
    out.extend(
        f"| `{e['function']}` | {e['ncalls']:,} | {e['tottime_s']:.3f} |"
        f" {e['self_us_per_msg']:.1f} |"
        for e in data["by_self"][:15]
    )
    out.append("")
    return out


def goals(results: Mapping[str, Any]) -> dict[str, Any]:
    """The issue's goals against what was measured (None when the scenario did not run)."""
    out: dict[str, Any] = {"reference_points": dict(REFERENCE_POINTS)}
    if "throughput" in results:
        cps = results["throughput"]["guarded"]["max_sustained_cps"]
        out["guarded_max_sustained_cps"] = cps
        out["goal_cps"] = GOAL_CPS
        out["goal_cps_met"] = cps >= GOAL_CPS
    if "latency" in results:
        added = results["latency"]["probe"]["added_us"]["setup_us"].get("p99")
        out["added_p99_ms"] = added / 1000.0 if added is not None else None
        out["goal_added_p99_ms"] = GOAL_ADDED_P99_MS
        out["goal_added_p99_met"] = added is not None and added / 1000.0 < GOAL_ADDED_P99_MS
    return out


def _goals_md(results: Mapping[str, Any]) -> list[str]:
    g = goals(results)
    out = ["### Goals", ""]
    if "goal_cps_met" in g:
        out.append(
            f"* >= {GOAL_CPS:,} calls/s with zero failed calls through sipguard:"
            f" measured {g['guarded_max_sustained_cps']:,} calls/s"
            f" -> {'met' if g['goal_cps_met'] else 'NOT met'}"
        )
    if "goal_added_p99_met" in g:
        added = g["added_p99_ms"]
        text = f"{added:.3f} ms" if added is not None else "n/a"
        out.append(
            f"* < {GOAL_ADDED_P99_MS:g} ms added p99 latency (INVITE->200, probe):"
            f" measured {text} -> {'met' if g['goal_added_p99_met'] else 'NOT met'}"
        )
    for name, value in REFERENCE_POINTS.items():
        out.append(f"* comparison point (not measured here): {name} ~{value:,}")
    out.append("")
    return out


def find_sipp() -> str | None:
    return shutil.which("sipp")
