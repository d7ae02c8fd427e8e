"""The spike meter: EWMA baselines per interval, thresholds, warm-up, reporting once per bucket.
Time is injected: bucket n covers [n * interval, (n + 1) * interval)."""

from __future__ import annotations

import pytest

from sipguard.engine.fraud.spikes import WARMUP_BUCKETS, SpikeMeter
from sipguard.policy import FraudAction, Spikes

SPEC = Spikes(interval=300.0, factor=4.0, min_calls=5, alpha=0.5, action=FraudAction.ALERT)
T0 = 1_700_000_100.0 - (1_700_000_100.0 % 300.0)  # the start of a bucket


def attempt(meter: SpikeMeter, account: str, now: float, *, intl: bool = False) -> list[str]:
    """One attempt: check, then count; the spikes it reported as `scope/metric` strings."""
    found = meter.check(account, intl, now)
    meter.add(account, intl, now)
    return [f"{s.account or '*'}/{'intl' if s.international else 'all'}" for s in found]


def test_a_new_account_spikes_at_min_calls() -> None:
    meter = SpikeMeter(SPEC)
    got = [attempt(meter, "1001", T0 + i) for i in range(6)]
    assert got == [[], [], [], [], ["1001/all"], []]  # the 5th call; once per bucket


def test_the_baseline_learns_only_completed_buckets() -> None:
    meter = SpikeMeter(SPEC)
    for i in range(4):
        attempt(meter, "1001", T0 + i)
    b = meter.baseline("1001")
    assert b is not None
    assert b.avg == 0.0  # the current bucket is not learned yet
    attempt(meter, "1001", T0 + 300.0)  # next bucket: 4 learned with alpha 0.5
    assert b.avg == pytest.approx(2.0)
    attempt(meter, "1001", T0 + 3 * 300.0)  # bucket 1 (1 call) and bucket 2 (0) learned
    assert b.avg == pytest.approx((0.5 * 1 + 0.5 * 2.0) * 0.5)
    assert b.learned == 3


def test_threshold_is_factor_times_baseline_above_min_calls() -> None:
    meter = SpikeMeter(SPEC)
    meter.seed("1001", calls=3.0, international=0.0)
    # threshold max(5, 4 * 3) = 12: the 12th attempt of the bucket is the spike
    got = [attempt(meter, "1001", T0 + i) for i in range(12)]
    assert got[:11] == [[]] * 11
    assert got[11] == ["1001/all"]
    spike = meter.check("1001", False, T0 + 20)
    assert spike == []  # reported once for this bucket (action alert)


def test_international_attempts_have_their_own_baseline() -> None:
    meter = SpikeMeter(SPEC)
    meter.seed("1001", calls=10.0, international=0.5)
    got = [attempt(meter, "1001", T0 + i, intl=True) for i in range(5)]
    assert got[-1] == ["1001/intl"]  # 5 international calls: max(5, 4 * 0.5)
    assert all("1001/all" not in g for g in got)  # 5 of 40 expected calls is no spike


def test_the_overall_scope_warms_up_first() -> None:
    meter = SpikeMeter(SPEC)
    reported = []
    for bucket in range(WARMUP_BUCKETS + 1):
        for i in range(10):  # 10 calls per bucket over 10 accounts: one each
            reported += attempt(meter, f"acc{i}", T0 + bucket * 300.0 + i)
    # Buckets 0..2 teach the overall baseline (10 per bucket -> 5.0, 7.5, 8.75 with alpha 0.5);
    # in bucket 3 the threshold is 4 * 8.75 = 35: nothing to report.
    assert reported == []
    overall = meter.baseline(None)
    assert overall is not None
    assert overall.learned == WARMUP_BUCKETS
    assert overall.avg == pytest.approx(8.75)


def test_the_overall_scope_spikes_after_warm_up() -> None:
    meter = SpikeMeter(SPEC)
    meter.seed(None, calls=2.0, international=0.0)
    got = []
    for i in range(8):
        got += attempt(meter, f"acc{i}", T0 + i)
    assert got == ["*/all"]  # the 8th call: max(5, 4 * 2); no account made more than one


def test_a_spike_bucket_teaches_at_most_its_threshold() -> None:
    meter = SpikeMeter(SPEC)
    for i in range(100):  # a fraud burst of 100 calls in one bucket
        attempt(meter, "1001", T0 + i)
    attempt(meter, "1001", T0 + 300.0)
    b = meter.baseline("1001")
    assert b is not None
    assert b.avg == pytest.approx(0.5 * 5)  # learned min(100, threshold 5), not 100


def test_reject_reports_every_attempt_over_the_threshold_and_remove_takes_one_back() -> None:
    meter = SpikeMeter(
        Spikes(interval=300.0, factor=4.0, min_calls=3, alpha=0.5, action=FraudAction.REJECT)
    )
    assert meter.check("1001", False, T0) == []
    bucket = meter.add("1001", False, T0)
    meter.add("1001", False, T0 + 1)
    assert len(meter.check("1001", False, T0 + 2)) == 1
    assert len(meter.check("1001", False, T0 + 3)) == 1  # refused calls are not added
    meter.remove("1001", False, bucket)  # a challenged INVITE was no call
    assert meter.check("1001", False, T0 + 4) == []


def test_reconfigure_rescales_the_baseline() -> None:
    meter = SpikeMeter(SPEC)
    meter.seed("1001", calls=3.0, international=1.0)
    meter.configure(Spikes(interval=600.0, factor=4.0, min_calls=5, alpha=0.5))
    b = meter.baseline("1001")
    assert b is not None
    assert (b.avg, b.intl_avg) == (6.0, 2.0)


def test_accounts_are_bounded_and_decayed_ones_forgotten() -> None:
    meter = SpikeMeter(SPEC, max_accounts=10)
    for i in range(50):
        attempt(meter, f"acc{i}", T0 + i)
    assert len(meter) == 10
    attempt(meter, "steady", T0 + 300.0)
    meter.sweep(T0 + 300.0 * 40)  # 40 empty buckets: every baseline decayed to nothing
    assert len(meter) == 0


def test_the_clock_stepping_back_stays_in_the_newer_bucket() -> None:
    meter = SpikeMeter(SPEC)
    attempt(meter, "1001", T0 + 600.0)
    attempt(meter, "1001", T0 + 10.0)  # NTP stepped back
    b = meter.baseline("1001")
    assert b is not None
    assert (b.bucket, b.count) == (int((T0 + 600.0) // 300.0), 2)
