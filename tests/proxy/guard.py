"""Run a real sipguard (sockets, event loop, uvloop) in a background thread for a test."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sipguard.app import Running, serve
from sipguard.io import loop as sipguard_loop
from sipguard.io.counters import Counters
from sipguard.io.tcp import TcpLimits
from sipguard.policy import load_policy_text

START_TIMEOUT = 10.0


def policy_text(
    upstream: str,
    *,
    listen: tuple[str, ...] = ("udp://127.0.0.1:0", "tcp://127.0.0.1:0"),
    inside: str | None = None,
    extra: str = "",
) -> str:
    lines = ["listen:", *(f"  - {url}" for url in listen), f"upstream: {upstream}"]
    lines.append("storage: sqlite:sipguard.db")  # beside the policy file, in the test's tmp_path
    if inside is not None:
        lines.append(f"inside: {inside}")
    return "\n".join(lines) + "\n" + extra


class GuardHandle:
    def __init__(self) -> None:
        self.running: Running | None = None
        self.counters: Counters | None = None
        self.error: BaseException | None = None

    @property
    def info(self) -> Running:
        assert self.running is not None
        return self.running

    def outside(self, transport: str = "udp") -> tuple[str, int]:
        for address in self.info.outside:
            if address.transport.value == transport:
                return address.host, address.port
        raise LookupError(transport)

    def count(self, side: str, kind: str, action: str | None = None) -> int:
        return self.info.counters.count(side, kind, action)


@contextmanager
def running_guard(
    text: str,
    tmp_path: Path,
    *,
    tcp_limits: TcpLimits | None = None,
    watch_policy: bool = True,
) -> Iterator[GuardHandle]:
    """sipguard serving `text` (policy YAML) until the block ends; stops it and re-raises its
    errors."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(text, encoding="utf-8")
    policy = load_policy_text(text, str(policy_file))
    handle = GuardHandle()
    ready = threading.Event()
    loop_box: list[asyncio.AbstractEventLoop] = []
    stop_box: list[asyncio.Event] = []

    def on_ready(running: Running) -> None:
        handle.running = running
        ready.set()

    async def main() -> None:
        stop = asyncio.Event()
        loop_box.append(asyncio.get_running_loop())
        stop_box.append(stop)
        handle.counters = await serve(
            policy,
            shutdown_trigger=stop.wait,
            on_ready=on_ready,
            tcp_limits=tcp_limits,
            watch_policy=watch_policy,
        )

    def target() -> None:
        try:
            sipguard_loop.run(main())
        except BaseException as exc:  # noqa: BLE001  (handed to the test thread)
            handle.error = exc
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="sipguard", daemon=True)
    thread.start()
    ready.wait(START_TIMEOUT)
    if handle.error is not None:
        raise handle.error
    assert handle.running is not None, "sipguard did not start"
    try:
        yield handle
    finally:
        loop_box[0].call_soon_threadsafe(stop_box[0].set)
        thread.join(10)
        assert not thread.is_alive(), "sipguard did not stop"
    if handle.error is not None:
        raise handle.error
