"""Unusual logins: a successful registration of an account from a country, or at a local hour, that
the account has never used before (DESIGN.md section 3). The history is kept in the store and comes
back at start, so a restart does not make every phone "new" again; an account alerts only once it
has `learn` successful logins on record."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sipguard.engine.detectors.base import Finding, Verdict
from sipguard.engine.effects import LoginSeen

MAX_ACCOUNTS = 100_000


@dataclass(frozen=True, slots=True)
class LoginSpec:
    new_country: bool = True
    new_hour: bool = True
    timezone: str = "UTC"
    learn: int = 5


@dataclass(slots=True)
class AccountHistory:
    countries: set[str] = field(default_factory=set)
    hours: set[int] = field(default_factory=set)
    logins: int = 0


class Logins:
    __slots__ = ("_history", "_zone", "spec")

    def __init__(self, spec: LoginSpec) -> None:
        self.spec = spec
        self._zone = ZoneInfo(spec.timezone)
        self._history: OrderedDict[str, AccountHistory] = OrderedDict()

    def configure(self, spec: LoginSpec) -> None:
        """A reloaded policy: new settings, the same history."""
        self.spec = spec
        self._zone = ZoneInfo(spec.timezone)

    def load(self, rows: list[LoginSeen]) -> None:
        """The history from the store: one row per (account, country, hour) with its count."""
        for row in rows:
            history = self._account(row.account)
            if row.country:
                history.countries.add(row.country)
            history.hours.add(row.hour)
            history.logins += row.count

    def success(
        self, account: str, country: str | None, now: float
    ) -> tuple[Finding | None, LoginSeen | None]:
        """A successful login; the finding (if unusual) and the history row to store (if new)."""
        hour = datetime.fromtimestamp(now, self._zone).hour
        history = self._account(account)
        new_country = country is not None and country not in history.countries
        new_hour = hour not in history.hours
        finding = None
        if history.logins >= self.spec.learn:
            reasons = []
            if new_country and self.spec.new_country:
                known = ", ".join(sorted(history.countries)) or "none"
                reasons.append(f"from {country}, never seen for it (seen: {known})")
            if new_hour and self.spec.new_hour:
                reasons.append(f"at {hour:02d}h {self.spec.timezone}, an hour it never used")
            if reasons:
                finding = Finding(
                    "unusual_login", Verdict.ALERT, "logins", 0.0, "; ".join(reasons), account
                )
        history.logins += 1
        if country is not None:
            history.countries.add(country)
        history.hours.add(hour)
        learning = history.logins <= self.spec.learn
        record = new_country or new_hour or learning
        seen = LoginSeen(account, country or "", hour, now, 1) if record else None
        return finding, seen

    def _account(self, account: str) -> AccountHistory:
        history = self._history.get(account)
        if history is None:
            if len(self._history) >= MAX_ACCOUNTS:
                self._history.popitem(last=False)
            history = self._history[account] = AccountHistory()
        else:
            self._history.move_to_end(account)
        return history
