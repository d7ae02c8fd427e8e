"""What the engine decided about one message: a small closed vocabulary, common answers
preallocated."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.Enum):
    FORWARD = "forward"
    DROP = "drop"  # silent: a scanner learns nothing
    REJECT = "reject"  # a stateless error response goes back to the source


class Reason(enum.Enum):
    OK = "ok"
    REPLY = "reply"  # sipguard answered itself (e.g. 483), nothing wrong with the source
    MALFORMED = "malformed"
    TOO_MANY_HOPS = "too_many_hops"
    NOT_OURS = "not_ours"  # a response whose top Via is not sipguard's
    UNROUTABLE = "unroutable"  # no usable next hop
    NOT_UPSTREAM = "not_upstream"  # inside traffic from an address that is not the upstream
    BANNED = "banned"  # the source is in the ban table: dropped before parsing
    RULE = "rule"  # a policy rule decided (Verdict.rule names it)
    COUNTRY_UNKNOWN = "country_unknown"  # no country and geo.unknown_country: drop
    RATE_LIMITED = "rate_limited"
    ACCOUNT_BLOCKED = "account_blocked"  # brute force on this account from this source
    TOLL_FRAUD = "toll_fraud"  # a call the fraud policy refuses (403)


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: Reason
    rule: str = ""


FORWARD = Verdict(Action.FORWARD, Reason.OK)
DROP_MALFORMED = Verdict(Action.DROP, Reason.MALFORMED)
REJECT_MALFORMED = Verdict(Action.REJECT, Reason.MALFORMED)
REJECT_TOO_MANY_HOPS = Verdict(Action.REJECT, Reason.TOO_MANY_HOPS)
DROP_TOO_MANY_HOPS = Verdict(Action.DROP, Reason.TOO_MANY_HOPS)
DROP_NOT_OURS = Verdict(Action.DROP, Reason.NOT_OURS)
DROP_UNROUTABLE = Verdict(Action.DROP, Reason.UNROUTABLE)
REJECT_UNROUTABLE = Verdict(Action.REJECT, Reason.UNROUTABLE)
DROP_NOT_UPSTREAM = Verdict(Action.DROP, Reason.NOT_UPSTREAM)
DROP_BANNED = Verdict(Action.DROP, Reason.BANNED)
DROP_ACCOUNT_BLOCKED = Verdict(Action.DROP, Reason.ACCOUNT_BLOCKED, "auth")
DROP_COUNTRY_UNKNOWN = Verdict(Action.DROP, Reason.COUNTRY_UNKNOWN, "geo.unknown_country")
