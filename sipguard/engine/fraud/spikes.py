"""Spikes: call attempts per interval against a learned baseline, per account and overall.

Time is cut into buckets of `interval` seconds (bucket n covers [n * interval, (n + 1) * interval)
in epoch seconds). Each scope (one per account, and one for all accounts together) counts the
attempts of the current bucket, all of them and the international ones. When a bucket is complete
its count teaches the baseline, an exponentially weighted moving average:

    baseline = alpha * count + (1 - alpha) * baseline

Buckets without any attempt are zeros (learned lazily, all at once, when the next attempt comes).
The current bucket never teaches the baseline it is compared with. An attempt that makes the
current count reach

    threshold = max(min_calls, factor * baseline)

is a spike. A bucket teaches at most its threshold, so a fraud burst does not become the new normal
in one interval (except while the overall scope warms up, see below).

Two phases per attempt, so that a refused call is not counted: `check()` says which scopes the
attempt would push over their threshold (and, for `alert`, reports each scope and metric once per
bucket), `add()` counts it, `remove()` takes back an attempt that turned out not to be a call (the
PBX challenged it with 401/407).

Warm-up: the overall scope reports nothing until it has completed `WARMUP_BUCKETS` buckets (or was
seeded with `seed()`), because a busy PBX's normal traffic is far above `min_calls` and every
restart would otherwise be a "spike". Accounts have no warm-up: a dormant or new account that
suddenly makes `min_calls` calls in one interval is exactly what toll fraud looks like.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sipguard.policy.model import FraudAction, Spikes

__all__ = ["MAX_ACCOUNTS", "WARMUP_BUCKETS", "Baseline", "Spike", "SpikeMeter"]

#: Accounts with a baseline; the least recently used goes first past this.
MAX_ACCOUNTS = 50_000
#: Completed buckets the overall scope learns before it can report.
WARMUP_BUCKETS = 3
#: A baseline below this, with no attempt for a while, is forgotten by `sweep`.
FORGET_BELOW = 0.05

_ALL = 1  # bit in Baseline.reported: the all-attempts metric reported in this bucket
_INTL = 2  # ... the international metric


@dataclass(slots=True)
class Baseline:
    """One scope: the current bucket's counts and the learned averages."""

    bucket: int = -1  # index of the current bucket; -1 before the first attempt
    count: int = 0
    intl: int = 0
    avg: float = 0.0
    intl_avg: float = 0.0
    learned: int = 0  # completed buckets learned (zeros included)
    reported: int = 0  # _ALL | _INTL: already reported in this bucket (action alert)


@dataclass(frozen=True, slots=True)
class Spike:
    """One scope and metric over its threshold. `account` None is the overall scope."""

    account: str | None
    international: bool
    count: int  # attempts in the current bucket, this one included
    baseline: float
    threshold: float


class SpikeMeter:
    """Baselines per account and overall. Bounded (LRU), swept, `now` is the only clock."""

    __slots__ = ("_accounts", "_last_sweep", "_overall", "max_accounts", "spec")

    def __init__(self, spec: Spikes, *, max_accounts: int = MAX_ACCOUNTS) -> None:
        self.spec = spec
        self.max_accounts = max_accounts
        self._accounts: OrderedDict[str, Baseline] = OrderedDict()
        self._overall = Baseline()
        self._last_sweep = -1

    def __len__(self) -> int:
        return len(self._accounts)

    def configure(self, spec: Spikes) -> None:
        """A reloaded policy. A new interval rescales the baselines (a baseline of 10 per 5m is 20
        per 10m) and starts a fresh bucket."""
        old = self.spec.interval
        self.spec = spec
        if spec.interval == old:
            return
        scale = spec.interval / old
        for b in (self._overall, *self._accounts.values()):
            b.avg *= scale
            b.intl_avg *= scale
            b.bucket = -1
            b.count = b.intl = b.reported = 0

    def seed(self, account: str | None, calls: float, international: float) -> None:
        """Start a scope from a baseline learned elsewhere (the store's rollups), per interval."""
        b = self._overall if account is None else self._scope(account)
        b.avg = max(0.0, calls)
        b.intl_avg = max(0.0, international)
        b.learned = max(b.learned, WARMUP_BUCKETS)

    def baseline(self, account: str | None) -> Baseline | None:
        """The scope's state (for tests, metrics and `sipguard events` details)."""
        return self._overall if account is None else self._accounts.get(account)

    # ---- per attempt --------------------------------------------------------------------------

    def check(self, account: str, international: bool, now: float) -> list[Spike]:
        """The spikes one more attempt would make. With action `alert`, a scope and metric is
        reported once per bucket; with `reject`, every attempt over the threshold is."""
        bucket = int(now // self.spec.interval)
        found: list[Spike] = []
        for name, b in ((account, self._scope(account)), (None, self._overall)):
            self._roll(b, bucket, overall=name is None)
            if name is None and b.learned < WARMUP_BUCKETS:
                continue
            self._over(found, name, b, False)
            if international:
                self._over(found, name, b, True)
        return found

    def add(self, account: str, international: bool, now: float) -> int:
        """Count an attempt; returns its bucket (for `remove`)."""
        bucket = int(now // self.spec.interval)
        for b, overall in ((self._scope(account), False), (self._overall, True)):
            self._roll(b, bucket, overall=overall)
            b.count += 1
            if international:
                b.intl += 1
        return bucket

    def remove(self, account: str, international: bool, bucket: int) -> None:
        """Take back an attempt counted in `bucket` (only while that bucket is current)."""
        found = self._accounts.get(account)
        for b in (found, self._overall):
            if b is None or b.bucket != bucket:
                continue
            b.count = max(0, b.count - 1)
            if international:
                b.intl = max(0, b.intl - 1)

    def sweep(self, now: float) -> None:
        """Forget accounts whose baseline decayed to nothing; at most once per bucket."""
        bucket = int(now // self.spec.interval)
        if bucket == self._last_sweep:
            return
        self._last_sweep = bucket
        keep = 1.0 - self.spec.alpha
        stale = []
        for name, b in self._accounts.items():
            gap = bucket - b.bucket
            if gap <= 1:
                continue
            decay = keep ** min(gap - 1, 1000)
            if max(b.avg, b.intl_avg) * decay < FORGET_BELOW:
                stale.append(name)
        for name in stale:
            del self._accounts[name]

    # ---- helpers ------------------------------------------------------------------------------

    def threshold(self, avg: float) -> float:
        return max(float(self.spec.min_calls), self.spec.factor * avg)

    def _over(self, found: list[Spike], name: str | None, b: Baseline, intl: bool) -> None:
        avg = b.intl_avg if intl else b.avg
        count = (b.intl if intl else b.count) + 1
        limit = self.threshold(avg)
        if count < limit:
            return
        if self.spec.action is FraudAction.ALERT:
            bit = _INTL if intl else _ALL
            if b.reported & bit:
                return
            b.reported |= bit
        found.append(Spike(name, intl, count, avg, limit))

    def _scope(self, account: str) -> Baseline:
        b = self._accounts.get(account)
        if b is None:
            if len(self._accounts) >= self.max_accounts:
                self._accounts.popitem(last=False)
            b = self._accounts[account] = Baseline()
        else:
            self._accounts.move_to_end(account)
        return b

    def _roll(self, b: Baseline, bucket: int, *, overall: bool) -> None:
        """Make `bucket` the current one, learning the completed ones (gaps are zeros). A bucket
        teaches at most its threshold, except while the overall scope warms up (it reports
        nothing then, so nothing it sees is a spike)."""
        if bucket <= b.bucket:
            return  # the same bucket (or the clock stepped back: stay in the newer one)
        if b.bucket >= 0:
            alpha = self.spec.alpha
            capped = not overall or b.learned >= WARMUP_BUCKETS
            count = min(b.count, self.threshold(b.avg)) if capped else b.count
            intl = min(b.intl, self.threshold(b.intl_avg)) if capped else b.intl
            b.avg += alpha * (count - b.avg)
            b.intl_avg += alpha * (intl - b.intl_avg)
            gaps = min(bucket - b.bucket - 1, 1000)
            if gaps:
                keep = (1.0 - alpha) ** gaps
                b.avg *= keep
                b.intl_avg *= keep
            b.learned += 1 + gaps
        b.bucket = bucket
        b.count = b.intl = b.reported = 0
