"""The record of normal behaviour: once a minute, what the proxy saw becomes rollup rows in the
store (DESIGN.md section 6; the rows' contract is `sipguard.store.rollup`).

Nothing here runs per message. The dispatcher already counts every message by (side, kind,
action, reason) in `Counters.messages`, and the engine tallies what only it knows (countries,
answer classes, registrations, calls, call time, auth failures: `Engine.take_traffic`). At each
minute boundary `RollupWriter` takes the growth of both since the last flush, turns it into rows
(`rows_for`, pure) labelled with the minute the period started in, and writes them in the
background. A minute without traffic writes nothing.

The store may fail (full disk, locked): the rows are then kept, up to `MAX_PENDING_ROWS` (the
oldest go first past that), and written with the next minute's; the failure is logged once per
outage and its end once. On stop the partial minute is flushed (`flush`); a restart within the
same minute adds to the same rows (the store's upsert adds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from sipguard.engine.engine import Engine
from sipguard.engine.traffic import TrafficSample
from sipguard.io.counters import Counters
from sipguard.store import Dimension, RollupRow, StoreError, minute_of

log = logging.getLogger("sipguard.store")

__all__ = [
    "FLUSH_DELAY",
    "MAX_PENDING_ROWS",
    "UNPARSED",
    "RollupWriter",
    "rows_for",
    "seconds_to_next_minute",
]

MAX_PENDING_ROWS = 100_000  # rows kept while the store fails: about a day of a busy proxy
FLUSH_DELAY = 0.05  # seconds after the minute boundary the flush runs (clear of the boundary)
UNPARSED = "unparsed"  # the MESSAGES key part of messages with no method: banned, malformed

# Counters.messages kinds that carry no method: "-" (a banned source's, dropped before parsing)
# and "malformed" (did not parse); "" should not happen, but is not a method either.
_NO_METHOD = frozenset({"-", "malformed", ""})

Sink = Callable[[Sequence[RollupRow]], Awaitable[None]]
MessageKey = tuple[str, str, str, str]  # (side, kind, action, reason) as in Counters.messages


def seconds_to_next_minute(now: float, delay: float = FLUSH_DELAY) -> float:
    """How long to wait from `now` until just after the next minute boundary."""
    return max(0.0, minute_of(now) + 60.0 + delay - now)


def rows_for(
    minute: int, messages: Counter[MessageKey], sample: TrafficSample | None
) -> list[RollupRow]:
    """The rollup rows of one period: `messages` is the growth of `Counters.messages`, `sample`
    the engine's tally. Zero cells are left out, so a quiet minute has no rows."""
    cells: Counter[tuple[Dimension, str]] = Counter()
    for (side, kind, action, reason), n in messages.items():
        if n <= 0:
            continue
        what = UNPARSED if kind in _NO_METHOD else kind
        cells[(Dimension.MESSAGES, f"{side}:{what}")] += n
        if action == "drop":
            cells[(Dimension.DROPS, reason)] += n
        elif action == "reject":
            cells[(Dimension.REJECTS, reason)] += n
    rows = [RollupRow(minute, dim, key, float(n)) for (dim, key), n in sorted(cells.items())]
    if sample is not None:
        rows.extend(_sample_rows(minute, sample))
    return rows


def _sample_rows(minute: int, sample: TrafficSample) -> list[RollupRow]:
    rows = [
        RollupRow(minute, Dimension.RESPONSES, f"{c}xx", float(n))
        for c, n in sorted(sample.responses.items())
        if n
    ]
    rows.extend(
        RollupRow(minute, Dimension.COUNTRIES, code, float(n))
        for code, n in sorted(sample.countries.items())
        if n
    )
    for dimension, value in (
        (Dimension.REGISTRATIONS, float(sample.registrations)),
        (Dimension.CALLS, float(sample.calls)),
        (Dimension.CALL_MINUTES, sample.call_seconds / 60.0),
        (Dimension.AUTH_FAILURES, float(sample.auth_failures)),
    ):
        if value > 0:
            rows.append(RollupRow(minute, dimension, "", value))
    return rows


class RollupWriter:
    """Writes the per-minute rollups. `run` flushes at every minute boundary; `flush` can be
    called at any time (on stop, in tests) and writes the period since the last flush."""

    def __init__(
        self,
        counters: Counters,
        engine: Engine,
        sink: Sink,
        clock: Callable[[], float],
        *,
        max_pending: int = MAX_PENDING_ROWS,
    ) -> None:
        self._counters = counters
        self._engine = engine
        self._sink = sink
        self._clock = clock
        self._max_pending = max_pending
        now = clock()
        self._since = now
        self._seen: Counter[MessageKey] = Counter(counters.messages)
        engine.take_traffic(now)  # start the engine's tally here too
        self._pending: list[RollupRow] = []
        self._failing = False
        self.written = 0  # rows written
        self.dropped = 0  # rows given up (the pending buffer was full)
        self.failures = 0  # failed writes

    @property
    def pending(self) -> int:
        """Rows waiting for the store to heal."""
        return len(self._pending)

    def collect(self, now: float) -> list[RollupRow]:
        """The rows of the period since the last collect (synchronous: one consistent snapshot
        of the counters and the tally, no await in between), labelled with its first minute."""
        current = Counter(self._counters.messages)
        grown = current - self._seen  # Counter subtraction keeps what grew
        self._seen = current
        sample = self._engine.take_traffic(now)
        minute = minute_of(self._since)
        self._since = now
        if sample is None:  # records.rollups: off
            return []
        return rows_for(minute, grown, sample)

    async def flush(self) -> int:
        """Collect and write (with any rows a failed write left); the rows written."""
        rows = self.collect(self._clock())
        batch = self._pending + rows
        if not batch:
            return 0
        try:
            await self._sink(batch)
        except StoreError as exc:
            self._keep(batch, exc)
            return 0
        except Exception as exc:  # a bug must not stop the proxy: log it, keep the rows
            log.exception("writing rollups failed unexpectedly")
            self._keep(batch, exc)
            return 0
        self._pending = []
        self.written += len(batch)
        if self._failing:
            self._failing = False
            log.warning("rollups written again (%d rows held during the outage)", len(batch))
        return len(batch)

    def _keep(self, batch: list[RollupRow], exc: BaseException) -> None:
        self.failures += 1
        if len(batch) > self._max_pending:
            self.dropped += len(batch) - self._max_pending
            batch = batch[-self._max_pending :]
        self._pending = batch
        if not self._failing:
            self._failing = True
            log.error(
                "writing rollups failed (%s); keeping up to %d rows and retrying every minute",
                exc,
                self._max_pending,
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Flush just after every minute boundary until `stop` (the caller flushes once more
        after stopping: the partial minute)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds_to_next_minute(self._clock()))
            if stop.is_set():
                return
            await self.flush()
