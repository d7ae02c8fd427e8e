"""Lazy token buckets in bounded maps: no timers, no tasks, no growth past a cap (STYLE C7, D6,
D7)."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from sipguard.policy.model import LimitSpec

# Per limit class: this many sources are tracked; a spoofed flood evicts the oldest (FIFO), which
# can only
# forgive an attacker early, never grow memory. 1,000,000 sources cost about 250 MB
# (bench/firewall.py).
MAX_TRACKED_SOURCES = 1_000_000


@dataclass(slots=True)
class Bucket:
    tokens: float
    stamp: float

    def take(self, per_second: float, burst: float, now: float) -> bool:
        elapsed = now - self.stamp
        if elapsed > 0.0:  # a clock step backwards earns nothing
            self.tokens = min(burst, self.tokens + elapsed * per_second)
            self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class BucketMap:
    """One token bucket per key for one limit class; the rate lives here once, not in each
    bucket."""

    __slots__ = ("_buckets", "_max", "_offences", "burst", "per_second", "spec")

    def __init__(self, spec: LimitSpec, max_keys: int = MAX_TRACKED_SOURCES) -> None:
        self.spec = spec
        self.per_second = spec.rate.per_second
        self.burst = float(spec.burst)
        self._max = max_keys
        # OrderedDict: FIFO eviction in O(1); `del d[next(iter(d))]` on a dict rescans deleted slots
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._offences: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = Bucket(self.burst, now)
        return bucket.take(self.per_second, self.burst, now)

    def retry_after(self) -> int:
        """Whole seconds until one token is back (for 503 Retry-After), at least 1."""
        return max(1, round(1.0 / self.per_second)) if self.per_second > 0 else 3600

    def offence(self, key: str, now: float) -> int:
        """Record one refusal of `key`; how many it had within the `within` window (for
        ban_after)."""
        limit = self.spec.ban_after
        if limit is None:
            return 0
        stamps = self._offences.get(key)
        if stamps is None:
            if len(self._offences) >= self._max:
                self._offences.popitem(last=False)
            stamps = self._offences[key] = deque(maxlen=limit)
        stamps.append(now)
        window_start = now - self.spec.within
        while stamps and stamps[0] < window_start:
            stamps.popleft()
        return len(stamps)

    def forget(self, key: str) -> None:
        """A banned source starts afresh when its ban ends."""
        self._buckets.pop(key, None)
        self._offences.pop(key, None)

    def sweep(self, now: float) -> int:
        """Drop buckets that have been idle long enough to be full again; returns how many."""
        refill = self.burst / self.per_second if self.per_second > 0 else 0.0
        idle = [k for k, b in self._buckets.items() if now - b.stamp >= refill]
        for key in idle:
            del self._buckets[key]
        stale = [k for k, s in self._offences.items() if not s or now - s[-1] > self.spec.within]
        for key in stale:
            del self._offences[key]
        return len(idle)

    def carry_over(self, old: BucketMap) -> None:
        """Keep the state of an unchanged limit across a policy reload."""
        if old.spec == self.spec:
            self._buckets = old._buckets
            self._offences = old._offences
