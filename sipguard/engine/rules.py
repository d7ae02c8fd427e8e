"""Policy rules compiled once per load: first match wins (DESIGN.md section 4)."""

from __future__ import annotations

from dataclasses import dataclass

from sipguard.core.netset import NetworkSet
from sipguard.core.sip import Method, SipRequest, SipResponse
from sipguard.engine.accounts import uri_user
from sipguard.engine.context import Packet
from sipguard.engine.verdict import Action, Reason, Verdict
from sipguard.policy.model import CountryMatch, Rule, RuleAction


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    verdict: Verdict  # preallocated: what a match means for this message
    drop: Verdict  # preallocated: the same rule when its answer can't be sent (ACK, responses)
    methods: frozenset[Method] | None
    include_nets: NetworkSet | None
    exclude_nets: NetworkSet | None
    accounts: frozenset[bytes] | None

    @property
    def name(self) -> str:
        return self.rule.name

    def matches(self, msg: SipRequest | SipResponse, pkt: Packet, country: str | None) -> bool:
        match = self.rule.match
        if self.methods is not None and (
            not isinstance(msg, SipRequest) or msg.method not in self.methods
        ):
            return False
        if match.transport is not None and match.transport is not pkt.transport:
            return False
        if match.country is not None and not _country_holds(match.country, country):
            return False
        if self.include_nets is not None and pkt.ip not in self.include_nets:
            return False
        if self.exclude_nets is not None and pkt.ip in self.exclude_nets:
            return False
        if match.user_agent is not None:
            agent = msg.user_agent()
            if agent is None or match.user_agent.search(agent) is None:
                return False
        return self.accounts is None or not self.accounts.isdisjoint(accounts_of(msg))


def compile_rule(rule: Rule) -> CompiledRule:
    match = rule.match
    methods = None if match.method is None else frozenset(Method[m] for m in match.method)
    nets = match.network
    include = NetworkSet(nets.include) if nets is not None and nets.include is not None else None
    exclude = NetworkSet(nets.exclude) if nets is not None and nets.exclude else None
    accounts = None if match.account is None else frozenset(a.encode() for a in match.account)
    drop = Verdict(Action.DROP, Reason.RULE, rule.name)
    return CompiledRule(rule, _verdict_for(rule), drop, methods, include, exclude, accounts)


def accounts_of(msg: SipRequest | SipResponse) -> set[bytes]:
    """The users a message speaks for: From user, To user and digest username (any may be
    forged)."""
    found: set[bytes] = set()
    for name_addr in (msg.from_addr(), msg.to_addr()):
        user = uri_user(name_addr.uri)
        if user:
            found.add(user)
    credentials = msg.credentials()
    if credentials is not None and credentials.username:
        found.add(credentials.username)
    return found


def _country_holds(cond: CountryMatch, country: str | None) -> bool:
    if country is None:
        return False  # unknown never matches a country condition (geo.unknown_country: allow)
    if cond.include is not None and country not in cond.include:
        return False
    return country not in cond.exclude


_ACTIONS = {
    RuleAction.ALLOW: Action.FORWARD,
    RuleAction.ALERT: Action.FORWARD,
    RuleAction.DROP: Action.DROP,
    RuleAction.BAN: Action.DROP,
    RuleAction.REJECT: Action.REJECT,
}


def _verdict_for(rule: Rule) -> Verdict:
    reason = Reason.OK if rule.action is RuleAction.ALLOW else Reason.RULE
    return Verdict(_ACTIONS[rule.action], reason, rule.name)
