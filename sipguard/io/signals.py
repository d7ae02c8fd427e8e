"""Signals only set flags: SIGINT/SIGTERM stop, SIGHUP asks for a reload."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable


def install(stop: asyncio.Event, reload: Callable[[], None]) -> Callable[[], None]:
    """Wire the handlers on the running loop; returns a function that removes them again."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)

    def remove() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    return remove
