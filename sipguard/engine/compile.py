"""A validated Policy becomes what the hot path needs: compiled rules, bucket maps, network sets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sipguard.core.netset import Network, NetworkSet, SourceKeys
from sipguard.core.sip import Method
from sipguard.engine.detectors.bruteforce import BruteForceSpec
from sipguard.engine.detectors.enumeration import EnumerationSpec
from sipguard.engine.detectors.logins import LoginSpec
from sipguard.engine.ratelimit import BucketMap
from sipguard.engine.rules import CompiledRule, compile_rule
from sipguard.engine.verdict import Action, Reason, Verdict
from sipguard.policy.model import (
    AccountAction,
    EnumerationAction,
    Exceed,
    LoginCheck,
    Policy,
    UnknownCountry,
)

# The methods with a limit class of their own; every other method is limited as `other`.
_LIMIT_CLASS = {Method.REGISTER: "REGISTER", Method.INVITE: "INVITE", Method.OPTIONS: "OPTIONS"}
MALFORMED_CLASS = "malformed"  # not a method: messages that fail to parse, per source


@dataclass(frozen=True, slots=True)
class CompiledLimit:
    name: str  # "REGISTER", ..., "other", "global"
    buckets: BucketMap
    verdict: Verdict  # preallocated drop or 503 reject for this class


@dataclass(frozen=True, slots=True)
class DetectionSpecs:
    bruteforce: BruteForceSpec
    enumeration: EnumerationSpec
    logins: LoginSpec


def detection_specs(policy: Policy) -> DetectionSpecs:
    auth = policy.auth
    per_account = auth.per_account
    known = auth.known_sources
    enumeration = policy.enumeration
    logins = policy.logins
    return DetectionSpecs(
        BruteForceSpec(
            failures=auth.failures,
            within=auth.within,
            ban=auth.ban,
            known_memory=known.memory,
            distinct_accounts=known.distinct_accounts,
            account_failures=per_account.failures if per_account else 10**9,
            account_within=per_account.within if per_account else 3600.0,
            account_block=per_account is not None and per_account.action is AccountAction.BLOCK,
        ),
        EnumerationSpec(
            distinct_users=enumeration.distinct_users,
            within=enumeration.within,
            ban=enumeration.ban,
            ban_source=enumeration.action is EnumerationAction.BAN,
        ),
        LoginSpec(
            new_country=logins.new_country is LoginCheck.ALERT,
            new_hour=logins.new_hour is LoginCheck.ALERT,
            timezone=logins.timezone,
            learn=logins.learn,
        ),
    )


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    policy: Policy
    rules: tuple[CompiledRule, ...]
    limits: dict[str, CompiledLimit]  # by method token, and "other"
    global_limit: CompiledLimit | None
    trusted: NetworkSet
    source_key: SourceKeys
    drop_unknown_country: bool
    detection: DetectionSpecs

    def limit_for(self, method: Method) -> CompiledLimit | None:
        return self.limits.get(_LIMIT_CLASS.get(method, "other"))

    def carry_over(self, old: CompiledPolicy) -> None:
        """Keep rate-limit state of limits that did not change across a reload (C15)."""
        for name, limit in self.limits.items():
            previous = old.limits.get(name)
            if previous is not None:
                limit.buckets.carry_over(previous.buckets)
        if self.global_limit is not None and old.global_limit is not None:
            self.global_limit.buckets.carry_over(old.global_limit.buckets)


def compile_policy(policy: Policy, always_trusted: Iterable[Network] = ()) -> CompiledPolicy:
    """`always_trusted`: the upstream and sipguard's own addresses, never banned whatever the
    policy."""
    limits: dict[str, CompiledLimit] = {}
    global_limit = None
    for name, spec in policy.limits.by_class().items():
        rejects = spec.exceed is Exceed.REJECT and name != MALFORMED_CLASS
        action = Action.REJECT if rejects else Action.DROP
        compiled = CompiledLimit(
            name, BucketMap(spec), Verdict(action, Reason.RATE_LIMITED, f"limits.{name}")
        )
        if name == "global":
            global_limit = compiled
        else:
            limits[name] = compiled
    return CompiledPolicy(
        policy=policy,
        rules=tuple(compile_rule(rule) for rule in policy.rules),
        limits=limits,
        global_limit=global_limit,
        trusted=NetworkSet((*policy.trusted, *always_trusted)),
        source_key=SourceKeys(policy.limits.ipv6_prefix),
        drop_unknown_country=policy.geo.unknown_country is UnknownCountry.DROP,
        detection=detection_specs(policy),
    )
