"""The `records:` policy section at work: retention (pruning the store) and pseudonymised phone
numbers on the way into it. Both run off the hot path.

* `prune_loop` deletes events and rollup minutes older than the policy's retention, once at start
  and then every hour (in short transactions: `Store.prune`). Bans, the policy audit trail and
  drill results are never pruned.
* `PseudonymisingSink` wraps the store's `write`: when `records.pseudonymise_numbers` is on (read
  per batch, so a reload applies at once), events and ban evidence are pseudonymised
  (`sipguard.engine.pseudonym`) before they are written. The key is made once and kept in a file
  next to the store, mode 0600 (`key_path`), so a copy of the store handed to a reviewer does not
  carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from sipguard.engine.effects import Effect
from sipguard.engine.pseudonym import Pseudonymiser
from sipguard.policy.model import Records
from sipguard.store import Store, StoreError

log = logging.getLogger("sipguard.store")

PRUNE_INTERVAL = 3600.0  # seconds between prunes (and one at start)
KEY_SUFFIX = ".pseudonym-key"
KEY_BYTES = 32

__all__ = [
    "KEY_SUFFIX",
    "PRUNE_INTERVAL",
    "PseudonymisingSink",
    "key_path",
    "load_or_create_key",
    "prune_loop",
    "prune_once",
]


# ------------------------------------------------------------------------------------- retention


async def prune_once(store: Store, records: Records, now: float) -> int:
    """Delete what `records` no longer keeps; the number of rows deleted (0 when the store
    fails: logged, retried at the next round)."""
    rollups_before = None if records.rollups is None else now - records.rollups
    try:
        deleted = await store.prune(now - records.events, rollups_before)
    except StoreError as exc:
        log.error("pruning the store failed (retried in an hour): %s", exc)
        return 0
    if deleted:
        log.info("pruned %d old records (events and rollup rows) from the store", deleted)
    return deleted


async def prune_loop(
    store: Store,
    records: Callable[[], Records],
    clock: Callable[[], float],
    stop: asyncio.Event,
    interval: float = PRUNE_INTERVAL,
) -> None:
    """Prune at once, then every `interval` seconds until `stop`; `records()` is read each
    time, so a reloaded retention applies at the next round."""
    while not stop.is_set():
        await prune_once(store, records(), clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


# -------------------------------------------------------------------------------- pseudonyms


def key_path(storage_path: str) -> Path:
    """Where the pseudonym key of the store at `storage_path` lives: beside it."""
    store = Path(storage_path)
    return store.with_name(store.name + KEY_SUFFIX)


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, made (random, mode 0600, never overwritten) when there is none.
    Blocking: call it in a thread. Raises OSError or ValueError when the file is unusable."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(KEY_BYTES) + "\n")
            out.flush()
            os.fsync(out.fileno())
        log.info("made the pseudonym key %s (mode 0600; keep it out of store copies)", path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("pseudonym key %s is readable by others (mode %o): chmod 600 it", path, mode)
    text = path.read_text(encoding="ascii").strip()
    key = bytes.fromhex(text)
    if len(key) < KEY_BYTES // 2:
        raise ValueError(f"{path}: the pseudonym key is too short")
    return key


Writer = Callable[[Sequence[Effect]], Awaitable[None]]


class PseudonymisingSink:
    """The effect pump's sink: pseudonymise when `enabled()`, then `write`."""

    def __init__(self, write: Writer, path: Path, enabled: Callable[[], bool]) -> None:
        self._write = write
        self._path = path
        self._enabled = enabled
        self._pseudonymiser: Pseudonymiser | None = None

    async def __call__(self, batch: Sequence[Effect]) -> None:
        if self._enabled():
            pseudonymiser = self._pseudonymiser or await self._load()
            batch = pseudonymiser.effects(batch)
        await self._write(batch)

    async def _load(self) -> Pseudonymiser:
        """The key from its file; if the file is unusable, a key for this run only (pseudonyms
        then differ across restarts, but a number is never stored in clear)."""
        try:
            key = await asyncio.to_thread(load_or_create_key, self._path)
        except (OSError, ValueError) as exc:
            log.error(
                "pseudonym key %s unusable (%s): using a key for this run only, so pseudonyms "
                "will not match those of other runs",
                self._path,
                exc,
            )
            key = secrets.token_bytes(KEY_BYTES)
        self._pseudonymiser = Pseudonymiser(key)
        return self._pseudonymiser
