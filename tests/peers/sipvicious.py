"""Run SIPVicious (PyPI ``sipvicious`` 0.3.x: ``svmap``, ``svwar``, ``svcrack``) as the attacker.

Three entry points, one per tool, each a bounded subprocess against one loopback ``host:port``:

* :func:`svmap`: an OPTIONS (or other ``method``) probe of one host and port; the result lists
  the devices that answered (:class:`Device`: address and the Server/User-Agent it announced).
* :func:`svwar`: extension enumeration over a numeric range (``-e 100-130``) or a small word list
  (``-d``), with REGISTER (its default), OPTIONS or INVITE; the result maps each extension found
  to svwar's verdict (``reqauth``: answered 401/403/407, ``noauth``: 200, ``weird``: another
  answer that differs from the one a random, surely unknown, extension got).
* :func:`svcrack`: online password guessing of one user from a dictionary FILE; the result has the
  password found, or None. :func:`dictionary_with` writes the usual 30-word test dictionary whose
  29th word is the real password.

How the tools behave (read from their source, 0.3.8), and what this wrapper does about it:

* Source address: ``-b/--bindingip`` is parsed by all three, but only svmap uses it: svwar and
  svcrack never hand it to their scanner class and bind ``0.0.0.0``, so on loopback they would
  send from 127.0.0.1, an address sipguard trusts as itself. The wrapper therefore starts every
  tool through a small launcher (:data:`LAUNCHER`, ``python -c``) that imports the tool's module,
  makes its scanner class bind the wanted address (``Attacker.bind_ip``, e.g. 127.0.0.7; Via and
  Contact then carry that address too, as the tools do when ``-b`` works), and calls the tool's
  own ``main()`` with the same command line. Nothing else of the tool changes.
* User-Agent: always ``friendly-scanner`` (``makeRequest(useragent=...)`` has no command-line
  option); ``-c`` (compact headers) leaves it out altogether. ``Attacker.user_agent`` makes the
  launcher set another one (a scanner forging its User-Agent), ``Attacker.compact`` passes ``-c``.
* Pace and end: ``-t`` is the select timeout between sends (default 5 ms: about 200 requests/s).
  svwar waits 3 s (socket timeout) for the answer to its first probe, svcrack 10 s; when nothing
  comes they stop with "no server response" (exit 30). ``--maximumtime`` (svwar, svcrack; default
  here :data:`MAXIMUM_TIME_S`) stops the sending after that many seconds without any answer.
  After its dictionary runs out svcrack reads until its 10 s socket timeout, so a failed crack
  takes at least 10 s; a found password ends it at once. svmap ends 3 s after the last answer.
* Exit codes (``resolveexitcode``: the highest wins): 0 nothing found, 40 found something, 30
  network trouble or no answer, 20 an error, 10 bad usage.
* Files: they write only with ``-s/--save`` (never used here) into ``~/.sipvicious``; HOME and
  the working directory of every run are a directory of its own under the test's ``work_dir``.

Safety: the target and the bind address must be loopback literals; ``-A/--autogetip`` (which
connects to a public host), ``--randomscan``, ``--srv``, ``-R``, ``--resume``, ``-s`` and
``-i/-I`` are refused in ``extra_args``, and the launcher refuses them again and makes every
datagram the tool sends fail unless its destination is a loopback address. Every run has a hard
timeout: SIGINT first (the tools then still print what they found), then SIGTERM, then SIGKILL,
to the one PID this module started; the process is always reaped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from tests.peers.ports import check_loopback, free_udp_port
from tests.peers.require import need_binary

__all__ = [
    "ATTACKER_IP",
    "DEFAULT_USER_AGENT",
    "EXIT_ERROR",
    "EXIT_FOUND",
    "EXIT_NETWORK",
    "EXIT_NOTHING",
    "EXIT_USAGE",
    "FILLER_WORDS",
    "LAUNCHER",
    "MAXIMUM_TIME_S",
    "Attacker",
    "Device",
    "Method",
    "SipviciousError",
    "SipviciousRun",
    "SvcrackResult",
    "SvmapResult",
    "SvwarResult",
    "Tool",
    "dictionary_with",
    "parse_table",
    "svcrack",
    "svmap",
    "svwar",
    "tool_python",
]

Tool = Literal["svmap", "svwar", "svcrack"]
Method = Literal["REGISTER", "OPTIONS", "INVITE"]

ATTACKER_IP: Final = "127.0.0.7"
DEFAULT_USER_AGENT: Final = "friendly-scanner"
MAXIMUM_TIME_S: Final = 5
HARD_TIMEOUT_S: Final = 40.0

EXIT_NOTHING: Final = 0
EXIT_USAGE: Final = 10
EXIT_ERROR: Final = 20
EXIT_NETWORK: Final = 30
EXIT_FOUND: Final = 40

# Words that are nobody's password in the test PBX: the 28 (+1) wrong guesses of a dictionary.
FILLER_WORDS: Final = (
    "123456",
    "password",
    "admin",
    "letmein",
    "qwerty",
    "secret",
    "1234",
    "changeme",
    "welcome",
    "voip",
    "sip",
    "asterisk",
    "pbx",
    "monkey",
    "dragon",
    "abc123",
    "trustno1",
    "sunshine",
    "master",
    "shadow",
    "football",
    "iloveyou",
    "princess",
    "freedom",
    "whatever",
    "passw0rd",
    "111111",
    "654321",
    "zaq12wsx",
    "qwerty123",
)

_TOOLS: Final[Mapping[str, tuple[str, str]]] = {
    # tool -> (module, scanner class whose constructor takes bindingip=)
    "svmap": ("sipvicious.svmap", "DrinkOrSip"),
    "svwar": ("sipvicious.svwar", "TakeASip"),
    "svcrack": ("sipvicious.svcrack", "ASipOfRedWine"),
}

_FORBIDDEN: Final = (
    "-A",
    "--autogetip",
    "--randomscan",
    "--srv",
    "-R",
    "--reportback",
    "--resume",
    "-s",
    "--save",
    "-i",
    "--input",
    "-I",
    "--inputtext",
    "-6",
    "--ipv6",
    "-b",
    "--bindingip",
)

# python -c LAUNCHER TOOL BIND_IP USER_AGENT|- -- ARGS...
LAUNCHER: Final = r"""
import ipaddress, sys
tool, bind_ip, user_agent = sys.argv[1:4]
args = sys.argv[5:]
forbidden = {"-A", "--autogetip", "--randomscan", "--srv", "-R", "--reportback", "--resume",
             "-s", "--save", "-i", "--input", "-I", "--inputtext", "-6", "--ipv6"}
if any(a in forbidden or a.split("=", 1)[0] in forbidden for a in args):
    sys.stderr.write("launcher: option refused on this workplace\n")
    sys.exit(10)
if not ipaddress.ip_address(bind_ip).is_loopback:
    sys.stderr.write("launcher: the bind address must be loopback\n")
    sys.exit(10)
import importlib
module_name, class_name = {
    "svmap": ("sipvicious.svmap", "DrinkOrSip"),
    "svwar": ("sipvicious.svwar", "TakeASip"),
    "svcrack": ("sipvicious.svcrack", "ASipOfRedWine"),
}[tool]
module = importlib.import_module(module_name)
original_sendto = module.mysendto
def loopback_sendto(sock, data, dst):
    if not ipaddress.ip_address(dst[0]).is_loopback:
        raise OSError("launcher: refusing to send to non-loopback %r" % (dst[0],))
    return original_sendto(sock, data, dst)
module.mysendto = loopback_sendto
if user_agent != "-":
    original_make = module.makeRequest
    def make_request(*a, **k):
        k["useragent"] = user_agent
        return original_make(*a, **k)
    module.makeRequest = make_request
scanner = getattr(module, class_name)
original_init = scanner.__init__
def init(self, *a, **k):
    k["bindingip"] = bind_ip
    original_init(self, *a, **k)
scanner.__init__ = init
sys.argv = ["sipvicious_" + tool, "-b", bind_ip, *args]
module.main()
"""

_ROW_RE: Final = re.compile(r"^\|(.*)\|\s*$")
_counter = itertools.count(1)


class SipviciousError(RuntimeError):
    """A SIPVicious run could not be started or was asked for something not allowed here."""


@dataclass(frozen=True, kw_only=True)
class Attacker:
    """Who attacks and how: source address, User-Agent, pace, bounds."""

    bind_ip: str = ATTACKER_IP  # the source address of every datagram
    local_port: int | None = None  # -P; None: a port free on bind_ip
    user_agent: str | None = None  # None: the tool's own (friendly-scanner)
    compact: bool = False  # -c: compact headers, no User-Agent at all
    select_timeout_s: float | None = None  # -t: pause between sends (tool default 0.005)
    maximum_time_s: int = MAXIMUM_TIME_S  # --maximumtime (svwar, svcrack)
    hard_timeout_s: float = HARD_TIMEOUT_S  # then SIGINT, SIGTERM, SIGKILL
    verbose: bool = True  # -v: INFO log lines (what it found, why it stopped) on stderr
    extra_args: Sequence[str] = ()

    def __post_init__(self) -> None:
        check_loopback(self.bind_ip)
        if ":" in self.bind_ip:
            raise ValueError("SIPVicious attacks over IPv4 loopback here")
        if self.maximum_time_s < 1 or self.hard_timeout_s <= 0:
            raise ValueError("every run must be bounded")
        for arg in self.extra_args:
            if arg in _FORBIDDEN or arg.split("=", 1)[0] in _FORBIDDEN:
                raise SipviciousError(f"{arg!r} is not allowed (loopback and bounded runs only)")
        if self.user_agent is not None and ("\r" in self.user_agent or "\n" in self.user_agent):
            raise ValueError("a User-Agent is one line")

    @property
    def announced_user_agent(self) -> str | None:
        """The User-Agent its requests carry (None: compact mode sends none)."""
        if self.compact:
            return None
        return self.user_agent if self.user_agent is not None else DEFAULT_USER_AGENT


@dataclass(frozen=True)
class SipviciousRun:
    """One finished run: command, exit code, output, time, and where its files are."""

    tool: Tool
    argv: tuple[str, ...]
    pid: int
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float
    timed_out: bool
    work_dir: Path
    source: tuple[str, int]

    def rows(self) -> list[tuple[str, ...]]:
        """The data rows of the result table the tool printed (header left out)."""
        return parse_table(self.stdout)

    def found_nothing(self) -> bool:
        return "found nothing" in self.stderr or not self.rows()

    def describe(self, limit: int = 3000) -> str:
        """For assertion messages: the command, exit code, time, and the tail of the output."""
        head = (
            f"{self.tool} pid={self.pid} rc={self.returncode} timed_out={self.timed_out} "
            f"elapsed={self.elapsed_s:.2f}s from={self.source[0]}:{self.source[1]} "
            f"dir={self.work_dir}"
        )
        lines = [head, "  argv: " + " ".join((*self.argv[:2], "<launcher>", *self.argv[3:]))]
        for title, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            text = text.strip()
            if text:
                tail = text[-limit:]
                lines.append(f"  --- {title} (last {len(tail)} chars) ---\n{tail}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Device:
    """One svmap finding: who answered (ip:port) and the Server/User-Agent it announced."""

    address: str
    user_agent: str


@dataclass(frozen=True)
class SvmapResult:
    run: SipviciousRun
    devices: tuple[Device, ...]

    def describe(self) -> str:
        return f"devices={list(self.devices)}\n{self.run.describe()}"


@dataclass(frozen=True)
class SvwarResult:
    run: SipviciousRun
    extensions: Mapping[str, str] = field(default_factory=dict)  # extension -> verdict

    @property
    def found(self) -> frozenset[str]:
        return frozenset(self.extensions)

    def describe(self) -> str:
        return f"extensions={dict(self.extensions)}\n{self.run.describe()}"


@dataclass(frozen=True)
class SvcrackResult:
    run: SipviciousRun
    cracked: Mapping[str, str] = field(default_factory=dict)  # user -> password
    username: str = ""

    @property
    def password(self) -> str | None:
        """The password found for the attacked user, None when svcrack found none."""
        return self.cracked.get(self.username)

    def describe(self) -> str:
        return f"cracked={dict(self.cracked)}\n{self.run.describe()}"


def parse_table(text: str) -> list[tuple[str, ...]]:
    """Rows of the ASCII table (``| a | b |``) the tools print; the header row is left out."""
    rows: list[tuple[str, ...]] = []
    header_seen = False
    for line in text.splitlines():
        match = _ROW_RE.match(line.strip())
        if match is None:
            continue
        cells = tuple(cell.strip() for cell in match.group(1).split("|"))
        if not header_seen:
            header_seen = True
            continue
        rows.append(cells)
    return rows


def tool_python(tool: Tool) -> str:
    """The interpreter the tool's console script runs with (the venv's python).

    Skips the test (fails under SIPGUARD_REQUIRE_PEERS=1) when the tool is not installed."""
    script = Path(need_binary(f"sipvicious_{tool}"))
    try:
        first = script.read_bytes().split(b"\n", 1)[0].decode(errors="replace")
    except OSError:
        return sys.executable
    if first.startswith("#!"):
        interpreter = first[2:].strip().split()[0]
        if Path(interpreter).is_file():
            return interpreter
    return sys.executable


def dictionary_with(
    path: Path,
    password: str,
    *,
    size: int = 30,
    position: int = 29,
    fillers: Sequence[str] = FILLER_WORDS,
) -> Path:
    """Write a dictionary of ``size`` words whose ``position``-th (1-based) is ``password``;
    the others come from ``fillers`` (none of them equal to it)."""
    if not 1 <= position <= size:
        raise ValueError("position must be within the dictionary")
    others = [word for word in fillers if word != password]
    if len(others) < size - 1:
        raise ValueError(f"need {size - 1} filler words, have {len(others)}")
    words = others[: size - 1]
    words.insert(position - 1, password)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return path


def _work_dir(parent: Path, tool: Tool) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(1000):
        candidate = parent / f"sv-{tool}-{next(_counter)}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        (candidate / "home").mkdir()
        return candidate
    raise SipviciousError(f"cannot create a directory for {tool} in {parent}")


def _target(target: tuple[str, int]) -> str:
    host, port = target
    check_loopback(host)
    if ":" in host:
        raise ValueError("SIPVicious attacks over IPv4 loopback here")
    if not 0 < port < 65536:
        raise ValueError(f"bad port {port}")
    return f"udp://{host}:{port}"


def _common_args(attacker: Attacker, local_port: int) -> list[str]:
    args = ["-P", str(local_port)]
    if attacker.verbose:
        args.append("-v")
    if attacker.compact:
        args.append("-c")
    if attacker.select_timeout_s is not None:
        args += ["-t", f"{attacker.select_timeout_s:g}"]
    return args


def _stop(popen: subprocess.Popen[bytes]) -> None:
    """SIGINT (the tools print their results on KeyboardInterrupt), SIGTERM, SIGKILL."""
    for sig, wait_s in ((signal.SIGINT, 3.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
        if popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=wait_s)


def _run(tool: Tool, work_dir: Path, attacker: Attacker, args: Sequence[str]) -> SipviciousRun:
    python = tool_python(tool)
    run_dir = _work_dir(work_dir, tool)
    local_port = (
        attacker.local_port if attacker.local_port is not None else free_udp_port(attacker.bind_ip)
    )
    all_args = [*_common_args(attacker, local_port), *attacker.extra_args, *args]
    user_agent = attacker.user_agent if attacker.user_agent is not None else "-"
    argv = (python, "-c", LAUNCHER, tool, attacker.bind_ip, user_agent, "--", *all_args)
    env = dict(os.environ)
    env["HOME"] = str(run_dir / "home")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    stdout_path, stderr_path = run_dir / "stdout.txt", run_dir / "stderr.txt"
    (run_dir / "argv.txt").write_text("\n".join(argv[:2] + argv[3:]) + "\n", encoding="utf-8")
    started = time.monotonic()
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        popen = subprocess.Popen(
            argv, cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        timed_out = False
        try:
            popen.wait(timeout=attacker.hard_timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop(popen)
        except BaseException:
            _stop(popen)
            raise
    code = popen.returncode
    return SipviciousRun(
        tool=tool,
        argv=argv,
        pid=popen.pid,
        returncode=code if code >= 0 else 128 - code,
        stdout=stdout_path.read_text(errors="replace"),
        stderr=stderr_path.read_text(errors="replace"),
        elapsed_s=time.monotonic() - started,
        timed_out=timed_out,
        work_dir=run_dir,
        source=(attacker.bind_ip, local_port),
    )


def svmap(
    work_dir: Path,
    target: tuple[str, int],
    *,
    method: Method = "OPTIONS",
    extension: str | None = None,
    attacker: Attacker | None = None,
) -> SvmapResult:
    """``svmap -p PORT HOST -m METHOD [-e EXTENSION]``: one host, one port, one probe.

    ``extension`` is the user part of the probe's Request-URI (svmap's default: ``100``)."""
    who = attacker or Attacker()
    host, port = target
    _target(target)
    args = ["-p", str(port), "-m", method]
    if extension is not None:
        args += ["-e", extension]
    args.append(host)
    run = _run("svmap", work_dir, who, args)
    devices = tuple(Device(row[0], row[1]) for row in run.rows() if len(row) >= 2)
    return SvmapResult(run, devices)


def svwar(
    work_dir: Path,
    target: tuple[str, int],
    *,
    extensions: str | None = "100-130",
    dictionary: Sequence[str] | Path | None = None,
    method: Method = "REGISTER",
    force: bool = False,
    attacker: Attacker | None = None,
) -> SvwarResult:
    """``svwar -e RANGE`` (or ``-d FILE``) ``-m METHOD --maximumtime N udp://HOST:PORT``.

    ``dictionary`` (a word list, written to a file, or a file) replaces the range. ``force``
    (``--force``) skips svwar's check that an unknown extension is not challenged."""
    who = attacker or Attacker()
    args = ["-m", method, "--maximumtime", str(who.maximum_time_s)]
    if dictionary is not None:
        if isinstance(dictionary, Path):
            path = dictionary
        else:
            if len(dictionary) > 200:
                raise ValueError("keep svwar dictionaries small")
            path = work_dir / f"svwar-words-{next(_counter)}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(dictionary) + "\n", encoding="utf-8")
        args += ["-d", str(path)]
    elif extensions is not None:
        _check_range(extensions)
        args += ["-e", extensions]
    else:
        raise ValueError("give svwar an extension range or a dictionary")
    if force:
        args.append("--force")
    args.append(_target(target))
    run = _run("svwar", work_dir, who, args)
    found = {row[0]: row[1] for row in run.rows() if len(row) >= 2}
    return SvwarResult(run, found)


def svcrack(
    work_dir: Path,
    target: tuple[str, int],
    *,
    username: str,
    dictionary: Path,
    extension: str | None = None,
    attacker: Attacker | None = None,
) -> SvcrackResult:
    """``svcrack -u USER -d FILE --maximumtime N udp://HOST:PORT`` (REGISTER with digest)."""
    who = attacker or Attacker()
    if not dictionary.is_file():
        raise SipviciousError(f"no dictionary {dictionary}")
    lines = dictionary.read_text(encoding="utf-8", errors="replace").splitlines()
    if len(lines) > 200:
        raise ValueError("keep svcrack dictionaries small")
    args = ["-u", username, "-d", str(dictionary), "--maximumtime", str(who.maximum_time_s)]
    if extension is not None:
        args += ["-e", extension]
    args.append(_target(target))
    run = _run("svcrack", work_dir, who, args)
    cracked = {row[0]: row[1] for row in run.rows() if len(row) >= 2}
    return SvcrackResult(run, cracked, username)


def _check_range(text: str) -> None:
    """Ranges like ``100-130,200``: at most 1000 extensions in all."""
    total = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"bad extension range {text!r}")
        total += (int(high) - int(low) + 1) if high else 1
    if total > 1000:
        raise ValueError(f"{total} extensions: keep svwar ranges small")
