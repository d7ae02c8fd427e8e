"""Run SIPp (Debian ``sip-tester``, 3.6.x) as a subprocess, on loopback only.

Two entry points:

* :func:`start` spawns SIPp in the background and returns a :class:`SippProcess` once SIPp holds
  its SIP socket (a UAS waiting for calls, a load generator, a registered user);
  :meth:`SippProcess.stop` ends it and returns the :class:`SippResult`.
* :func:`run` spawns SIPp and waits for it to finish (hard timeout) and returns the result.
* :func:`start_registered_uas` registers a user at a registrar (digest auth) and answers the calls
  routed to it, from one SIPp process and one socket (:class:`RegisteredUas`).

A :class:`SippConfig` says what to run: a built-in scenario (``"uac"``, ``"uas"``: ``-sn``) or an
XML file (a bare ``"name.xml"`` is looked up in ``tests/peers/scenarios/``, a :class:`Path` is used
as is). The wrapper always adds ``-nostdin``, ``-bind_local``, ``-timeout`` (SIPp always ends),
control and media ports of its own (``-ci/-cp``, ``-mi/-mp``: SIPp's defaults 8888 and 6000 are
fixed ports), and the traces it reads back: ``-trace_stat -stf`` (the counters),
``-trace_err -error_file``, ``-trace_logs -log_file`` (the ``<log>`` actions of our scenarios),
``-trace_screen -screen_file``, and on request ``-trace_msg`` and ``-trace_rtt``. Every file
lives in a directory of its own under the ``work_dir`` passed in (pytest's ``tmp_path``), which
is also SIPp's working directory (``-trace_rtt`` has no file-name option).

Ports: a port left as None is picked free on the loopback address (see ``ports.py`` for the small
race); if SIPp then reports "address already in use", the start is retried once with new ports.

Stopping: ``SIGUSR1`` is SIPp's soft quit (no new calls, finish the ongoing ones, write the final
statistics); then ``SIGTERM`` (ends SIPp at once, final statistics still written), then
``SIGKILL``, each after a deadline; the process is always reaped. Only the PID this module
spawned is signalled.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

from tests.peers.ports import (
    LOOPBACK,
    check_loopback,
    free_port_both,
    free_udp_port,
    free_udp_port_pair,
    pid_has_socket,
)
from tests.peers.require import need_binary

__all__ = [
    "BUILTIN_SCENARIOS",
    "SCENARIO_DIR",
    "SCENARIO_KEYS",
    "RegisteredUas",
    "RttSample",
    "SippConfig",
    "SippError",
    "SippFiles",
    "SippProcess",
    "SippResult",
    "SippStats",
    "Transport",
    "default_keys",
    "read_rtt",
    "run",
    "scenario_path",
    "start",
    "start_registered_uas",
]

SCENARIO_DIR: Final = Path(__file__).resolve().parent / "scenarios"

BUILTIN_SCENARIOS: Final = frozenset(
    {"uac", "uas", "regexp", "branchc", "branchs", "3pcc-C-A", "3pcc-C-B", "3pcc-A", "3pcc-B"}
)

Transport = Literal["u1", "un", "t1", "tn"]

# The -key values each shipped scenario needs (SIPp refuses to load a scenario with an unset
# keyword). default_keys() fills them in; SippConfig.keys overrides.
SCENARIO_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "uac_call.xml": ("from_user",),
    "uac_call_auth.xml": ("from_user",),
    "uac_cancel.xml": ("from_user",),
    "uac_reinvite.xml": ("from_user",),
    "uas_call.xml": (),
    "uas_reinvite.xml": (),
    "uas_ring_no_answer.xml": (),
    "register_auth.xml": ("contact_host", "contact_port", "expires"),
    "register_and_answer.xml": ("contact_host", "contact_port", "expires"),
}

# SIPp exit codes (sipp -h): 0 all calls successful, 1 at least one failed, 97 exit on internal
# command or on -timeout without -timeout_error, 99 normal exit without calls processed,
# 255 (-1) fatal error (including -timeout with -timeout_error), 254 (-2) fatal socket bind error.
EXIT_OK: Final = 0
EXIT_FAILED_CALLS: Final = 1
EXIT_INTERNAL: Final = 97
EXIT_NO_CALLS: Final = 99
EXIT_FATAL: Final = 255
EXIT_BIND: Final = 254

_BIND_ERRORS: Final = ("Address already in use", "errno = 98")
_STOP_STEP_S: Final = 2.0
_counter = itertools.count(1)


class SippError(RuntimeError):
    """SIPp could not be started, or did not do what a helper waited for."""


def scenario_path(scenario: str | Path) -> Path | None:
    """The XML file of a scenario, or None for a built-in one (``-sn``)."""
    if isinstance(scenario, Path):
        return scenario
    if scenario in BUILTIN_SCENARIOS:
        return None
    path = SCENARIO_DIR / scenario
    if not path.is_file():
        raise SippError(f"no scenario {scenario!r}: neither built in nor in {SCENARIO_DIR}")
    return path


def default_keys(
    scenario: str | Path, local_ip: str, local_port: int, auth_user: str | None = None
) -> dict[str, str]:
    """The -key values a shipped scenario needs, with their defaults.

    ``from_user`` is the auth user when there is one (the test PBX wants From user == auth user),
    else ``sipp``; ``contact_host``/``contact_port`` are SIPp's own address; ``expires`` is 3600.
    """
    name = scenario.name if isinstance(scenario, Path) else scenario
    wanted = SCENARIO_KEYS.get(name, ())
    defaults = {
        "from_user": auth_user or "sipp",
        "contact_host": local_ip,
        "contact_port": str(local_port),
        "expires": "3600",
    }
    return {key: defaults[key] for key in wanted}


@dataclass(frozen=True, kw_only=True)
class SippConfig:
    """What SIPp runs and how. Every field maps to one SIPp option (see the module doc).

    ``remote`` set makes SIPp a client (UAC: the scenario starts with a send); None makes it a
    server (UAS) that waits on ``local_ip:local_port``.
    """

    scenario: str | Path
    remote: tuple[str, int] | None = None
    local_ip: str = LOOPBACK
    local_port: int | None = None  # -p; None = a free port
    transport: Transport = "u1"  # -t
    service: str | None = None  # -s: Request-URI user (UAC) / AOR user (REGISTER)
    calls: int | None = None  # -m: end after this many calls
    rate: float | None = None  # -r: calls per rate period
    rate_period_ms: int | None = None  # -rp
    limit: int | None = None  # -l: simultaneous calls
    duration_ms: int | None = None  # -d: length of <pause/> without its own milliseconds
    timeout_s: float = 30.0  # -timeout (whole seconds, rounded up: SIPp arms alarm(seconds))
    timeout_error: bool = True  # -timeout_error: reaching -timeout is a failure (exit 255)
    recv_timeout_ms: int | None = None  # -recv_timeout: a call waiting longer fails
    max_retrans: int | None = None  # -max_retrans (UDP)
    max_socket: int | None = None  # -max_socket; un/tn default 1024 (SIPp's 50000 > ulimit -n)
    keys: Mapping[str, str] = field(default_factory=dict)  # -key NAME VALUE
    variables: Mapping[str, str] = field(default_factory=dict)  # -set NAME VALUE
    auth_user: str | None = None  # -au (SIPp's default: the -s value)
    auth_password: str | None = None  # -ap
    ooc_scenario: str | Path | None = None  # -oocsf / -oocsn: answers unknown Call-IDs
    auto_answer: bool = False  # -aa: 200 to INFO, NOTIFY, OPTIONS, UPDATE
    trace_msg: bool = False  # -trace_msg -message_file
    trace_err: bool = True  # -trace_err -error_file
    trace_logs: bool = True  # -trace_logs -log_file (the scenarios' <log> actions)
    trace_screen: bool = True  # -trace_screen -screen_file (final screens)
    trace_rtt: bool = False  # -trace_rtt (response times, <scenario>_<pid>_rtt.csv)
    rtt_freq: int | None = None  # -rtt_freq: dump the rtt file every N calls
    stat_freq_ms: int = 1000  # -fd: how often the stat CSV gets a line
    label: str | None = None  # names the working directory; default: scenario stem + counter
    extra_args: Sequence[str] = ()

    def __post_init__(self) -> None:
        check_loopback(self.local_ip)
        if self.remote is not None:
            check_loopback(self.remote[0])
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive: SIPp must always end")


@dataclass(frozen=True)
class SippFiles:
    """Where one SIPp run keeps its files (all inside ``work_dir``)."""

    work_dir: Path

    @property
    def stat(self) -> Path:
        return self.work_dir / "stat.csv"

    @property
    def errors(self) -> Path:
        return self.work_dir / "errors.log"

    @property
    def messages(self) -> Path:
        return self.work_dir / "messages.log"

    @property
    def logs(self) -> Path:
        return self.work_dir / "logs.log"

    @property
    def screen(self) -> Path:
        return self.work_dir / "screen.log"

    @property
    def stdout(self) -> Path:
        return self.work_dir / "stdout.txt"

    @property
    def stderr(self) -> Path:
        return self.work_dir / "stderr.txt"

    def rtt(self, pid: int) -> Path | None:
        """SIPp names the -trace_rtt file itself: ``<scenario>_<pid>_rtt.csv`` in its cwd."""
        found = sorted(self.work_dir.glob(f"*_{pid}_rtt.csv"))
        return found[0] if found else None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _duration_ms(text: str) -> float:
    """SIPp's ``HH:MM:SS:uuuuuu`` durations (response times, call lengths) in milliseconds."""
    parts = text.strip().split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return 0.0
    hours, minutes, seconds, micros = (int(p) for p in parts)
    return ((hours * 60 + minutes) * 60 + seconds) * 1000.0 + micros / 1000.0


@dataclass(frozen=True)
class SippStats:
    """One line of SIPp's ``-trace_stat`` CSV (semicolon separated), by column name.

    SIPp writes a header line, then a line per ``-fd`` period and a last one at exit; ``(C)``
    columns are cumulative, ``(P)`` ones periodic. The last line holds the totals.
    """

    values: Mapping[str, str]

    @classmethod
    def parse(cls, text: str) -> SippStats | None:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            return None
        header = lines[0].split(";")
        last = lines[-1].split(";")
        if len(last) < len(header) - 1:  # a line SIPp is still writing
            if len(lines) < 3:
                return None
            last = lines[-2].split(";")
        return cls({name: value for name, value in zip(header, last, strict=False) if name})

    @classmethod
    def read(cls, path: Path) -> SippStats | None:
        return cls.parse(_read(path))

    def counter(self, name: str) -> int:
        """A counter by name: ``"SuccessfulCall"`` reads ``SuccessfulCall(C)``."""
        raw = self.values.get(f"{name}(C)", self.values.get(name, "0"))
        try:
            return int(float(raw))
        except ValueError:
            return 0

    @property
    def successful(self) -> int:
        return self.counter("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.counter("FailedCall")

    @property
    def retransmissions(self) -> int:
        return self.counter("Retransmissions")

    @property
    def unexpected(self) -> int:
        return self.counter("FailedUnexpectedMessage")

    @property
    def out_of_call(self) -> int:
        return self.counter("OutOfCallMsgs")

    @property
    def dead_call_msgs(self) -> int:
        return self.counter("DeadCallMsgs")

    @property
    def created(self) -> int:
        return self.counter("TotalCallCreated")

    @property
    def incoming(self) -> int:
        return self.counter("IncomingCall")

    @property
    def outgoing(self) -> int:
        return self.counter("OutgoingCall")

    @property
    def current(self) -> int:
        return self.counter("CurrentCall")

    @property
    def auto_answered(self) -> int:
        """Out-of-call messages handled by -aa or by the -oocsf scenario."""
        return self.counter("AutoAnswered")

    @property
    def warnings(self) -> int:
        return self.counter("Warnings")

    @property
    def fatal_errors(self) -> int:
        return self.counter("FatalErrors")

    def failures(self) -> dict[str, int]:
        """The non-zero ``Failed*(C)`` counters (why calls failed)."""
        out: dict[str, int] = {}
        for name in self.values:
            if name.startswith("Failed") and name.endswith("(C)") and name != "FailedCall(C)":
                value = self.counter(name[:-3])
                if value:
                    out[name[:-3]] = value
        return out

    def response_time_ms(self, rtd: int = 1) -> float:
        """Mean response time of timer ``rtd`` (the scenario's ``rtd="true"``) in ms."""
        return _duration_ms(self.values.get(f"ResponseTime{rtd}(C)", ""))

    def call_length_ms(self) -> float:
        return _duration_ms(self.values.get("CallLength(C)", ""))

    def summary(self) -> str:
        parts = [
            f"created={self.created}",
            f"successful={self.successful}",
            f"failed={self.failed}",
            f"retrans={self.retransmissions}",
            f"unexpected={self.unexpected}",
            f"out_of_call={self.out_of_call}",
            f"dead_call={self.dead_call_msgs}",
            f"auto_answered={self.auto_answered}",
        ]
        failures = self.failures()
        if failures:
            parts.append("failures=" + ",".join(f"{k}:{v}" for k, v in sorted(failures.items())))
        return " ".join(parts)


@dataclass(frozen=True)
class RttSample:
    """One row of SIPp's ``-trace_rtt`` file."""

    at_ms: float  # since SIPp started
    response_ms: float
    rtd: int  # which response-time timer (the scenario's rtd="N")


def read_rtt(path: Path) -> list[RttSample]:
    """Parse ``Date_ms;response_time_ms;rtd_no`` rows."""
    samples: list[RttSample] = []
    for line in _read(path).splitlines()[1:]:
        fields = line.strip().split(";")
        if len(fields) < 3:
            continue
        try:
            samples.append(RttSample(float(fields[0]), float(fields[1]), int(fields[2])))
        except ValueError:
            continue
    return samples


@dataclass(frozen=True)
class SippResult:
    """How a SIPp run ended: exit code, final counters, and where its logs are."""

    argv: tuple[str, ...]
    pid: int
    returncode: int
    stats: SippStats | None
    files: SippFiles
    elapsed_s: float
    timed_out: bool  # the wrapper's hard deadline ended it, not SIPp itself

    @property
    def ok(self) -> bool:
        """Exit code 0, finished by itself, and no failed call."""
        return self.returncode == EXIT_OK and not self.timed_out and self.failed == 0

    @property
    def successful(self) -> int:
        return self.stats.successful if self.stats else 0

    @property
    def failed(self) -> int:
        return self.stats.failed if self.stats else 0

    @property
    def retransmissions(self) -> int:
        return self.stats.retransmissions if self.stats else 0

    @property
    def unexpected(self) -> int:
        return self.stats.unexpected if self.stats else 0

    @property
    def out_of_call(self) -> int:
        return self.stats.out_of_call if self.stats else 0

    def errors_text(self) -> str:
        return _read(self.files.errors)

    def stderr_text(self) -> str:
        return _read(self.files.stderr)

    def log_lines(self) -> list[str]:
        """Lines written by the scenario's ``<log>`` actions."""
        return [line for line in _read(self.files.logs).splitlines() if line.strip()]

    def rtt(self) -> list[RttSample]:
        path = self.files.rtt(self.pid)
        return read_rtt(path) if path else []

    def describe(self, limit: int = 3000) -> str:
        """A summary for assertion messages: exit code, counters, and the tail of the errors."""
        head = f"sipp pid={self.pid} rc={self.returncode} timed_out={self.timed_out}"
        head += f" elapsed={self.elapsed_s:.2f}s dir={self.files.work_dir}"
        lines = [head, "  " + (self.stats.summary() if self.stats else "no statistics")]
        lines.append("  argv: " + " ".join(self.argv))
        for title, text in (("stderr", self.stderr_text()), ("errors", self.errors_text())):
            text = text.strip()
            if text:
                tail = text[-limit:]
                lines.append(f"  --- {title} (last {len(tail)} chars) ---\n{tail}")
        return "\n".join(lines)


def _wait_exit(popen: subprocess.Popen[bytes], timeout_s: float) -> bool:
    try:
        popen.wait(timeout=max(0.0, timeout_s))
    except subprocess.TimeoutExpired:
        return False
    return True


class SippProcess:
    """A running SIPp. Use :meth:`stop` (or the context manager) to end it and get the result."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        config: SippConfig,
        files: SippFiles,
        argv: tuple[str, ...],
        local_port: int,
        started: float,
    ) -> None:
        self._popen = popen
        self.config = config
        self.files = files
        self.argv = argv
        self.local_ip = config.local_ip
        self.local_port = local_port
        self._started = started
        self._result: SippResult | None = None
        self._timed_out = False

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def transport(self) -> Transport:
        return self.config.transport

    @property
    def address(self) -> tuple[str, int]:
        return (self.local_ip, self.local_port)

    def poll(self) -> int | None:
        return self._popen.poll()

    def running(self) -> bool:
        return self._popen.poll() is None

    def stats(self) -> SippStats | None:
        """The counters of the latest ``-fd`` line (or the final ones after exit)."""
        return SippStats.read(self.files.stat)

    def log_lines(self) -> list[str]:
        return [line for line in _read(self.files.logs).splitlines() if line.strip()]

    def wait_log(self, prefix: str, count: int = 1, deadline_s: float = 10.0) -> list[str]:
        """Poll the ``<log>`` file until ``count`` lines start with ``prefix``; return them.

        Raises SippError (with the run's description) at the deadline or if SIPp exits first.
        """
        end = time.monotonic() + deadline_s
        while True:
            found = [line for line in self.log_lines() if line.startswith(prefix)]
            if len(found) >= count:
                return found
            if not self.running():
                result = self.result()
                raise SippError(
                    f"SIPp exited with {len(found)}/{count} {prefix!r} log lines\n"
                    + result.describe()
                )
            if time.monotonic() >= end:
                raise SippError(
                    f"{len(found)}/{count} {prefix!r} log lines after {deadline_s}s "
                    f"(sipp pid {self.pid}, dir {self.files.work_dir})"
                )
            time.sleep(0.02)

    def _signal(self, sig: signal.Signals) -> None:
        # Popen.send_signal does nothing once the child is reaped: no stray PID is ever hit.
        with contextlib.suppress(ProcessLookupError):
            self._popen.send_signal(sig)

    def wait(self, timeout_s: float | None = None) -> SippResult:
        """Wait for SIPp to end by itself; past ``timeout_s`` stop it (``timed_out`` is set)."""
        limit = self.config.timeout_s + 10.0 if timeout_s is None else timeout_s
        if not _wait_exit(self._popen, limit):
            self._timed_out = True
            return self.stop()
        return self.result()

    def stop(self, grace_s: float = 5.0, *, soft: bool = True) -> SippResult:
        """End SIPp and return the result: SIGUSR1, SIGTERM, SIGKILL, each after a deadline.

        SIGUSR1 is SIPp's soft quit: no new calls, ongoing calls run to their end, final
        statistics are written. ``soft=False`` (or ``grace_s`` passing) goes on with SIGTERM,
        which ends SIPp at once (a call in a long <pause/> ignores SIGUSR1, even twice); SIPp
        still writes its final statistics line. SIGKILL is the last resort. Always reaped.
        """
        if self._result is not None:
            return self._result
        steps: list[tuple[signal.Signals, float]] = []
        if soft:
            steps.append((signal.SIGUSR1, grace_s))
        steps += [(signal.SIGTERM, _STOP_STEP_S), (signal.SIGKILL, 10.0)]
        for sig, wait_s in steps:
            if self._popen.poll() is not None:
                break
            self._signal(sig)
            if _wait_exit(self._popen, wait_s):
                break
        return self.result()

    def result(self) -> SippResult:
        """The result once SIPp has ended (reaps it; raises SippError while it still runs)."""
        if self._result is not None:
            return self._result
        code = self._popen.poll()
        if code is None:
            raise SippError(f"sipp pid {self.pid} is still running")
        self._result = SippResult(
            argv=self.argv,
            pid=self.pid,
            returncode=code if code >= 0 else 128 - code,
            stats=SippStats.read(self.files.stat),
            files=self.files,
            elapsed_s=time.monotonic() - self._started,
            timed_out=self._timed_out,
        )
        return self._result

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _make_dir(work_dir: Path, config: SippConfig) -> Path:
    if config.label:
        stem = config.label
    else:
        name = config.scenario.stem if isinstance(config.scenario, Path) else config.scenario
        stem = Path(name).stem
    work_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(1000):
        candidate = work_dir / f"sipp-{stem}-{next(_counter)}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise SippError(f"cannot create a SIPp directory in {work_dir}")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _argv(
    binary: str,
    config: SippConfig,
    files: SippFiles,
    local_port: int,
    control_port: int,
    media_port: int,
) -> list[str]:
    argv = [binary]
    if config.remote is not None:
        argv.append(_host_port(*config.remote))
    main = scenario_path(config.scenario)
    argv += ["-sn", str(config.scenario)] if main is None else ["-sf", str(main)]
    if config.ooc_scenario is not None:
        ooc = scenario_path(config.ooc_scenario)
        argv += ["-oocsn", str(config.ooc_scenario)] if ooc is None else ["-oocsf", str(ooc)]
    ip = config.local_ip
    argv += ["-i", ip, "-p", str(local_port), "-bind_local", "-t", config.transport]
    argv += ["-ci", ip, "-cp", str(control_port), "-mi", ip, "-mp", str(media_port)]
    argv += ["-nostdin", "-timeout", f"{max(1, math.ceil(config.timeout_s))}s"]
    if config.timeout_error:
        argv.append("-timeout_error")
    numeric: list[tuple[str, int | None]] = [
        ("-m", config.calls),
        ("-l", config.limit),
        ("-d", config.duration_ms),
        ("-recv_timeout", config.recv_timeout_ms),
        ("-max_retrans", config.max_retrans),
        ("-max_socket", config.max_socket or (1024 if config.transport in ("un", "tn") else None)),
        ("-rtt_freq", config.rtt_freq),
    ]
    for option, value in numeric:
        if value is not None:
            argv += [option, str(value)]
    if config.rate is not None:
        argv += ["-r", f"{config.rate:g}"]
    if config.rate_period_ms is not None:
        argv += ["-rp", f"{config.rate_period_ms}ms"]
    if config.service is not None:
        argv += ["-s", config.service]
    if config.auth_user is not None:
        argv += ["-au", config.auth_user]
    if config.auth_password is not None:
        argv += ["-ap", config.auth_password]
    keys = default_keys(config.scenario, ip, local_port, config.auth_user)
    keys.update(config.keys)
    for name, text in keys.items():
        argv += ["-key", name, text]
    for name, text in config.variables.items():
        argv += ["-set", name, text]
    if config.auto_answer:
        argv.append("-aa")
    argv += ["-trace_stat", "-stf", str(files.stat), "-fd", f"{config.stat_freq_ms}ms"]
    if config.trace_err:
        argv += ["-trace_err", "-error_file", str(files.errors)]
    if config.trace_msg:
        argv += ["-trace_msg", "-message_file", str(files.messages)]
    if config.trace_logs:
        argv += ["-trace_logs", "-log_file", str(files.logs)]
    if config.trace_screen:
        argv += ["-trace_screen", "-screen_file", str(files.screen)]
    if config.trace_rtt:
        argv.append("-trace_rtt")
    argv += list(config.extra_args)
    return argv


def _spawn(binary: str, config: SippConfig, work_dir: Path) -> tuple[SippProcess, bool]:
    """Spawn once; wait until SIPp holds its SIP socket or exits. True = bind failure."""
    files = SippFiles(_make_dir(work_dir, config))
    ip = config.local_ip
    local_port = config.local_port if config.local_port is not None else free_port_both(ip)
    argv = tuple(
        _argv(binary, config, files, local_port, free_udp_port(ip), free_udp_port_pair(ip))
    )
    with files.stdout.open("wb") as out, files.stderr.open("wb") as err:
        popen = subprocess.Popen(
            argv,
            cwd=files.work_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    proc = SippProcess(popen, config, files, argv, local_port, time.monotonic())
    proto: Literal["udp", "tcp"] = "tcp" if config.transport.startswith("t") else "udp"
    end = time.monotonic() + 10.0
    while True:
        if pid_has_socket(proc.pid, ip, local_port, proto):
            return proc, False
        if proc.poll() is not None:
            stderr = _read(files.stderr)
            return proc, any(marker in stderr for marker in _BIND_ERRORS)
        if time.monotonic() >= end:
            result = proc.stop(soft=False)
            raise SippError(
                f"SIPp did not bind {proto}:{ip}:{local_port} in 10 s\n{result.describe()}"
            )
        time.sleep(0.01)


def start(work_dir: Path, config: SippConfig, *, binary: str | None = None) -> SippProcess:
    """Start SIPp in the background; return once it holds its SIP socket (or has already ended).

    A start that fails on "address already in use" is retried once with fresh ports.
    """
    exe = binary if binary is not None else need_binary("sipp")
    proc, bind_failed = _spawn(exe, config, work_dir)
    if bind_failed:
        proc, bind_failed = _spawn(exe, config, work_dir)
        if bind_failed:
            raise SippError("SIPp could not bind its ports twice\n" + proc.result().describe())
    return proc


def run(
    work_dir: Path,
    config: SippConfig,
    *,
    binary: str | None = None,
    hard_timeout_s: float | None = None,
) -> SippResult:
    """Run SIPp to the end. Past ``hard_timeout_s`` (default: -timeout + 10 s) it is stopped."""
    proc = start(work_dir, config, binary=binary)
    return proc.wait(hard_timeout_s)


def guess_password(
    work_dir: Path,
    remote: tuple[str, int],
    *,
    local_ip: str,
    user: str,
    tries: int,
    binary: str | None = None,
) -> SippResult:
    """A password guesser with a real client: `tries` digest REGISTERs for `user` with a wrong
    password from `local_ip`, 5 a second."""
    config = SippConfig(
        scenario="register_auth.xml",
        remote=remote,
        local_ip=local_ip,
        service=user,
        auth_user=user,
        auth_password="guess-1234",
        calls=tries,
        rate=5,
        timeout_s=20,
        label="guesser",
    )
    return run(work_dir, config, binary=binary)


def call_once(
    work_dir: Path,
    remote: tuple[str, int],
    number: str,
    *,
    local_ip: str,
    binary: str | None = None,
) -> SippResult:
    """One call to `number` from `local_ip` (e.g. a toll-fraud destination sipguard refuses)."""
    config = SippConfig(
        scenario="uac_call.xml",
        remote=remote,
        local_ip=local_ip,
        service=number,
        calls=1,
        timeout_s=10,
        label=f"call-{number.lstrip('+')}",
    )
    return run(work_dir, config, binary=binary)


class RegisteredUas:
    """A SIPp user agent that registered at a registrar and now answers calls to its user.

    One SIPp process, one socket: ``register_and_answer.xml`` (REGISTER with digest auth, then a
    pause of ``hold_s``) as the main scenario, ``uas_call.xml`` as the out-of-call scenario that
    answers every INVITE with a new Call-ID. Works over UDP and TCP (the registrar reuses the
    REGISTER's connection). Each answered call logs ``ANSWERED <Call-ID>`` when its BYE arrives.
    """

    def __init__(self, process: SippProcess, user: str) -> None:
        self.process = process
        self.user = user

    @property
    def address(self) -> tuple[str, int]:
        return self.process.address

    def answered(self) -> int:
        """Calls answered and hung up so far."""
        return sum(1 for line in self.process.log_lines() if line.startswith("ANSWERED "))

    def wait_answered(self, count: int, deadline_s: float = 10.0) -> None:
        self.process.wait_log("ANSWERED ", count, deadline_s)

    def stop(self) -> SippResult:
        """End it at once (SIGTERM: the pause ignores SIGUSR1) and return the result."""
        return self.process.stop(soft=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_registered_uas(
    work_dir: Path,
    *,
    registrar: tuple[str, int],
    user: str,
    password: str,
    transport: Transport = "u1",
    local_ip: str = LOOPBACK,
    local_port: int | None = None,
    contact_host: str | None = None,
    contact_port: int | None = None,
    expires: int = 3600,
    hold_s: float = 60.0,
    register_deadline_s: float = 10.0,
    trace_msg: bool = False,
    label: str | None = None,
    binary: str | None = None,
) -> RegisteredUas:
    """Register ``user`` at ``registrar`` and answer calls to it until stopped (or ``hold_s``).

    Returns after the registrar's 200 (SippError if it does not come within
    ``register_deadline_s``). ``contact_host``/``contact_port`` default to SIPp's own address;
    set them to a fake NAT address (e.g. 127.0.0.254 and a port nobody listens on) to test
    Contact rewriting.
    """
    keys = {"expires": str(expires)}
    if contact_host is not None:
        keys["contact_host"] = check_loopback(contact_host)
    if contact_port is not None:
        keys["contact_port"] = str(contact_port)
    config = SippConfig(
        scenario="register_and_answer.xml",
        ooc_scenario="uas_call.xml",
        remote=registrar,
        local_ip=local_ip,
        local_port=local_port,
        transport=transport,
        service=user,
        auth_user=user,
        auth_password=password,
        calls=1,
        duration_ms=int(hold_s * 1000),
        timeout_s=hold_s + 10.0,
        timeout_error=False,
        keys=keys,
        trace_msg=trace_msg,
        stat_freq_ms=1000,
        label=label or f"registered-{user}",
    )
    proc = start(work_dir, config, binary=binary)
    try:
        proc.wait_log("REGISTERED ", 1, register_deadline_s)
    except BaseException:
        proc.stop(soft=False)
        raise
    return RegisteredUas(proc, user)
