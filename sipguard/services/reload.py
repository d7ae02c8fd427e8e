"""Hot reload: SIGHUP or a change of the policy file re-reads it off the event loop and swaps it in
one
assignment. A policy that fails to load changes nothing: the last good one keeps running (never
fail open).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from sipguard.policy import Policy, PolicyError, load_policy_file

log = logging.getLogger("sipguard.reload")

WATCH_INTERVAL = 1.0  # seconds between stat() calls on the policy file
RESTART_ONLY = (
    "listen",
    "upstream",
    "inside",
    "advertise",
    "storage_path",
    "control_path",
    "metrics",
    "alerts",
)

Prepared = TypeVar("Prepared")


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    actor: str  # "SIGHUP", "file-change", "control"
    path: str
    ok: bool
    sha256: str  # of the new text when it loaded, else ""
    summary: str  # what changed, or the errors


class PolicyReloader(Generic[Prepared]):
    """`prepare` runs in a worker thread (parse + compile + open data files); `apply` swaps on the
    loop."""

    def __init__(
        self,
        path: str,
        current: Policy,
        prepare: Callable[[Policy], Prepared],
        apply: Callable[[Policy, Prepared], None],
        report: Callable[[ReloadOutcome], Awaitable[None]],
    ) -> None:
        self._path = path
        self._current = current
        self._prepare = prepare
        self._apply = apply
        self._report = report
        self._wanted = asyncio.Event()
        self._actor = "SIGHUP"
        self._stamp = _stamp(path)

    def request(self, actor: str = "SIGHUP") -> None:
        """Called from a signal handler or the watcher; repeated requests coalesce."""
        self._actor = actor
        self._wanted.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            waiter = asyncio.ensure_future(self._wanted.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, stopper):
                task.cancel()
            if stop.is_set():
                return
            self._wanted.clear()
            await self.reload_now(self._actor)

    async def watch(self, stop: asyncio.Event, interval: float = WATCH_INTERVAL) -> None:
        """Poll the file's (mtime, size, inode): editors that replace the file are seen too."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            stamp = await asyncio.to_thread(_stamp, self._path)
            if stamp != self._stamp:
                self._stamp = stamp
                self.request("file-change")

    async def reload_now(self, actor: str) -> ReloadOutcome:
        try:
            policy = await asyncio.to_thread(load_policy_file, self._path)
            if policy.source_sha256 == self._current.source_sha256 and actor == "file-change":
                return ReloadOutcome(actor, self._path, True, policy.source_sha256, "unchanged")
            prepared = await asyncio.to_thread(self._prepare, policy)
        except PolicyError as exc:
            for issue in exc.issues:
                log.error("policy not reloaded: %s", issue)
            outcome = ReloadOutcome(
                actor, self._path, False, "", "; ".join(map(str, exc.issues))[:2000]
            )
        except (OSError, ValueError) as exc:
            log.error("policy not reloaded: %s", exc)
            outcome = ReloadOutcome(actor, self._path, False, "", str(exc)[:2000])
        else:
            summary = describe_changes(self._current, policy)
            self._apply(policy, prepared)
            self._current = policy
            log.info("policy reloaded (%s): %s", actor, summary)
            outcome = ReloadOutcome(actor, self._path, True, policy.source_sha256, summary)
        await self._report(outcome)
        return outcome


def describe_changes(old: Policy, new: Policy) -> str:
    """Which sections changed, for the audit trail; sections that only a restart applies are
    named."""
    changed = [
        f.name
        for f in dataclasses.fields(Policy)
        if f.name not in ("source_path", "source_sha256")
        and getattr(old, f.name) != getattr(new, f.name)
    ]
    if not changed:
        return "no change"
    restart = [name for name in changed if name in RESTART_ONLY]
    text = "changed: " + ", ".join(changed)
    if restart:
        text += " (" + ", ".join(restart) + " take effect at the next restart)"
    return text


def _stamp(path: str) -> tuple[float, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size, st.st_ino)


__all__ = ["Path", "PolicyReloader", "ReloadOutcome", "describe_changes"]
