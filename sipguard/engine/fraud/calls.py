"""Calls per account, tracked from what the proxy sees (a stateless proxy has no dialog state of its
own, so this is the only place that knows how many calls an account has up).

A call is keyed by the INVITE's Call-ID and From tag (the caller's tag: it is the To tag of a BYE
the callee sends). Its life:

    initial INVITE from the account   -> ringing  (counted: in progress, and in the windows)
    2xx to that INVITE                -> answered
    BYE (either side), CANCEL (while ringing), a final response >= 300 to that INVITE,
    `ring_timeout` without an answer, `max_call` after the answer  -> ended

"In progress" (the number `concurrent_calls` limits) is ringing + answered: a fraudster's 50
parallel INVITEs are all in progress before any of them is answered.

An ended call is remembered for `RECENT` seconds, so a retransmitted INVITE that crosses the final
response is not a new call, and the INVITE that answers a 401/407 challenge (same Call-ID and From
tag, higher CSeq) is recognised as the same call.

Windows: the start times of the account's calls in the last minute and hour (bounded deques, as
long as the limits they serve). A call the PBX challenged (401/407) is taken out of them again:
every call with digest authentication starts with an INVITE the PBX challenges, and it must not
count twice.

Memory is bounded: at most `max_calls` calls in progress (the oldest ringing call goes first,
then the oldest answered one: FIFO with `OrderedDict.popitem(last=False)`), `max_accounts`
accounts (least recently used first), `max_calls` recently ended ones. `sweep(now)` ends timed-out
calls and forgets idle accounts; it costs only what it removes.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from sipguard.engine.traffic import CallClock

__all__ = [
    "DEFAULT_MAX_CALL",
    "DEFAULT_RING_TIMEOUT",
    "MAX_ACCOUNTS",
    "MAX_CALLS",
    "RECENT",
    "AccountCalls",
    "Call",
    "CallKey",
    "CallTable",
    "Ended",
]

CallKey = tuple[bytes, bytes]
"""(Call-ID, the caller's From tag; b"" when the INVITE had none)."""

#: A call not answered within this is over (phones ring for a minute or two; RFC 3261 timer C is
#: more than 3 minutes).
DEFAULT_RING_TIMEOUT = 300.0
#: An answered call whose BYE was never seen (UDP loss, a crash) stops counting after this.
DEFAULT_MAX_CALL = 6 * 3600.0
RING_TIMEOUT_RANGE = (1.0, 3600.0)
MAX_CALL_RANGE = (60.0, 48 * 3600.0)
#: Calls in progress tracked, all accounts together.
MAX_CALLS = 100_000
MAX_ACCOUNTS = 50_000
#: How long an ended call is remembered (64 x T1: every retransmission of its INVITE is over).
RECENT = 32.0
#: An account with no call in progress and none for this long is forgotten (the hour window).
IDLE = 3600.0


@dataclass(slots=True)
class AccountCalls:
    """One account's calls in progress and its recent call start times."""

    name: str
    live: int = 0
    last: float = 0.0
    minute: deque[float] = field(default_factory=deque)
    hour: deque[float] = field(default_factory=deque)


@dataclass(slots=True)
class Call:
    account: AccountCalls
    cseq: int  # of the initial INVITE (responses with another CSeq are re-INVITEs')
    started: float
    answered: float | None = None
    counted: bool = True  # in the windows (and the spike meter's bucket `bucket`)
    international: bool = False
    bucket: int = -1  # spike bucket it was counted in, -1 when not counted there


@dataclass(frozen=True, slots=True)
class Ended:
    cseq: int
    at: float
    counted: bool  # still counted in the windows: a new INVITE of the same call is no new call


class CallTable:
    """Calls in progress per account. Pure: every method that needs the time takes `now`."""

    __slots__ = (
        "_accounts",
        "_answered",
        "_recent",
        "_ringing",
        "answered_total",
        "call_clock",
        "evicted",
        "hour_cap",
        "max_accounts",
        "max_call",
        "max_calls",
        "minute_cap",
        "ring_timeout",
        "timed_out",
    )

    def __init__(
        self,
        *,
        ring_timeout: float = DEFAULT_RING_TIMEOUT,
        max_call: float = DEFAULT_MAX_CALL,
        max_calls: int = MAX_CALLS,
        max_accounts: int = MAX_ACCOUNTS,
    ) -> None:
        lo, hi = RING_TIMEOUT_RANGE
        if not lo <= ring_timeout <= hi:
            raise ValueError(f"ring_timeout must be {lo:g}..{hi:g} s: {ring_timeout}")
        lo, hi = MAX_CALL_RANGE
        if not lo <= max_call <= hi:
            raise ValueError(f"max_call must be {lo:g}..{hi:g} s: {max_call}")
        if max_calls < 1 or max_accounts < 1:
            raise ValueError("max_calls and max_accounts must be at least 1")
        self.ring_timeout = ring_timeout
        self.max_call = max_call
        self.max_calls = max_calls
        self.max_accounts = max_accounts
        self.minute_cap = 0  # 0: the minute window is not kept (no calls_per_minute limit)
        self.hour_cap = 0
        self.evicted = 0  # calls dropped because the table was full
        self.timed_out = 0  # calls ended by ring_timeout or max_call
        # the record of normal behaviour (engine/traffic.py): running totals, never reset
        self.answered_total = 0  # calls answered
        self.call_clock = CallClock()  # seconds of answered calls in progress
        self._ringing: OrderedDict[CallKey, Call] = OrderedDict()  # oldest start first
        self._answered: OrderedDict[CallKey, Call] = OrderedDict()  # oldest answer first
        self._recent: OrderedDict[CallKey, Ended] = OrderedDict()  # oldest end first
        self._accounts: OrderedDict[str, AccountCalls] = OrderedDict()  # least recent first

    def __len__(self) -> int:
        """Calls in progress."""
        return len(self._ringing) + len(self._answered)

    def configure(self, per_minute: int | None, per_hour: int | None) -> None:
        """The window limits of the policy: the deques keep that many start times."""
        self.minute_cap = per_minute or 0
        self.hour_cap = per_hour or 0

    # ---- lookups ------------------------------------------------------------------------------

    def live(self, key: CallKey) -> Call | None:
        return self._ringing.get(key) or self._answered.get(key)

    def recent(self, key: CallKey) -> Ended | None:
        return self._recent.get(key)

    def peek(self, name: str) -> AccountCalls | None:
        return self._accounts.get(name)

    def account(self, name: str, now: float) -> AccountCalls:
        """The account's record, created if new (the least recently used goes past the cap)."""
        acc = self._accounts.get(name)
        if acc is None:
            if len(self._accounts) >= self.max_accounts:
                self._accounts.popitem(last=False)
            acc = self._accounts[name] = AccountCalls(name)
        else:
            self._accounts.move_to_end(name)
        acc.last = now
        return acc

    @property
    def accounts(self) -> int:
        return len(self._accounts)

    def in_window(self, acc: AccountCalls, now: float, *, hour: bool) -> int:
        """Calls the account started within the last minute (or hour)."""
        window = acc.hour if hour else acc.minute
        horizon = now - (3600.0 if hour else 60.0)
        while window and window[0] <= horizon:
            window.popleft()
        return len(window)

    # ---- transitions --------------------------------------------------------------------------

    def start(
        self, key: CallKey, acc: AccountCalls, cseq: int, now: float, *, counted: bool = True
    ) -> Call:
        """A new call, ringing. `counted`: put it in the windows (False for a call that was
        already counted under an earlier INVITE)."""
        self._recent.pop(key, None)
        while len(self) >= self.max_calls:
            oldest = self._ringing if self._ringing else self._answered
            _, victim = oldest.popitem(last=False)
            if oldest is self._answered:
                self.call_clock.change(now, -1)
            victim.account.live -= 1
            self.evicted += 1
        call = Call(acc, cseq, now, counted=counted)
        self._ringing[key] = call
        acc.live += 1
        acc.last = now
        if counted:
            _push(acc, "minute", self.minute_cap, now)
            _push(acc, "hour", self.hour_cap, now)
        return call

    def answer(self, key: CallKey, cseq: int, now: float) -> Call | None:
        """A 2xx to the INVITE with this CSeq: the ringing call is answered."""
        call = self._ringing.get(key)
        if call is None or call.cseq != cseq:
            return None
        del self._ringing[key]
        call.answered = now
        self._answered[key] = call
        self.answered_total += 1
        self.call_clock.change(now, 1)
        return call

    def end(
        self, key: CallKey, now: float, *, cseq: int | None = None, challenged: bool = False
    ) -> Call | None:
        """The call is over. With `cseq`, only when it is the initial INVITE's (a failed
        re-INVITE ends nothing). `challenged`: a 401/407 to the INVITE, so it was no call yet and
        leaves the windows."""
        call = self._ringing.get(key)
        table = self._ringing
        if call is None:
            call = self._answered.get(key)
            table = self._answered
            if call is None or challenged:
                return None
        if cseq is not None and call.cseq != cseq:
            return None
        del table[key]
        if table is self._answered:
            self.call_clock.change(now, -1)
        acc = call.account
        acc.live -= 1
        acc.last = now
        if challenged and call.counted:
            _pull(acc.minute, call.started)
            _pull(acc.hour, call.started)
            call.counted = False
        self._remember(key, Ended(call.cseq, now, call.counted))
        return call

    def sweep(self, now: float) -> list[Call]:
        """End timed-out calls, forget old ended ones and idle accounts. Returns the calls it
        ended."""
        ended: list[Call] = []
        while self._ringing:
            key, call = next(iter(self._ringing.items()))
            if now - call.started < self.ring_timeout:
                break
            ended.append(call)
            self.end(key, now)
        while self._answered:
            key, call = next(iter(self._answered.items()))
            if call.answered is not None and now - call.answered < self.max_call:
                break
            ended.append(call)
            self.end(key, now)
        self.timed_out += len(ended)
        while self._recent:
            ended_at = next(iter(self._recent.values())).at
            if now - ended_at < RECENT:
                break
            self._recent.popitem(last=False)
        for _ in range(len(self._accounts)):
            name, acc = next(iter(self._accounts.items()))
            if now - acc.last < IDLE:
                break
            if acc.live > 0:
                self._accounts.move_to_end(name)  # a long call: look again later
                acc.last = now
            else:
                del self._accounts[name]
        return ended

    def _remember(self, key: CallKey, ended: Ended) -> None:
        self._recent.pop(key, None)
        if len(self._recent) >= self.max_calls:
            self._recent.popitem(last=False)
        self._recent[key] = ended


def _push(acc: AccountCalls, which: str, cap: int, now: float) -> None:
    if cap <= 0:
        return
    window: deque[float] = getattr(acc, which)
    if window.maxlen != cap:
        window = deque(window, maxlen=cap)
        setattr(acc, which, window)
    window.append(now)


def _pull(window: deque[float], started: float) -> None:
    with contextlib.suppress(ValueError):  # already pushed out of a full window, or past it
        window.remove(started)
