"""The call table: transitions, windows, timeouts, and bounded memory."""

from __future__ import annotations

import pytest

from sipguard.engine.fraud.calls import RECENT, CallTable


def key(i: int) -> tuple[bytes, bytes]:
    return (b"call-%d" % i, b"tag-%d" % i)


def test_ringing_answered_ended() -> None:
    table = CallTable()
    acc = table.account("1001", 0.0)
    table.start(key(1), acc, 1, 0.0)
    assert acc.live == 1
    assert table.answer(key(1), 1, 2.0) is not None
    assert acc.live == 1
    call = table.end(key(1), 60.0)
    assert call is not None
    assert call.answered == 2.0
    assert acc.live == 0
    ended = table.recent(key(1))
    assert ended is not None
    assert ended.counted
    assert table.end(key(1), 61.0) is None  # a retransmitted BYE ends nothing


def test_a_failed_reinvite_does_not_end_the_call() -> None:
    table = CallTable()
    acc = table.account("1001", 0.0)
    table.start(key(1), acc, 1, 0.0)
    table.answer(key(1), 1, 1.0)
    assert table.end(key(1), 5.0, cseq=2) is None  # 491 to a re-INVITE
    assert acc.live == 1
    assert table.answer(key(1), 2, 6.0) is None  # 200 to a re-INVITE changes nothing
    assert table.end(key(1), 9.0, cseq=1) is not None


def test_a_challenge_takes_the_call_out_of_the_windows() -> None:
    table = CallTable()
    table.configure(per_minute=10, per_hour=100)
    acc = table.account("1001", 0.0)
    table.start(key(1), acc, 1, 0.0)
    assert table.in_window(acc, 0.5, hour=False) == 1
    table.end(key(1), 0.1, cseq=1, challenged=True)
    assert table.in_window(acc, 0.5, hour=False) == 0
    assert table.in_window(acc, 0.5, hour=True) == 0
    ended = table.recent(key(1))
    assert ended is not None
    assert not ended.counted


def test_windows_slide_and_are_bounded_by_their_limit() -> None:
    table = CallTable()
    table.configure(per_minute=3, per_hour=5)
    acc = table.account("1001", 0.0)
    for i in range(8):
        table.start(key(i), acc, 1, float(i))
        table.end(key(i), float(i) + 0.5)
    assert len(acc.minute) == 3  # only as many as the limit needs
    assert len(acc.hour) == 5
    assert table.in_window(acc, 8.0, hour=False) == 3
    assert table.in_window(acc, 67.5, hour=False) == 0  # all older than a minute
    assert table.in_window(acc, 67.5, hour=True) == 5


def test_windows_are_not_kept_without_limits() -> None:
    table = CallTable()
    acc = table.account("1001", 0.0)
    table.start(key(1), acc, 1, 0.0)
    assert len(acc.minute) == len(acc.hour) == 0


def test_timeouts_end_calls_in_sweep() -> None:
    table = CallTable(ring_timeout=60.0, max_call=3600.0)
    acc = table.account("1001", 0.0)
    table.start(key(1), acc, 1, 0.0)  # never answered
    table.start(key(2), acc, 1, 0.0)
    table.answer(key(2), 1, 10.0)  # answered, BYE lost
    assert table.sweep(59.0) == []
    ended = table.sweep(60.0)
    assert len(ended) == 1
    assert ended[0].answered is None
    assert acc.live == 1
    assert table.sweep(3609.0) == []
    assert len(table.sweep(3610.0)) == 1
    assert acc.live == 0
    assert table.timed_out == 2


def test_recently_ended_calls_are_forgotten() -> None:
    table = CallTable()
    acc = table.account("1001", 0.0)
    table.start(key(1), acc, 1, 0.0)
    table.end(key(1), 1.0)
    table.sweep(1.0 + RECENT - 0.1)
    assert table.recent(key(1)) is not None
    table.sweep(1.0 + RECENT)
    assert table.recent(key(1)) is None


def test_a_flood_of_call_ids_cannot_grow_the_table() -> None:
    table = CallTable(max_calls=100)
    acc = table.account("1001", 0.0)
    other = table.account("2002", 0.0)
    table.start(key(-1), other, 1, 0.0)
    table.answer(key(-1), 1, 0.5)  # a real, answered call
    for i in range(10_000):
        table.start(key(i), acc, 1, 1.0 + i / 1000)
    assert len(table) == 100
    assert table.evicted == 10_000 + 1 - 100
    # The oldest ringing calls went first; the answered call survived the flood.
    assert table.live(key(-1)) is not None
    assert acc.live == 99
    assert other.live == 1


def test_accounts_are_bounded_and_idle_ones_forgotten() -> None:
    table = CallTable(max_accounts=10)
    for i in range(50):
        table.account(f"acc{i}", float(i))
    assert table.accounts == 10
    assert table.peek("acc49") is not None
    assert table.peek("acc0") is None
    busy = table.account("busy", 100.0)
    table.start(key(1), busy, 1, 100.0)
    table.answer(key(1), 1, 101.0)
    table.sweep(100.0 + 3600.0)
    assert table.accounts == 1  # the idle ones went; the one with a call stays
    assert table.peek("busy") is busy


@pytest.mark.parametrize(
    "kwargs",
    [{"ring_timeout": 0.5}, {"ring_timeout": 7200.0}, {"max_call": 10.0},
     {"max_call": 49 * 3600.0}, {"max_calls": 0}, {"max_accounts": 0}],
)  # fmt: skip
def test_timeouts_and_caps_are_bounded(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CallTable(**kwargs)  # type: ignore[arg-type]
