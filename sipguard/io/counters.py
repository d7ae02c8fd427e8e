"""Plain integer counters on the hot path; exporters read them at scrape time (STYLE C17)."""

from __future__ import annotations

from collections import Counter


class Counters:
    """Messages by (side they came from, method or `response`, action, reason), plus socket
    troubles."""

    __slots__ = ("messages", "send_errors", "socket_errors", "tcp_closed_bad_stream", "tcp_refused")

    def __init__(self) -> None:
        self.messages: Counter[tuple[str, str, str, str]] = Counter()
        self.socket_errors = 0
        self.send_errors = 0
        self.tcp_refused = 0
        self.tcp_closed_bad_stream = 0

    def count(self, side: str, kind: str, action: str | None = None) -> int:
        """Total of messages from `side` of `kind` (e.g. "outside", "BYE"), optionally one action
        only."""
        return sum(
            n
            for (s, k, a, _), n in self.messages.items()
            if s == side and k == kind and (action is None or a == action)
        )
