"""Password brute force, learned from the PBX's answers (DESIGN.md section 3).

A request that carried credentials and was answered 401/403/407 is a failure; a credential-less
request answered 401/407 is the normal digest challenge (RFC 3261 22.2) and is never seen here. A
success resets the count of that account from that source.

Shared addresses (an office of 50 phones behind one NAT address) are the top false-positive source.
The rule that keeps them safe: a source that authenticated successfully within `known_memory` is
*known*; on a known source failures are counted per account, and a failing account is blocked from
that source while the other accounts keep working. A known source is banned only when failures span
`distinct_accounts` accounts (password spraying from a compromised site). An unknown source, which
never logged in, is banned after `failures` failures whatever the accounts."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TypeVar

from sipguard.engine.detectors.base import Finding, Verdict

MAX_SOURCES = 200_000  # sources with failure or success history; FIFO past that
MAX_ACCOUNTS = 100_000
MAX_KNOWN_PER_ACCOUNT = 32  # sources an account logged in from, remembered for `per_account: block`
HISTORY = 64  # failures remembered per source or account (enough for any sane threshold)

_K = TypeVar("_K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class BruteForceSpec:
    failures: int = 5
    within: float = 600.0
    ban: float = 3600.0
    known_memory: float = 86400.0
    distinct_accounts: int = 3
    account_failures: int = 20  # per account, across all sources
    account_within: float = 3600.0
    account_block: bool = False  # lock a besieged account to the sources it logged in from


class BruteForce:
    __slots__ = (
        "_account_alerted",
        "_account_fails",
        "_account_sources",
        "_blocks",
        "_fails",
        "_known",
        "_locked",
        "spec",
    )

    def __init__(self, spec: BruteForceSpec) -> None:
        self.spec = spec
        self._fails: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()
        self._known: OrderedDict[str, float] = OrderedDict()  # source -> last success
        self._blocks: OrderedDict[tuple[str, str], float] = (
            OrderedDict()
        )  # (source, account) -> until
        self._account_fails: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()
        self._account_sources: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
        self._account_alerted: OrderedDict[str, float] = OrderedDict()
        self._locked: OrderedDict[str, float] = OrderedDict()  # account -> locked until

    # ---- what the PBX answered ---------------------------------------------------------------

    def failure(self, source: str, account: str, now: float) -> list[Finding]:
        spec = self.spec
        found: list[Finding] = []
        recent = _window(_entry(self._fails, source, MAX_SOURCES), now, spec.within)
        recent.append((now, account))
        if self._is_known(source, now):
            accounts = {a for _, a in recent}
            same = sum(1 for _, a in recent if a == account)
            if len(accounts) >= spec.distinct_accounts and len(recent) >= spec.failures:
                found.append(
                    self._ban(source, recent, "failures across accounts on a known source")
                )
            elif same >= spec.failures:
                self._remember(self._blocks, (source, account), now + spec.ban, MAX_SOURCES)
                found.append(
                    Finding(
                        "brute_force",
                        Verdict.BLOCK_ACCOUNT,
                        "auth.known_sources",
                        spec.ban,
                        f"{same} failures for {account!r} within {spec.within:g}s from a source "
                        "that logged in before: the account is blocked there, the source is not",
                        account,
                    )
                )
                _drop_account(recent, account)
        elif len(recent) >= spec.failures:
            found.append(self._ban(source, recent, "failures from a source that never logged in"))
        distributed = self._account_failure(account, source, now)
        if distributed is not None:
            found.append(distributed)
        return found

    def success(self, source: str, account: str, now: float) -> None:
        self._remember(self._known, source, now, MAX_SOURCES)
        recent = self._fails.get(source)
        if recent is not None:
            _drop_account(recent, account)
        sources = _entry_map(self._account_sources, account, MAX_ACCOUNTS)
        sources[source] = now
        sources.move_to_end(source)
        if len(sources) > MAX_KNOWN_PER_ACCOUNT:
            sources.popitem(last=False)

    # ---- what the proxy asks before forwarding -----------------------------------------------

    def refuses(self, source: str, account: str, now: float) -> bool:
        """Is this account blocked from this source (per-account block, or a locked account)?"""
        until = self._blocks.get((source, account))
        if until is not None:
            if now < until:
                return True
            del self._blocks[(source, account)]
        locked = self._locked.get(account)
        if locked is not None:
            if now >= locked:
                del self._locked[account]
            elif source not in self._account_sources.get(account, ()):
                return True
        return False

    @property
    def has_blocks(self) -> bool:
        """Cheap check for the hot path: only parse the account when something can be refused."""
        return bool(self._blocks or self._locked)

    def sweep(self, now: float) -> None:
        horizon = now - self.spec.within
        for source in [s for s, d in self._fails.items() if not d or d[-1][0] < horizon]:
            del self._fails[source]
        account_horizon = now - self.spec.account_within
        for acc in [
            a for a, d in self._account_fails.items() if not d or d[-1][0] < account_horizon
        ]:
            del self._account_fails[acc]
        for key in [k for k, until in self._blocks.items() if until <= now]:
            del self._blocks[key]
        for acc in [a for a, until in self._locked.items() if until <= now]:
            del self._locked[acc]
        known_horizon = now - self.spec.known_memory
        for source in [s for s, t in self._known.items() if t < known_horizon]:
            del self._known[source]

    # ---- helpers -----------------------------------------------------------------------------

    def _is_known(self, source: str, now: float) -> bool:
        last = self._known.get(source)
        return last is not None and now - last <= self.spec.known_memory

    def _ban(self, source: str, recent: deque[tuple[float, str]], why: str) -> Finding:
        accounts = sorted({a for _, a in recent})
        shown = ", ".join(repr(a) for a in accounts[:5]) + (" ..." if len(accounts) > 5 else "")
        del self._fails[source]
        return Finding(
            "brute_force",
            Verdict.BAN_SOURCE,
            "auth",
            self.spec.ban,
            f"{len(recent)} failed logins within {self.spec.within:g}s ({why}); accounts: {shown}",
        )

    def _account_failure(self, account: str, source: str, now: float) -> Finding | None:
        spec = self.spec
        recent = _window(
            _entry(self._account_fails, account, MAX_ACCOUNTS), now, spec.account_within
        )
        recent.append((now, source))
        if len(recent) < spec.account_failures:
            return None
        alerted = self._account_alerted.get(account)
        if alerted is not None and now - alerted < spec.account_within:
            return None  # one alert per window, not one per failure
        self._remember(self._account_alerted, account, now, MAX_ACCOUNTS)
        sources = len({s for _, s in recent})
        if spec.account_block:
            self._remember(self._locked, account, now + spec.ban, MAX_ACCOUNTS)
        return Finding(
            "distributed_brute_force",
            Verdict.ALERT,
            "auth.per_account",
            spec.ban if spec.account_block else 0.0,
            f"{len(recent)} failed logins for {account!r} from {sources} sources within "
            f"{spec.account_within:g}s"
            + ("; locked to the sources it logged in from" if spec.account_block else ""),
            account,
        )

    @staticmethod
    def _remember(table: OrderedDict[_K, float], key: _K, value: float, cap: int) -> None:
        if key not in table and len(table) >= cap:
            table.popitem(last=False)
        table[key] = value
        table.move_to_end(key)


def _entry(
    table: OrderedDict[str, deque[tuple[float, str]]], key: str, cap: int
) -> deque[tuple[float, str]]:
    found = table.get(key)
    if found is None:
        if len(table) >= cap:
            table.popitem(last=False)
        found = table[key] = deque(maxlen=HISTORY)
    return found


def _entry_map(
    table: OrderedDict[str, OrderedDict[str, float]], key: str, cap: int
) -> OrderedDict[str, float]:
    found = table.get(key)
    if found is None:
        if len(table) >= cap:
            table.popitem(last=False)
        found = table[key] = OrderedDict()
    return found


def _window(stamps: deque[tuple[float, str]], now: float, width: float) -> deque[tuple[float, str]]:
    while stamps and stamps[0][0] < now - width:
        stamps.popleft()
    return stamps


def _drop_account(stamps: deque[tuple[float, str]], account: str) -> None:
    kept = [entry for entry in stamps if entry[1] != account]
    stamps.clear()
    stamps.extend(kept)
