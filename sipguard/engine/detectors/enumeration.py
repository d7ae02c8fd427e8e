"""Extension enumeration: one source probing many distinct users that the PBX says do not exist.

svwar and friends send REGISTER/OPTIONS/INVITE to 100, 101, 102, ... and read the answers: 404 (or
403, 484, 604) means "no such user", anything else means "found one". Counting distinct users
answered that way per source catches them whatever User-Agent they claim.

401/407 answers are deliberately not counted: the first REGISTER of every phone is challenged, so
an office of 50 phones re-registering after an outage would look like an enumeration of 50 users. A
PBX that challenges unknown users exactly like known ones (Asterisk's alwaysauthreject) tells an
enumerator nothing anyway, so nothing is lost."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sipguard.engine.detectors.base import Finding, Verdict

NOT_FOUND_STATUSES = frozenset({403, 404, 484, 604})
MAX_SOURCES = 200_000


@dataclass(frozen=True, slots=True)
class EnumerationSpec:
    distinct_users: int = 10
    within: float = 60.0
    ban: float = 86400.0
    ban_source: bool = True  # False: alert only


class Enumeration:
    __slots__ = ("_probes", "spec")

    def __init__(self, spec: EnumerationSpec) -> None:
        self.spec = spec
        self._probes: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()

    def not_found(self, source: str, user: str, now: float) -> Finding | None:
        """The PBX answered a credential-less request for `user` from `source` with 'no such
        user'."""
        spec = self.spec
        users = self._probes.get(source)
        if users is None:
            if len(self._probes) >= MAX_SOURCES:
                self._probes.popitem(last=False)
            users = self._probes[source] = OrderedDict()
        users[user] = now
        users.move_to_end(user)
        while users and next(iter(users.values())) < now - spec.within:
            users.popitem(last=False)
        while len(users) > spec.distinct_users:
            users.popitem(last=False)
        if len(users) < spec.distinct_users:
            return None
        del self._probes[source]
        shown = ", ".join(list(users)[:5])
        return Finding(
            "enumeration",
            Verdict.BAN_SOURCE if spec.ban_source else Verdict.ALERT,
            "enumeration",
            spec.ban if spec.ban_source else 0.0,
            f"{spec.distinct_users} unknown users probed within {spec.within:g}s ({shown}, ...)",
        )

    def sweep(self, now: float) -> None:
        horizon = now - self.spec.within
        stale = [
            s
            for s, users in self._probes.items()
            if not users or next(reversed(users.values())) < horizon
        ]
        for source in stale:
            del self._probes[source]
