"""The rollup writer, retention and the pseudonymising sink against a real SQLite store file."""

from __future__ import annotations

import asyncio
import logging
import stat
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from sipguard.engine.compile import compile_policy
from sipguard.engine.effects import Effect, SecurityEvent
from sipguard.engine.engine import Engine
from sipguard.engine.proxy import Address, Router
from sipguard.io.counters import Counters
from sipguard.policy import load_policy_text
from sipguard.policy.model import Records, Severity, Transport
from sipguard.services.records import (
    PseudonymisingSink,
    key_path,
    load_or_create_key,
    prune_loop,
    prune_once,
)
from sipguard.services.rollups import RollupWriter
from sipguard.store import Dimension, RollupRow, Store, StoreError

UDP = Transport.UDP
T0 = 1_699_999_980.0  # a minute boundary
DAY = 86400.0


def make_engine(extra: str = "") -> Engine:
    policy = compile_policy(load_policy_text("upstream: udp://10.0.0.5:5060\n" + extra))
    outside = [Address(UDP, "198.18.0.1", 5060)]
    router = Router(outside, Address(UDP, "10.0.0.1", 5070), Address(UDP, "10.0.0.5", 5060))
    return Engine(router, policy)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def totals(rows: Sequence[RollupRow]) -> dict[tuple[int, str, str], float]:
    return {(r.minute, r.dimension.value, r.key): r.value for r in rows}


@pytest.mark.asyncio
async def test_a_minute_of_counts_lands_in_the_store_labelled_with_its_minute(
    tmp_path: Path,
) -> None:
    counters, clock = Counters(), Clock(T0 + 5)
    async with await Store.open(tmp_path / "s.db") as store:
        writer = RollupWriter(counters, make_engine(), store.write_rollups, clock)
        counters.messages[("outside", "INVITE", "forward", "ok")] += 3
        counters.messages[("outside", "-", "drop", "banned")] += 7
        clock.now = T0 + 60.05  # the flush just after the boundary
        assert await writer.flush() == 3
        counters.messages[("outside", "INVITE", "forward", "ok")] += 1
        clock.now = T0 + 90  # stop in the middle of the next minute: the partial minute
        assert await writer.flush() == 1
        clock.now = T0 + 150.05
        assert await writer.flush() == 0  # a quiet minute writes nothing
        rows = await store.rollups(0)
    m = int(T0)
    assert totals(rows) == {
        (m, "drops", "banned"): 7.0,
        (m, "messages", "outside:INVITE"): 3.0,
        (m, "messages", "outside:unparsed"): 7.0,
        (m + 60, "messages", "outside:INVITE"): 1.0,
    }


@pytest.mark.asyncio
async def test_a_failing_store_keeps_the_rows_and_logs_once_per_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counters, clock = Counters(), Clock(T0)
    async with await Store.open(tmp_path / "s.db") as store:
        failures = [StoreError("database or disk is full", retryable=True)] * 3

        async def flaky(rows: Sequence[RollupRow]) -> None:
            if failures:
                raise failures.pop()
            await store.write_rollups(rows)

        writer = RollupWriter(counters, make_engine(), flaky, clock, max_pending=2)
        with caplog.at_level(logging.WARNING, logger="sipguard.store"):
            for minute in range(4):
                counters.messages[("inside", "response", "forward", "ok")] += 1
                clock.now = T0 + 60 * (minute + 1) + 0.05
                await writer.flush()
        assert (writer.failures, writer.dropped, writer.pending) == (3, 1, 0)
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "writing rollups failed" in errors[0].getMessage()
        assert any("written again" in r.getMessage() for r in caplog.records)
        rows = await store.rollups(0)
    # the first minute's row went when the buffer of 2 overflowed; the next three arrived late
    assert [r.minute - int(T0) for r in rows] == [60, 120, 180]


@pytest.mark.asyncio
async def test_rollups_off_writes_nothing(tmp_path: Path) -> None:
    counters, clock = Counters(), Clock(T0)
    async with await Store.open(tmp_path / "s.db") as store:
        writer = RollupWriter(
            counters, make_engine("records: {rollups: off}\n"), store.write_rollups, clock
        )
        counters.messages[("outside", "INVITE", "forward", "ok")] += 3
        clock.now = T0 + 60
        assert await writer.flush() == 0
        assert await store.rollups(0) == []


@pytest.mark.asyncio
async def test_run_flushes_at_the_minute_boundary_and_stops_promptly(tmp_path: Path) -> None:
    offset = T0 + 59.7 - time.time()  # a wall clock 0.3 s before a minute boundary
    counters = Counters()
    async with await Store.open(tmp_path / "s.db") as store:
        written = asyncio.Event()

        async def sink(rows: Sequence[RollupRow]) -> None:
            await store.write_rollups(rows)
            written.set()

        writer = RollupWriter(counters, make_engine(), sink, lambda: time.time() + offset)
        counters.messages[("outside", "OPTIONS", "forward", "ok")] += 2
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        await asyncio.wait_for(written.wait(), 5)
        stop.set()
        await asyncio.wait_for(task, 2)
        rows = await store.rollups(0)
    assert totals(rows) == {(int(T0), "messages", "outside:OPTIONS"): 2.0}


@pytest.mark.asyncio
async def test_retention_prunes_events_and_rollups_by_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = T0
    async with await Store.open(tmp_path / "s.db") as store:
        await store.write(
            [
                SecurityEvent(now - 100 * DAY, "rule", Severity.NOTICE),
                SecurityEvent(now - 10 * DAY, "rule", Severity.NOTICE),
            ]
        )
        await store.write_rollups(
            [
                RollupRow(int(now - 500 * DAY) // 60 * 60, Dimension.CALLS, "", 1.0),
                RollupRow(int(now - 100 * DAY) // 60 * 60, Dimension.CALLS, "", 1.0),
            ]
        )
        assert await prune_once(store, Records(), now) == 2  # 90 days of events, 400 of rollups
        assert len(await store.events(0)) == 1 and len(await store.rollups(0)) == 1
        stopped = asyncio.Event()
        stopped.set()
        await prune_loop(store, lambda: Records(rollups=None), lambda: now, stopped)
        assert len(await store.rollups(0)) == 1  # the stop was set: not even one round
        await prune_once(store, Records(rollups=None), now)
        assert len(await store.rollups(0)) == 1  # `rollups: off` deletes none
        stop = asyncio.Event()
        shorter = Records(events=DAY, rollups=DAY)
        pruned = asyncio.Event()
        prune = store.prune

        async def watched(events_before: float, rollups_before: float | None = None) -> int:
            deleted = await prune(events_before, rollups_before)
            pruned.set()
            return deleted

        monkeypatch.setattr(store, "prune", watched)
        task = asyncio.create_task(prune_loop(store, lambda: shorter, lambda: now, stop, 3600))
        await asyncio.wait_for(pruned.wait(), 5)  # the round at start
        stop.set()
        await asyncio.wait_for(task, 2)  # the hour's wait ends at the stop
        assert await store.events(0) == [] and await store.rollups(0) == []


@pytest.mark.asyncio
async def test_stored_numbers_are_pseudonymised_with_a_key_kept_beside_the_store(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    event = SecurityEvent(
        1.0, "fraud_destination", Severity.ERROR, account="0201234567",
        detail="call to +881631234567: satellite",
    )  # fmt: skip
    on = [True]
    async with await Store.open(db) as store:
        sink = PseudonymisingSink(store.write, key_path(str(db)), lambda: on[0])
        await sink([event])
        on[0] = False  # a reload turned it off
        await sink([event])
        first, clear = await store.events(0)
    assert "631234567" not in first.detail and first.detail.startswith("call to +881")
    assert first.account is not None and "0201234567" not in first.account
    assert clear.detail == event.detail
    key = key_path(str(db))
    assert key.name == "s.db.pseudonym-key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # the next run reads the same key: the same number gets the same pseudonym
    async with await Store.open(db) as store:
        sink = PseudonymisingSink(store.write, key, lambda: True)
        await sink([event])
        again = (await store.events(0))[-1]
    assert again.detail == first.detail and again.account == first.account
    assert load_or_create_key(key) == load_or_create_key(key)


@pytest.mark.asyncio
async def test_an_unusable_key_file_never_lets_a_number_through(tmp_path: Path) -> None:
    bad = tmp_path / "s.db.pseudonym-key"
    bad.write_text("not hex\n", encoding="ascii")
    written: list[Effect] = []

    async def write(batch: Sequence[Effect]) -> None:
        written.extend(batch)

    sink = PseudonymisingSink(write, bad, lambda: True)
    await sink([SecurityEvent(1.0, "fraud_limit", Severity.WARNING, account="+31612345678")])
    (stored,) = written
    assert isinstance(stored, SecurityEvent)
    assert stored.account is not None and stored.account.startswith("+31\u2026#")
