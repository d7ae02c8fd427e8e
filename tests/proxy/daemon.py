"""`sipguard run` as a real subprocess, the way the README starts it, with its log lines
readable."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

SIPGUARD = Path(sys.executable).parent / "sipguard"  # the console script `pip install` made
LISTEN_LINE = re.compile(r"listening on (?P<listen>.*?); inside (?P<inside>\S+); forwarding to")


class Daemon:
    def __init__(self, policy: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(SIPGUARD), "run", "-c", str(policy), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first log line matching `pattern`; fails at the deadline or when the process ends."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        for line in self.lines:
            if found := regex.search(line):
                return found
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                raise AssertionError(f"sipguard exited before {pattern!r}: {self.lines}")
            self.lines.append(item)
            if found := regex.search(item):
                return found
        raise AssertionError(f"no log line {pattern!r} within {timeout}s: {self.lines}")

    def outside(self, transport: str) -> tuple[str, int]:
        listen = self.wait_line(LISTEN_LINE.pattern).group("listen")
        for url in listen.split(", "):
            scheme, _, hostport = url.partition("://")
            if scheme == transport:
                host, _, port = hostport.rpartition(":")
                return host.strip("[]"), int(port)
        raise LookupError(transport)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        """Signal it and wait; the exit code (a hang past `timeout` is killed and fails the
        test)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"sipguard did not stop within {timeout}s") from None
        self._reader.join(2)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
        return code
