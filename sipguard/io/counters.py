"""Plain integer counters on the hot path; exporters read them at scrape time (STYLE C17)."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from time import perf_counter_ns
from typing import TypeVar

_A = TypeVar("_A")
_B = TypeVar("_B")
_R = TypeVar("_R")


class Counters:
    """Messages by (side they came from, method or `response`, action, reason), plus socket
    troubles."""

    __slots__ = (
        "decision_times",
        "messages",
        "rules",
        "send_errors",
        "socket_errors",
        "tcp_closed_bad_stream",
        "tcp_refused",
    )

    def __init__(self) -> None:
        self.messages: Counter[tuple[str, str, str, str]] = Counter()
        self.socket_errors = 0
        self.send_errors = 0
        self.tcp_refused = 0
        self.tcp_closed_bad_stream = 0
        # For metrics (services/metrics.py). `rules`: messages whose verdict names a rule (drops
        # and rejects), by (action, reason, Verdict.rule). Verdict.rule only ever comes from the
        # policy (rule names, `limits.<class>`, `fraud.<key>`) or from constants in the engine,
        # never from message bytes, so the keys are bounded by the policy.
        self.rules: Counter[tuple[str, str, str]] = Counter()
        self.decision_times = DecisionTimes()

    def count(self, side: str, kind: str, action: str | None = None) -> int:
        """Total of messages from `side` of `kind` (e.g. "outside", "BYE"), optionally one action
        only."""
        return sum(
            n
            for (s, k, a, _), n in self.messages.items()
            if s == side and k == kind and (action is None or a == action)
        )


# ------------------------------------------------------------------ sampled decision time (metrics)

#: Upper bounds (ns) of the decision-time buckets: a banned source's drop takes about 1 us, a
#: parse 4 us, a full decision some 10-30 us.
DECISION_BOUNDS_NS: tuple[int, ...] = (
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    5_000_000,
)
DECISION_SAMPLE_EVERY = 64


class DecisionTimes:
    """A histogram of `engine.handle` times, sampled: one message in `every` is timed.

    The dispatcher keeps the countdown (one decrement and one truth test per message) and sends
    every `every`th message through `measure`, which times the call with `perf_counter_ns` and
    adds it to plain-int buckets. `buckets[i]` counts samples <= `DECISION_BOUNDS_NS[i]` and above
    the bound before (not cumulative); the last one is +Inf. `count` is the number of samples,
    not of messages."""

    __slots__ = ("buckets", "count", "every", "sum_ns")

    def __init__(self, every: int = DECISION_SAMPLE_EVERY) -> None:
        if every < 1:
            raise ValueError(f"sample every must be at least 1, got {every}")
        self.every = every
        self.buckets = [0] * (len(DECISION_BOUNDS_NS) + 1)
        self.count = 0
        self.sum_ns = 0

    def measure(self, handle: Callable[[_A, _B], _R], data: _A, pkt: _B) -> _R:
        """`handle(data, pkt)`, timed and recorded."""
        started = perf_counter_ns()
        result = handle(data, pkt)
        self.add(perf_counter_ns() - started)
        return result

    def add(self, ns: int) -> None:
        self.buckets[bisect_left(DECISION_BOUNDS_NS, ns)] += 1
        self.count += 1
        self.sum_ns += ns
