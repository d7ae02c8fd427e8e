"""The record of normal behaviour, engine side: what the engine knows about each message that the
dispatcher's counters do not (the source's country, the class of a forwarded answer, a successful
registration), tallied with one integer increment where the engine already holds the fact.

`TrafficTally.take(now, ...)` hands the counts since the last take and starts again; the rollup
service (`sipguard.services.rollups`) calls it once a minute and turns it, with the dispatcher's
message counters, into rollup rows. Pure: no clock reads, `now` is a parameter.

Calls and call time are not counted per message: the call table (`engine.fraud.calls`) keeps
running totals (calls answered, seconds of answered calls integrated each time their number
changes), and `take` reports their growth since the last take, like the engine's auth failures.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CallClock", "TrafficSample", "TrafficTally"]

UNKNOWN_COUNTRY = "??"


@dataclass(frozen=True, slots=True)
class TrafficSample:
    """What happened between two takes. Keys are closed sets: ISO codes (or "??"), 1..6."""

    since: float  # the previous take (or the tally's start)
    until: float  # this take
    countries: dict[str, int]  # requests from outside, parsed, by the source's country
    responses: dict[int, int]  # PBX answers forwarded outward, by class: 1 (1xx) .. 6 (6xx)
    registrations: int  # 2xx answers to REGISTERs forwarded outward
    calls: int  # calls answered (a 2xx to an initial INVITE)
    call_seconds: float  # seconds of answered calls in progress, summed over the calls
    auth_failures: int  # 401/403/407 to requests with credentials from untrusted sources

    @property
    def empty(self) -> bool:
        return not (
            self.countries
            or self.responses
            or self.registrations
            or self.calls
            or self.call_seconds
            or self.auth_failures
        )


class TrafficTally:
    """Per-message tallies the engine bumps on its hot path: a dict or list slot increment each.

    `countries` is keyed by what the geo lookup returned (None for unknown) so the hot path does
    no work beyond the increment; `responses[c]` counts answers of class `c` (index 0 and 7..9
    stay unused: the parser only accepts statuses 100..699)."""

    __slots__ = (
        "_auth_failures",
        "_call_seconds",
        "_calls",
        "countries",
        "registrations",
        "responses",
        "since",
    )

    def __init__(
        self, now: float, *, calls: int = 0, call_seconds: float = 0.0, auth_failures: int = 0
    ) -> None:
        self.since = now
        self.countries: dict[str | None, int] = {}
        self.responses = [0] * 10
        self.registrations = 0
        # the running totals at the last take, so a take reports their growth
        self._calls = calls
        self._call_seconds = call_seconds
        self._auth_failures = auth_failures

    def take(
        self, now: float, *, calls: int, call_seconds: float, auth_failures: int
    ) -> TrafficSample:
        """The counts since the last take, and a fresh start. `calls`, `call_seconds` and
        `auth_failures` are running totals (they only grow); the sample holds their growth."""
        countries: dict[str, int] = {}
        for country, n in self.countries.items():
            code = country or UNKNOWN_COUNTRY
            countries[code] = countries.get(code, 0) + n
        responses = {c: n for c, n in enumerate(self.responses) if n and 1 <= c <= 6}
        sample = TrafficSample(
            since=self.since,
            until=now,
            countries=countries,
            responses=responses,
            registrations=self.registrations,
            calls=max(0, calls - self._calls),
            call_seconds=max(0.0, call_seconds - self._call_seconds),
            auth_failures=max(0, auth_failures - self._auth_failures),
        )
        self.since = now
        self.countries = {}
        self.responses = [0] * 10
        self.registrations = 0
        self._calls = calls
        self._call_seconds = call_seconds
        self._auth_failures = auth_failures
        return sample


class CallClock:
    """Seconds of calls in progress, integrated exactly: each time the number of calls changes,
    the time since the last change times the number before it is added. Costs a few operations
    per call answered or ended, nothing per message. A clock that steps back adds nothing."""

    __slots__ = ("_since", "active", "seconds")

    def __init__(self) -> None:
        self.active = 0
        self.seconds = 0.0
        self._since: float | None = None

    def change(self, now: float, delta: int) -> None:
        """`delta` calls started (+) or ended (-) at `now`."""
        self._advance(now)
        self.active = max(0, self.active + delta)

    def total(self, now: float) -> float:
        """Call-seconds from the first change up to `now`."""
        self._advance(now)
        return self.seconds

    def _advance(self, now: float) -> None:
        since = self._since
        if since is not None and now > since:
            self.seconds += self.active * (now - since)
        self._since = now
