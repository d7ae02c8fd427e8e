"""The effect pump: batches to the store, sheds events under a flood, never loses a ban when the
store fails (simulated here with StoreError; tests/store tests the real store)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sipguard.engine.effects import BanIssued, BanLifted, Effect, SecurityEvent
from sipguard.policy.model import Severity
from sipguard.services.outbox import EffectPump
from sipguard.store import StoreError


def ban(n: int) -> BanIssued:
    return BanIssued(f"203.0.113.{n}", 0.0, 60.0, "rule", "r", "", 1)


def event(n: int) -> SecurityEvent:
    return SecurityEvent(float(n), "rule", Severity.NOTICE, ip="203.0.113.1")


class FlakyStore:
    def __init__(self, failures: int, retryable: bool = True) -> None:
        self.failures = failures
        self.retryable = retryable
        self.written: list[Effect] = []

    async def write(self, batch: Sequence[Effect]) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("database or disk is full", retryable=self.retryable)
        self.written.extend(batch)


@pytest.mark.asyncio
async def test_bans_survive_a_failing_store_and_are_written_once_it_heals() -> None:
    outbox: list[Effect] = [ban(1), event(1), ban(2), BanLifted("203.0.113.1", 5.0, "manual")]
    store = FlakyStore(failures=2)

    def take() -> list[Effect]:
        batch = outbox[:]
        outbox.clear()
        return batch

    pump = EffectPump(take, store.write)
    await pump.flush()
    outbox.append(ban(3))
    await pump.flush()
    assert store.written == [] and pump.failures == 2
    await pump.flush()
    assert [e for e in store.written if isinstance(e, BanIssued)] == [ban(1), ban(2), ban(3)]
    assert sum(isinstance(e, BanLifted) for e in store.written) == 1
    assert pump.shed == 1  # the event of the first failed batch


@pytest.mark.asyncio
async def test_a_flood_sheds_events_but_keeps_every_ban() -> None:
    outbox: list[Effect] = [event(n) for n in range(10_000)]
    outbox += [ban(n) for n in range(50)]
    store = FlakyStore(failures=0)
    pump = EffectPump(
        lambda: [outbox.pop() for _ in range(len(outbox))], store.write, max_batch=100
    )
    await pump.flush()
    assert sum(isinstance(e, BanIssued) for e in store.written) == 50
    assert len(store.written) == 100
    assert pump.shed == 10_000 - 50


@pytest.mark.asyncio
async def test_a_store_that_refuses_the_data_does_not_block_the_pump_forever() -> None:
    store = FlakyStore(failures=1, retryable=False)
    batches: list[list[Effect]] = [[ban(1)], [ban(2)]]
    pump = EffectPump(lambda: batches.pop(0) if batches else [], store.write)
    await pump.flush()
    await pump.flush()
    assert store.written == [ban(2)]
