"""Hot reload: SIGHUP or a change of the policy file re-reads it off the event loop and swaps it in
one
assignment. A policy that fails to load changes nothing: the last good one keeps running (never
fail open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from sipguard.policy import Policy, PolicyError, load_policy_file
from sipguard.policy.diff import policy_changes
from sipguard.policy.model import yaml_keys

log = logging.getLogger("sipguard.reload")

WATCH_INTERVAL = 1.0  # seconds between stat() calls on the policy file
SUMMARY_LIMIT = 2000  # characters of a reload's summary in the audit trail
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
    actor: str  # "SIGHUP", "file-change", or the user of `sipguard reload` ("cli:alice")
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
        self._one_at_a_time = asyncio.Lock()  # a SIGHUP and `sipguard reload` may meet

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
        async with self._one_at_a_time:
            return await self._reload(actor)

    async def _reload(self, actor: str) -> ReloadOutcome:
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


def describe_changes(old: Policy, new: Policy, limit: int = SUMMARY_LIMIT) -> str:
    """What changed, for the audit trail, key by key in YAML terms (`limits.INVITE.rate: 30/min
    -> 60/min`, `rules: added deny-cn`); sections that only a restart applies are named. At most
    `limit` characters (the number of further changes is said)."""
    changes = policy_changes(old, new)
    if not changes:
        return "no change"
    restart = list(dict.fromkeys(c.section for c in changes if c.section in RESTART_ONLY))
    tail = ""
    if restart:
        names = ", ".join(yaml_key(Policy, name) for name in restart)
        tail = f" ({names} take effect at the next restart)"
    shown: list[str] = []
    room = limit - len("changed: ") - len(tail)
    for n, change in enumerate(changes):
        more = f"; and {len(changes) - n} more"
        if len("; ".join([*shown, change.text])) + len(more) > room and shown:
            shown.append(f"and {len(changes) - n} more")
            break
        shown.append(change.text)
    return "changed: " + "; ".join(shown) + tail


def yaml_key(cls: type[Policy], name: str) -> str:
    """The YAML spelling of a field name (`storage_path` is `storage`)."""
    return next((key for key, field in yaml_keys(cls).items() if field == name), name)


def _stamp(path: str) -> tuple[float, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size, st.st_ino)


__all__ = ["Path", "PolicyReloader", "ReloadOutcome", "describe_changes"]
