"""`FraudGuard`: the toll-fraud checks on INVITEs, and the call state they need.

One guard per engine; it lives across policy reloads (`swap`). See `sipguard.engine.fraud` for the
API contract and where the engine calls each hook.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections import OrderedDict
from dataclasses import dataclass

from sipguard.core.sip import Method, SipParseError, SipRequest, SipResponse
from sipguard.engine.fraud.calls import (
    DEFAULT_MAX_CALL,
    DEFAULT_RING_TIMEOUT,
    MAX_ACCOUNTS,
    MAX_CALLS,
    RECENT,
    AccountCalls,
    Call,
    CallKey,
    CallTable,
)
from sipguard.engine.fraud.numbers import Destination, classify_user, dialled_user, is_emergency
from sipguard.engine.fraud.spikes import Spike, SpikeMeter
from sipguard.policy.model import FraudAction, FraudSpec, QuietHours, Severity
from sipguard.policy.units import format_duration

__all__ = [
    "KIND_DESTINATION",
    "KIND_LIMIT",
    "KIND_QUIET_HOURS",
    "KIND_SPIKE",
    "MAX_REFUSED",
    "FraudFinding",
    "FraudGuard",
    "decisive",
]

KIND_DESTINATION = "fraud_destination"
KIND_LIMIT = "fraud_limit"
KIND_QUIET_HOURS = "fraud_quiet_hours"
KIND_SPIKE = "fraud_spike"
#: Refused INVITEs remembered (for `RECENT` seconds) so their retransmissions get the same answer.
MAX_REFUSED = 10_000
#: Characters of an account name shown in a finding's detail (it may come from a From header).
ACCOUNT_SHOWN = 40

_NONE: tuple[FraudFinding, ...] = ()
_CHALLENGES = frozenset({401, 407})
_INVITE = Method.INVITE
_BYE = Method.BYE
_CANCEL = Method.CANCEL


@dataclass(frozen=True, slots=True)
class FraudFinding:
    """Why a call is suspicious. `action` is the policy's (`reject`: answer 403 and alert;
    `alert`: forward and alert); `rule` the policy key that decided, e.g.
    `fraud.destinations.deny_types`; `detail` short, sanitised counters and evidence."""

    kind: str  # KIND_DESTINATION, KIND_LIMIT, KIND_QUIET_HOURS, KIND_SPIKE
    action: FraudAction
    severity: Severity
    rule: str
    detail: str
    destination: Destination | None

    @property
    def rejects(self) -> bool:
        return self.action is FraudAction.REJECT


def decisive(findings: tuple[FraudFinding, ...]) -> FraudFinding | None:
    """The finding that decides: the first `reject`, else the first one, else None."""
    for f in findings:
        if f.action is FraudAction.REJECT:
            return f
    return findings[0] if findings else None


@dataclass(frozen=True, slots=True)
class _Refused:
    cseq: int
    at: float
    findings: tuple[FraudFinding, ...]


class FraudGuard:
    """Toll-fraud checks: destinations, per-account limits, quiet hours, spikes.

    Pure: `now` (epoch seconds) is the only clock; every table is bounded and swept.
    """

    __slots__ = (
        "_calls",
        "_home",
        "_outside_line",
        "_quiet",
        "_quiet_minute",
        "_refused",
        "_spikes",
        "_zone",
        "spec",
    )

    def __init__(
        self,
        spec: FraudSpec,
        *,
        ring_timeout: float = DEFAULT_RING_TIMEOUT,
        max_call: float = DEFAULT_MAX_CALL,
        max_calls: int = MAX_CALLS,
        max_accounts: int = MAX_ACCOUNTS,
    ) -> None:
        self._calls = CallTable(
            ring_timeout=ring_timeout,
            max_call=max_call,
            max_calls=max_calls,
            max_accounts=max_accounts,
        )
        self._refused: OrderedDict[CallKey, _Refused] = OrderedDict()
        self._spikes: SpikeMeter | None = None
        self.spec = spec
        self._home: str | None = None
        self._outside_line = ""
        self._quiet: QuietHours | None = None
        self._zone: zoneinfo.ZoneInfo | None = None
        self._quiet_minute: tuple[int, str | None] = (-1, None)  # (epoch minute, local HH:MM)
        self.swap(spec)

    def swap(self, spec: FraudSpec) -> None:
        """A reloaded policy: new settings; calls in progress, windows and baselines stay."""
        self.spec = spec
        self._home = spec.home_country
        self._outside_line = spec.outside_line_prefix
        self._quiet = spec.quiet_hours
        self._zone = zoneinfo.ZoneInfo(spec.quiet_hours.timezone) if spec.quiet_hours else None
        self._quiet_minute = (-1, None)
        limits = spec.per_account
        self._calls.configure(limits.calls_per_minute, limits.calls_per_hour)
        if spec.spikes is None:
            self._spikes = None
        elif self._spikes is None:
            self._spikes = SpikeMeter(spec.spikes, max_accounts=self._calls.max_accounts)
        else:
            self._spikes.configure(spec.spikes)

    # ---- INVITEs ------------------------------------------------------------------------------

    def check_invite(
        self, request: SipRequest, account: str, now: float, *, from_pbx: bool = False
    ) -> FraudFinding | None:
        """Check an INVITE and track it; the decisive finding (see `decisive`), or None."""
        return decisive(self.check_invite_all(request, account, now, from_pbx=from_pbx))

    def check_invite_all(
        self, request: SipRequest, account: str, now: float, *, from_pbx: bool = False
    ) -> tuple[FraudFinding, ...]:
        """Check an INVITE and track it; every finding, in check order (destination, per-account
        limits, quiet hours, spikes). Call it once per INVITE the engine would forward, this one
        or `check_invite`, never both.

        Only initial INVITEs (no To tag) are checked; re-INVITEs and retransmissions give no new
        finding, except that a retransmission of a refused INVITE gets the same findings again
        (so the engine answers it the same way). `from_pbx`: the INVITE comes from the PBX (a
        call toward a trunk), so the number is already without the outside-line prefix."""
        if request.method is not _INVITE:
            return _NONE
        try:
            if request.to_addr().tag is not None:
                return _NONE  # a re-INVITE inside a dialog: its destination was checked
            tag = request.from_addr().tag or b""
        except SipParseError:
            return _NONE
        key: CallKey = (request.call_id(), tag)
        cseq = request.cseq()[0]
        calls = self._calls
        live = calls.live(key)
        if live is not None:
            live.cseq = max(live.cseq, cseq)
            return _NONE  # a retransmission, or a new INVITE of a call still ringing
        refused = self._refused.get(key)
        if refused is not None and refused.cseq == cseq:
            return refused.findings
        ended = calls.recent(key)
        if ended is not None and ended.cseq == cseq:
            return _NONE  # a retransmission that crossed the final response
        repeat = ended is not None and ended.counted  # e.g. an INVITE after a 422 or 491

        outside = "" if from_pbx else self._outside_line
        acc = calls.account(account, now)
        user = dialled_user(request)
        if user is not None and is_emergency(user, self._home, outside):
            calls.start(key, acc, cseq, now, counted=False)  # in progress, in no window
            return _NONE
        dest = None if user is None else classify_user(user, self._home, outside)
        findings: list[FraudFinding] = []
        self._destination(dest, findings)
        self._limits(acc, repeat, now, dest, findings)
        self._quiet_hours(dest, now, findings)
        international = dest is not None and dest.international
        spikes = self._spikes
        if spikes is not None and not repeat:
            found = spikes.check(account, international, now)
            findings.extend(self._spike_finding(spike, dest) for spike in found)
        result = tuple(findings)
        if any(f.action is FraudAction.REJECT for f in result):
            self._refuse(key, cseq, now, result)
            return result
        call = calls.start(key, acc, cseq, now, counted=not repeat)
        call.international = international
        if spikes is not None and not repeat:
            call.bucket = spikes.add(account, international, now)
        return result

    # ---- what else the proxy sees -------------------------------------------------------------

    def observe(self, msg: SipRequest | SipResponse, now: float) -> None:
        """Keep the call state: final responses to INVITEs, BYE and CANCEL, in both directions.
        Anything else returns at once."""
        if isinstance(msg, SipResponse):
            status = msg.status
            if status < 200:
                return
            cseq, method = msg.cseq()
            if method != b"INVITE" or not len(self._calls):
                return
            key = self._key(msg, to=False)
            if key is None:
                return
            if status < 300:
                self._calls.answer(key, cseq, now)
                return
            challenged = status in _CHALLENGES
            call = self._calls.end(key, now, cseq=cseq, challenged=challenged)
            if call is not None and challenged:
                self._unspike(call)
            return
        method_id = msg.method
        if method_id is _BYE:
            if not len(self._calls):
                return
            for to in (False, True):  # the caller's tag is From's (caller hangs up) or To's
                key = self._key(msg, to=to)
                if key is not None and self._calls.end(key, now) is not None:
                    return
        elif method_id is _CANCEL and len(self._calls):
            key = self._key(msg, to=False)
            if key is not None:
                call = self._calls.live(key)
                if call is not None and call.answered is None:
                    self._calls.end(key, now)

    def sweep(self, now: float) -> None:
        """End timed-out calls and forget what is old; call it about once a second."""
        self._calls.sweep(now)
        refused = self._refused
        while refused and now - next(iter(refused.values())).at >= RECENT:
            refused.popitem(last=False)
        if self._spikes is not None:
            self._spikes.sweep(now)

    def seed_baseline(self, account: str | None, calls: float, international: float) -> None:
        """Start a spike baseline (attempts per interval) from history, e.g. the store's rollups
        after a restart; `account` None is the overall one. Does nothing when spikes are off."""
        if self._spikes is not None:
            self._spikes.seed(account, calls, international)

    # ---- for metrics, `sipguard` status and tests ---------------------------------------------

    def calls_in_progress(self, account: str) -> int:
        acc = self._calls.peek(account)
        return acc.live if acc is not None else 0

    @property
    def tracked_calls(self) -> int:
        return len(self._calls)

    @property
    def tracked_accounts(self) -> int:
        return self._calls.accounts

    @property
    def calls(self) -> CallTable:
        return self._calls

    @property
    def spikes(self) -> SpikeMeter | None:
        return self._spikes

    # ---- the checks ---------------------------------------------------------------------------

    def _destination(self, dest: Destination | None, out: list[FraudFinding]) -> None:
        if dest is None:
            return
        rules = self.spec.destinations
        if dest.number_type in rules.deny_types:
            out.append(
                FraudFinding(
                    KIND_DESTINATION,
                    rules.action,
                    Severity.ERROR,
                    "fraud.destinations.deny_types",
                    f"call to {dest.e164}: {dest.where()} is a denied number type",
                    dest,
                )
            )
        elif rules.allow is not None and dest.country not in rules.allow:
            what = dest.country or "a non-geographic number"
            out.append(
                FraudFinding(
                    KIND_DESTINATION,
                    rules.action,
                    Severity.ERROR,
                    "fraud.destinations.allow",
                    f"call to {dest.e164}: {what} is not an allowed destination",
                    dest,
                )
            )

    def _limits(
        self,
        acc: AccountCalls,
        repeat: bool,
        now: float,
        dest: Destination | None,
        out: list[FraudFinding],
    ) -> None:
        limits = self.spec.per_account
        if limits.concurrent_calls is not None and acc.live >= limits.concurrent_calls:
            who = _show(acc.name)  # only for a finding: most calls have none
            out.append(
                self._limit(
                    "concurrent_calls",
                    f"account {who}: {acc.live} calls in progress, limit {limits.concurrent_calls}",
                    dest,
                )
            )
            return
        if repeat:
            return  # this call is already in the windows
        per_minute, per_hour = limits.calls_per_minute, limits.calls_per_hour
        if per_minute is not None:
            n = self._calls.in_window(acc, now, hour=False)
            if n >= per_minute:
                text = (
                    f"account {_show(acc.name)}: {n} calls in the last minute, limit {per_minute}"
                )
                out.append(self._limit("calls_per_minute", text, dest))
                return
        if per_hour is not None:
            n = self._calls.in_window(acc, now, hour=True)
            if n >= per_hour:
                text = f"account {_show(acc.name)}: {n} calls in the last hour, limit {per_hour}"
                out.append(self._limit("calls_per_hour", text, dest))

    def _limit(self, key: str, detail: str, dest: Destination | None) -> FraudFinding:
        action = self.spec.per_account.action
        return FraudFinding(
            KIND_LIMIT, action, Severity.WARNING, f"fraud.per_account.{key}", detail, dest
        )

    def _quiet_hours(self, dest: Destination | None, now: float, out: list[FraudFinding]) -> None:
        quiet = self._quiet
        if quiet is None or dest is None or not dest.international:
            return
        clock = self._quiet_clock(quiet, now)
        if clock is None:
            return
        span = f"{quiet.start:%H:%M}-{quiet.end:%H:%M}"
        out.append(
            FraudFinding(
                KIND_QUIET_HOURS,
                quiet.international,
                Severity.WARNING,
                "fraud.quiet_hours",
                f"international call to {dest.e164} ({dest.where()}) at {clock} "
                f"{quiet.timezone}, in quiet hours {span}",
                dest,
            )
        )

    def _quiet_clock(self, quiet: QuietHours, now: float) -> str | None:
        """The local `HH:MM` when `now` is in quiet hours, else None; computed once per minute
        (time zone offsets are whole minutes, and so are `from` and `to`)."""
        minute = int(now // 60)
        cached_minute, clock = self._quiet_minute
        if minute == cached_minute:
            return clock
        assert self._zone is not None
        t = datetime.datetime.fromtimestamp(now, self._zone).time()
        start, end = quiet.start, quiet.end
        inside = (start <= t < end) if start < end else (t >= start or t < end)
        clock = f"{t:%H:%M}" if inside else None
        self._quiet_minute = (minute, clock)
        return clock

    def _spike_finding(self, spike: Spike, dest: Destination | None) -> FraudFinding:
        spec = self.spec.spikes
        assert spec is not None
        scope = "all accounts" if spike.account is None else f"account {_show(spike.account)}"
        what = "international call attempts" if spike.international else "call attempts"
        return FraudFinding(
            KIND_SPIKE,
            spec.action,
            Severity.ERROR,
            "fraud.spikes",
            f"{scope}: {spike.count} {what} in this {format_duration(spec.interval)} "
            f"(baseline {spike.baseline:.1f}, threshold {spike.threshold:.1f})",
            dest,
        )

    # ---- helpers ------------------------------------------------------------------------------

    def _refuse(
        self, key: CallKey, cseq: int, now: float, findings: tuple[FraudFinding, ...]
    ) -> None:
        refused = self._refused
        refused.pop(key, None)
        if len(refused) >= MAX_REFUSED:
            refused.popitem(last=False)
        refused[key] = _Refused(cseq, now, findings)

    def _unspike(self, call: Call) -> None:
        if self._spikes is not None and call.bucket >= 0:
            self._spikes.remove(call.account.name, call.international, call.bucket)
            call.bucket = -1

    @staticmethod
    def _key(msg: SipRequest | SipResponse, *, to: bool) -> CallKey | None:
        try:
            addr = msg.to_addr() if to else msg.from_addr()
        except SipParseError:
            return None
        return (msg.call_id(), addr.tag or b"")


def _show(account: str) -> str:
    """An account name for a detail: quoted, escaped, cut (it may be attacker-supplied)."""
    text = account[:ACCOUNT_SHOWN]
    shown = repr(text) if text.isprintable() else ascii(text)
    return shown + ("..." if len(account) > ACCOUNT_SHOWN else "")
