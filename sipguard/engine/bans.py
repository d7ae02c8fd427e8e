"""The ban table: checked first for every outside message, before any parsing (STYLE C5, DESIGN 2).

The hot path is one dict lookup (`until`). Everything else about a ban (reason, rule, evidence)
lives
beside it and is only read by `sipguard bans` and the store. Durations escalate for repeat offenders
(fail2ban's bantime.increment / factor / maxtime / rndtime), and randomness is injected.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sipguard.engine.effects import BanIssued, BanLifted
from sipguard.policy.model import BanSpec

# Offence history is kept for this many sources; the oldest are forgotten first. A spoofed flood can
# only push out history, never grow memory.
MAX_OFFENDERS = 200_000
MAX_EXPONENT = 32  # factor ** offences stays finite


def ban_duration(spec: BanSpec, base: float, prior_bans: int, rand: Callable[[], float]) -> float:
    """`base` for a first offence, times `escalation` per earlier ban, capped at `max`, plus
    jitter."""
    growth = spec.escalation ** min(prior_bans, MAX_EXPONENT)
    return min(spec.max, base * growth) + spec.jitter * rand()


@dataclass(frozen=True, slots=True)
class ActiveBan:
    ip: str
    issued_at: float
    until: float
    reason: str
    rule: str
    evidence: str
    offences: int
    actor: str


class BanTable:
    """ip -> until (epoch seconds), with escalation history. The in-memory table is
    authoritative."""

    __slots__ = ("_bans", "_offences", "_rand", "until")

    def __init__(self, rand: Callable[[], float]) -> None:
        self.until: dict[str, float] = {}  # the hot-path view
        self._bans: dict[str, ActiveBan] = {}
        self._offences: OrderedDict[str, int] = OrderedDict()
        self._rand = rand

    def __len__(self) -> int:
        return len(self.until)

    def ban(
        self,
        ip: str,
        now: float,
        spec: BanSpec,
        base: float,
        *,
        reason: str,
        rule: str,
        evidence: str,
        actor: str = "engine",
        escalate: bool = True,
    ) -> BanIssued:
        prior = self._offences.get(ip, 0) if escalate else 0
        duration = ban_duration(spec, base, prior, self._rand) if escalate else base
        offences = prior + 1
        self._remember_offence(ip, offences)
        ban = ActiveBan(ip, now, now + duration, reason, rule, evidence, offences, actor)
        self.until[ip] = ban.until
        self._bans[ip] = ban
        return BanIssued(ip, now, ban.until, reason, rule, evidence, offences, actor)

    def lift(self, ip: str, now: float, why: str, actor: str = "engine") -> BanLifted | None:
        if self.until.pop(ip, None) is None:
            return None
        self._bans.pop(ip, None)
        return BanLifted(ip, now, why, actor)

    def expire(self, ip: str, now: float) -> BanLifted | None:
        """Called when a lookup finds a ban whose time has come (lazy expiry, no timers)."""
        return self.lift(ip, now, "expired")

    def sweep(self, now: float) -> list[BanLifted]:
        """Lift every expired ban; the housekeeping task calls this about once a second."""
        expired = [ip for ip, until in self.until.items() if until <= now]
        return [lifted for ip in expired if (lifted := self.expire(ip, now)) is not None]

    def active(self, now: float) -> list[ActiveBan]:
        return sorted((b for b in self._bans.values() if b.until > now), key=lambda b: b.until)

    def get(self, ip: str) -> ActiveBan | None:
        return self._bans.get(ip)

    def load(self, bans: Iterable[ActiveBan], offences: dict[str, int], now: float) -> int:
        """Restore bans (and escalation history) from the store at start; returns how many are
        active."""
        for ip, count in offences.items():
            self._remember_offence(ip, max(count, self._offences.get(ip, 0)))
        loaded = 0
        for ban in bans:
            if ban.until > now and ban.until > self.until.get(ban.ip, 0.0):
                self.until[ban.ip] = ban.until
                self._bans[ban.ip] = ban
                loaded += 1
        return loaded

    def _remember_offence(self, ip: str, count: int) -> None:
        if ip not in self._offences and len(self._offences) >= MAX_OFFENDERS:
            self._offences.popitem(last=False)  # FIFO: the oldest offender goes
        self._offences[ip] = count
