"""The event loop comes from a factory (uvloop when installed), run through asyncio.Runner."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415  (optional at import time: the stdlib loop is the fallback)
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop if available; not uvloop.install() or policies (deprecated)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
