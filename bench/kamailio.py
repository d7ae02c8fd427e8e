"""Kamailio 5.6 as the reference stateless proxy of the call benchmark (``kamailio`` mode).

The cfg is ``bench/peers/kamailio-stateless.cfg`` as shipped (pike into an htable ban list, a
User-Agent scanner check, sanity, maxfwd, rr, stateless ``forward()`` to the upstream, one UDP
worker); :func:`start_kamailio` only fills in its two pre-processor defines, the listening port and
the upstream (``-A``), and checks it with ``kamailio -c`` first. Kamailio runs in the foreground
(``-DD -E``: its log goes to ``kamailio.log`` in its own directory) with the TLSF memory manager
(``-x tlsf``), 64 MB of shared and 8 MB of private memory, and its runtime directory, pid file
and working directory inside that directory.

Kamailio is several processes even with ``children=1`` (the main one, the UDP worker, timers):
:class:`KamailioProxy` measures all of them (``pids()``), and stops the main one by its PID,
then any child that outlived it (same PID and start time), never by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Final

from tests.peers.kamailio import children_of, start_time_of
from tests.peers.ports import LOOPBACK, check_loopback, free_udp_port, wait_udp_sip_ready

__all__ = [
    "CFG",
    "KamailioProxy",
    "check_cfg",
    "find_kamailio",
    "kamailio_version",
    "start_kamailio",
]

CFG: Final = Path(__file__).resolve().parent / "peers" / "kamailio-stateless.cfg"
SHM_MB: Final = 64
PKG_MB: Final = 8
MEMORY_MANAGER: Final = "tlsf"
READY_S: Final = 15.0
STOP_S: Final = 10.0
_BIND_ERRORS: Final = ("Address already in use", "cannot bind")


def find_kamailio() -> str | None:
    return shutil.which("kamailio") or (
        "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None
    )


def kamailio_version(binary: str) -> str | None:
    try:
        done = subprocess.run(
            [binary, "-v"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("version:"):
            return line.split()[2]
    return None


def _defines(port: int, upstream_port: int, pike_density: int | None) -> list[str]:
    args = ["-A", f"LISTEN_PORT={port}", "-A", f'UPSTREAM="sip:{LOOPBACK}:{upstream_port}"']
    if pike_density is not None:
        args += ["-A", f"PIKE_DENSITY={pike_density}"]
    return args


def check_cfg(binary: str, defines: list[str], cfg: Path = CFG) -> None:
    """``kamailio -c``: RuntimeError with Kamailio's words when the cfg does not load."""
    done = subprocess.run(
        [binary, "-c", "-f", str(cfg), *defines],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kamailio -c rejects {cfg}:\n{(done.stdout + done.stderr)[-3000:]}")


class KamailioProxy:
    """A running Kamailio; the same surface as ``bench.calls.ProxyProcess``."""

    def __init__(
        self, popen: subprocess.Popen[bytes], argv: list[str], port: int, work_dir: Path
    ) -> None:
        self._popen = popen
        self.outside_port = port
        self.inside_port = port  # one socket both ways
        self.work_dir = work_dir
        self.log_path = work_dir / "kamailio.log"
        self.argv = tuple(argv)
        self._family: list[tuple[int, str | None]] = []

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def ports(self) -> list[int]:
        return [self.outside_port]

    def running(self) -> bool:
        return self._popen.poll() is None

    def pids(self) -> list[int]:
        """The main process and its children (all of Kamailio's CPU)."""
        return [self.pid, *children_of(self.pid)]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self, marker: str) -> list[str]:
        return [line for line in self.log_text().splitlines() if marker in line]

    def wait_ready(self, timeout_s: float = READY_S) -> None:
        end = time.monotonic() + timeout_s
        while True:
            if not self.running():
                raise RuntimeError(f"kamailio exited early:\n{self.log_text()[-3000:]}")
            try:
                # From 127.0.0.1 (myself): the OPTIONS keep-alive answer, no pike involved.
                wait_udp_sip_ready(LOOPBACK, self.outside_port, deadline_s=0.5)
                break
            except TimeoutError:
                if time.monotonic() >= end:
                    self.stop()
                    raise RuntimeError(
                        f"kamailio not answering on udp:{LOOPBACK}:{self.outside_port}:\n"
                        f"{self.log_text()[-3000:]}"
                    ) from None
        self._family = [(pid, start_time_of(pid)) for pid in children_of(self.pid)]

    def stop(self) -> int:
        """SIGTERM to the main process (it stops its children), SIGKILL past the deadline; then
        SIGKILL any child that outlived it. Reaped; idempotent."""
        family = self._family or [(pid, start_time_of(pid)) for pid in children_of(self.pid)]
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(STOP_S)
        for pid, started in family:
            if started is not None and start_time_of(pid) == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        return self._popen.returncode


def start_kamailio(
    work_dir: Path,
    upstream_port: int,
    *,
    binary: str | None = None,
    pike_density: int | None = None,
    cfg: Path = CFG,
) -> KamailioProxy:
    """Kamailio listening on a free loopback UDP port, forwarding to ``upstream_port``; ready
    (answering OPTIONS) when this returns. A bind race is retried once with another port."""
    exe = binary or find_kamailio()
    if exe is None:
        raise RuntimeError("kamailio not found (apt-get install -y kamailio)")
    check_loopback(LOOPBACK)
    work_dir.mkdir(parents=True, exist_ok=True)
    run_dir = work_dir / "run"
    run_dir.mkdir(exist_ok=True)
    for attempt in range(2):
        port = free_udp_port(LOOPBACK)
        defines = _defines(port, upstream_port, pike_density)
        check_cfg(exe, defines, cfg)
        argv = [
            exe,
            "-f",
            str(cfg),
            "-DD",
            "-E",
            "-x",
            MEMORY_MANAGER,
            "-m",
            str(SHM_MB),
            "-M",
            str(PKG_MB),
            "-Y",
            str(run_dir),
            "-P",
            str(run_dir / "kamailio.pid"),
            "-w",
            str(work_dir),
            *defines,
        ]
        log = (work_dir / "kamailio.log").open("wb")
        with log:
            popen = subprocess.Popen(
                argv, cwd=work_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        proxy = KamailioProxy(popen, argv, port, work_dir)
        try:
            proxy.wait_ready()
        except RuntimeError:
            proxy.stop()
            text = proxy.log_text()
            if attempt == 0 and any(marker in text for marker in _BIND_ERRORS):
                (work_dir / "kamailio.log").rename(work_dir / "kamailio.failed.log")
                continue
            raise
        except BaseException:
            proxy.stop()
            raise
        return proxy
    raise RuntimeError("unreachable")  # pragma: no cover
