"""The engine: bytes and facts in, a decision out. Pure: no sockets, no asyncio, no clock reads.

The order is Kamailio's REQINIT order, cheapest first (DESIGN.md section 2): ban table before
parsing,
trusted sources, parse and sanity, country and rules, rate limits, then stateless routing. Slow work
(storing bans and events, alerts) leaves as `effects`, drained in batches off the hot path.
"""

from __future__ import annotations

import random
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sipguard.core.netset import parse_ip
from sipguard.core.sip import (
    Hdr,
    Method,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    TelUri,
    build_response_raw,
    parse_message,
    parse_uri,
)
from sipguard.engine.accounts import account_name, account_of, uri_user
from sipguard.engine.bans import ActiveBan, BanTable
from sipguard.engine.compile import MALFORMED_CLASS, CompiledLimit, CompiledPolicy
from sipguard.engine.context import Packet, Side
from sipguard.engine.detectors.base import Finding
from sipguard.engine.detectors.base import Verdict as DetectorVerdict
from sipguard.engine.detectors.bruteforce import BruteForce
from sipguard.engine.detectors.enumeration import NOT_FOUND_STATUSES, Enumeration
from sipguard.engine.detectors.logins import Logins
from sipguard.engine.effects import BanIssued, BanLifted, Effect, LoginSeen, SecurityEvent
from sipguard.engine.fraud import FraudGuard
from sipguard.engine.geo import GeoLookup
from sipguard.engine.proxy import (
    Decision,
    Router,
    reply_hop,
    reply_tag,
    stateless_reply,
    via_account,
)
from sipguard.engine.ratelimit import BucketMap
from sipguard.engine.rules import CompiledRule
from sipguard.engine.traffic import TrafficSample, TrafficTally
from sipguard.engine.verdict import (
    DROP_ACCOUNT_BLOCKED,
    DROP_BANNED,
    DROP_COUNTRY_UNKNOWN,
    DROP_MALFORMED,
    FORWARD,
    REJECT_MALFORMED,
    Action,
    Reason,
    Verdict,
)
from sipguard.policy.model import FraudAction, LimitSpec, Rate, RuleAction, Severity, Transport

REJECT_UNSUPPORTED_SCHEME = Verdict(Action.REJECT, Reason.MALFORMED, "uri-scheme")
REJECT_BAD_EXTENSION = Verdict(Action.REJECT, Reason.REPLY, "proxy-require")
# The same (kind, source, rule) is recorded once per window: a flood is one event, not ten thousand.
EVENT_REPEAT_WINDOW = 60.0
MAX_EVENT_KEYS = 100_000
DETAIL_LIMIT = 200  # characters of attacker-controlled text that reach an event
# Error answers (400/505 to garbage, 503 over a limit) per source: enough for a confused phone to
# learn what is wrong, too few for a flood of spoofed garbage to turn sipguard into a reflector
# (STYLE D11); past it such messages are dropped silently.
REPLY_BUDGET = LimitSpec(rate=Rate(count=20, per_seconds=60.0), burst=20)

_BANNED = Decision(DROP_BANNED, kind="-")  # shared: the banned path allocates nothing
# Enum members as module names: `Side.OUTSIDE` is a class attribute lookup (~90 ns on 3.11)
_OUTSIDE = Side.OUTSIDE
_INSIDE = Side.INSIDE
_UDP = Transport.UDP
_INVITE = Method.INVITE


def _no_geo(ip: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class EngineStats:
    """What the engine has counted, for metrics and status (read at scrape time, never per
    message). Totals count since this engine was built; the keys are closed sets from the code."""

    bans_active: int  # in the ban table; an expired ban leaves it at the next sweep (1 s)
    bans_issued: dict[str, int]  # by reason: rate_limited, rule, brute_force, enumeration, manual
    auth_failures: int  # 401/403/407 to requests with credentials from untrusted sources
    findings: dict[str, int]  # by kind: brute_force, enumeration, unusual_login, fraud_*, ...
    calls_in_progress: int  # all accounts together
    tracked_sources: int  # rate-limit buckets held (sources x limit classes)


class Engine:
    """Decides what happens to each message. The adapters call `handle` once per message."""

    __slots__ = (
        "_bans",
        "_bruteforce",
        "_enumeration",
        "_fraud",
        "_geo",
        "_logins",
        "_policy",
        "_recent_events",
        "_replies",
        "_router",
        "_stat_auth_failures",
        "_stat_bans",
        "_stat_findings",
        "_traffic",
        "effects",
    )

    def __init__(
        self,
        router: Router,
        policy: CompiledPolicy,
        *,
        geo: GeoLookup = _no_geo,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._router = router
        self._policy = policy
        self._geo = geo
        self._bans = BanTable(rand)
        self._bruteforce = BruteForce(policy.detection.bruteforce)
        self._enumeration = Enumeration(policy.detection.enumeration)
        self._logins = Logins(policy.detection.logins)
        self._fraud = FraudGuard(policy.policy.fraud)
        self._replies = BucketMap(REPLY_BUDGET)
        self._recent_events: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self.effects: list[Effect] = []
        # stats(): plain counts, bumped only where a ban, a finding or an auth failure happens
        self._stat_bans: Counter[str] = Counter()
        self._stat_findings: Counter[str] = Counter()
        self._stat_auth_failures = 0
        # the record of normal behaviour: a few increments per message, None when rollups are off
        self._traffic: TrafficTally | None = None
        self._configure_traffic()

    # ---- the hot path ------------------------------------------------------------------------

    def handle(self, data: bytes, pkt: Packet) -> Decision:
        policy = self._policy
        key = ""
        trusted = True
        outside = pkt.side is _OUTSIDE
        if outside:
            key = policy.source_key(pkt.ip)
            until = self._bans.until.get(key)
            if until is not None:  # 1. ban table, before parsing (the cheapest check, first)
                if pkt.now < until:
                    return _BANNED
                self._lift(key, pkt.now)
            trusted = pkt.ip in policy.trusted  # 2. trusted: never banned or limited
        try:
            # 3. parse; everything from outside is validated in full before anything reads it
            msg = parse_message(data, datagram=pkt.transport is _UDP, strict=outside)
        except SipParseError as exc:
            decision = self._malformed(data, exc, pkt, key, trusted)
            decision.kind = "malformed"
            return decision
        if not outside:
            try:  # the PBX's messages are parsed lazily: a header it botched surfaces here
                decision = self._toll_fraud(msg, pkt, "", None) or self._router.from_inside(
                    msg, pkt
                )
                if isinstance(msg, SipResponse) and decision.verdict is FORWARD:
                    if self._traffic is not None:
                        self._traffic.responses[msg.status // 100] += 1
                    self._observe_answer(msg, pkt.now)  # brute force, enumeration, logins
            except SipParseError:
                decision = Decision(DROP_MALFORMED, kind="malformed")
                return decision
        else:
            country = self._geo(pkt.ip)
            traffic = self._traffic
            if traffic is not None and isinstance(msg, SipRequest):
                counts = traffic.countries
                counts[country] = counts.get(country, 0) + 1
            refused = None if trusted else self._firewall(msg, pkt, key, country)
            if refused is not None:
                decision = refused
            elif isinstance(msg, SipRequest):
                decision = (
                    self._refuse_request(msg, pkt)
                    or self._toll_fraud(msg, pkt, key, country)  # trusted sources too
                    or self._router.from_outside(msg, pkt, country)
                )
            else:
                decision = self._router.from_outside(msg, pkt, country)
        if decision.verdict is FORWARD:
            self._fraud.observe(msg, pkt.now)  # calls in progress end with BYE, CANCEL, failures
        decision.kind = _kind(msg)
        return decision

    def _toll_fraud(
        self, msg: SipRequest | SipResponse, pkt: Packet, key: str, country: str | None
    ) -> Decision | None:
        """Initial INVITEs, from outside to the PBX and from the PBX toward a trunk (DESIGN 3)."""
        if not isinstance(msg, SipRequest) or msg.method is not _INVITE:
            return None
        if msg.to_addr().tag is not None:
            return None  # a re-INVITE inside a call
        from_pbx = pkt.side is _INSIDE
        caller = uri_user(msg.from_addr().uri)
        account = account_of(msg) if not from_pbx else (account_name(caller) if caller else None)
        finding = self._fraud.check_invite(msg, account or "?", pkt.now, from_pbx=from_pbx)
        if finding is None:
            return None
        call = msg.call_id().decode("ascii", "replace")[:64]
        if self._fresh((finding.kind, call, finding.rule), pkt.now):  # not per retransmission
            self._stat_findings[finding.kind] += 1
            self.effects.append(
                SecurityEvent(
                    pkt.now,
                    finding.kind,
                    finding.severity,
                    key or pkt.ip,
                    pkt.port,
                    country,
                    account,
                    "INVITE",
                    finding.rule,
                    finding.detail[:DETAIL_LIMIT],
                )
            )
        if finding.action is FraudAction.REJECT:
            return Decision(
                Verdict(Action.REJECT, Reason.TOLL_FRAUD, finding.rule),
                stateless_reply(msg, 403),
                reply_hop(pkt),
            )
        return None

    def _firewall(
        self, msg: SipRequest | SipResponse, pkt: Packet, key: str, country: str | None
    ) -> Decision | None:
        """Country, rules and rate limits for an untrusted outside message; None means go on."""
        policy = self._policy
        if self._bruteforce.has_blocks and isinstance(msg, SipRequest):
            account = account_of(msg)
            if account is not None and self._bruteforce.refuses(key, account, pkt.now):
                return Decision(DROP_ACCOUNT_BLOCKED)
        if country is None and policy.drop_unknown_country:
            self._event("country_unknown", Severity.NOTICE, pkt, key, msg, None, "geo")
            return Decision(DROP_COUNTRY_UNKNOWN)
        for rule in policy.rules:  # 4. rules, first match wins
            if rule.matches(msg, pkt, country):
                decision = self._apply_rule(rule, msg, pkt, key, country)
                if decision is not None:
                    return decision
                break
        if not isinstance(msg, SipRequest):
            return None
        limit = policy.limit_for(msg.method)  # 5. rate limits per source and method
        if limit is not None and not limit.buckets.allow(key, pkt.now):
            return self._over_limit(limit, msg, pkt, key, country)
        glob = policy.global_limit
        if glob is not None and not glob.buckets.allow("*", pkt.now):
            return self._over_limit(glob, msg, pkt, key, country)
        return None

    def _apply_rule(
        self,
        rule: CompiledRule,
        msg: SipRequest | SipResponse,
        pkt: Packet,
        key: str,
        country: str | None,
    ) -> Decision | None:
        action = rule.rule.action
        if action is RuleAction.ALLOW:
            return None
        if action is RuleAction.ALERT:
            self._event("rule", Severity.WARNING, pkt, key, msg, country, rule.name)
            return None
        if action is RuleAction.BAN:
            base = rule.rule.ban or self._policy.policy.bans.default
            self._ban(key, pkt, base, "rule", rule.name, _evidence(msg, country), country, msg)
            return Decision(rule.verdict)
        self._event("rule", Severity.NOTICE, pkt, key, msg, country, rule.name)
        if action is RuleAction.REJECT and _answerable(msg):
            assert isinstance(msg, SipRequest)
            status = rule.rule.status or 403
            return Decision(rule.verdict, stateless_reply(msg, status), reply_hop(pkt))
        return Decision(rule.drop)

    def _over_limit(
        self, limit: CompiledLimit, msg: SipRequest, pkt: Packet, key: str, country: str | None
    ) -> Decision:
        if limit.name != "global":  # no single source to ban (the loader refuses ban_after)
            banned = self._ban_past_limit(limit, pkt, key, "messages", country, msg)
            if banned is not None:
                return banned
        self._event("rate_limited", Severity.NOTICE, pkt, key, msg, country, f"limits.{limit.name}")
        if (
            limit.verdict.action is Action.REJECT
            and _answerable(msg)
            and self._replies.allow(key, pkt.now)
        ):
            retry = b"%d" % limit.buckets.retry_after()
            return Decision(
                limit.verdict, stateless_reply(msg, 503, ((b"Retry-After", retry),)), reply_hop(pkt)
            )
        return Decision(Verdict(Action.DROP, Reason.RATE_LIMITED, limit.verdict.rule))

    def _ban_past_limit(
        self,
        limit: CompiledLimit,
        pkt: Packet,
        key: str,
        what: str,
        country: str | None,
        msg: SipRequest | None,
        note: str = "",
    ) -> Decision | None:
        """Count one more excess of `limit` by `key`; at `ban_after` excesses within its window
        the source is banned (its buckets are forgotten with the ban). None below that."""
        spec = limit.buckets.spec
        offences = limit.buckets.offence(key, pkt.now)
        if spec.ban_after is None or offences < spec.ban_after:
            return None
        base = spec.ban or self._policy.policy.bans.default
        evidence = f"{offences} {what} over {spec.rate.count}/{spec.rate.per_seconds:g}s{note}"
        self._ban(key, pkt, base, "rate_limited", limit.verdict.rule, evidence, country, msg)
        return Decision(DROP_BANNED)

    # ---- what the PBX's answers teach --------------------------------------------------------

    def _observe_answer(self, resp: SipResponse, now: float) -> None:
        """A final answer of the PBX to a request that came from outside (DESIGN.md section 3)."""
        status = resp.status
        if status < 200:
            return
        if status < 300 and self._traffic is not None and resp.cseq()[1] == b"REGISTER":
            self._traffic.registrations += 1
        vias = resp.vias()
        client = vias[1]
        host = client.received if client.received is not None else client.host
        ip = host.decode("ascii", "replace")
        if ip in self._policy.trusted:
            return  # trusted sources are never banned; their failures are the PBX's business
        key = self._policy.source_key(ip)
        account = via_account(vias[0])
        if account is not None:
            if status in (401, 403, 407):
                self._stat_auth_failures += 1
                for finding in self._bruteforce.failure(key, account, now):
                    self._act(finding, key, ip, now, resp)
            elif status < 300:
                self._bruteforce.success(key, account, now)
                if resp.cseq()[1] == b"REGISTER":
                    unusual, seen = self._logins.success(account, self._geo(ip), now)
                    if seen is not None:
                        self.effects.append(seen)
                    if unusual is not None:
                        self._act(unusual, key, ip, now, resp)
        elif status in NOT_FOUND_STATUSES:
            to_user = uri_user(resp.to_addr().uri)
            user = account_name(to_user) if to_user else "?"
            probe = self._enumeration.not_found(key, user, now)
            if probe is not None:
                self._act(probe, key, ip, now, resp)

    def _act(self, finding: Finding, key: str, ip: str, now: float, resp: SipResponse) -> None:
        self._stat_findings[finding.kind] += 1
        country = self._geo(ip)
        method = resp.cseq()[1].decode("ascii", "replace")
        if finding.verdict is DetectorVerdict.BAN_SOURCE:
            self._ban_source(
                key,
                now,
                0,
                finding.duration,
                finding.kind,
                finding.rule,
                finding.detail,
                country,
                finding.account,
                method,
            )
            return
        severity = Severity.ERROR if finding.kind == "distributed_brute_force" else Severity.WARNING
        self.effects.append(
            SecurityEvent(
                now,
                finding.kind,
                severity,
                key,
                0,
                country,
                finding.account,
                method,
                finding.rule,
                finding.detail[:DETAIL_LIMIT],
            )
        )

    # ---- bans --------------------------------------------------------------------------------

    def _ban(
        self,
        key: str,
        pkt: Packet,
        base: float,
        reason: str,
        rule: str,
        evidence: str,
        country: str | None,
        msg: SipRequest | SipResponse | None,
    ) -> BanIssued:
        return self._ban_source(
            key, pkt.now, pkt.port, base, reason, rule, evidence, country, None, _method(msg)
        )

    def _ban_source(
        self,
        key: str,
        now: float,
        port: int,
        base: float,
        reason: str,
        rule: str,
        evidence: str,
        country: str | None,
        account: str | None,
        method: str | None = None,
    ) -> BanIssued:
        issued = self._bans.ban(
            key, now, self._policy.policy.bans, base, reason=reason, rule=rule, evidence=evidence
        )
        self._stat_bans[reason] += 1
        for limit in self._policy.limits.values():
            limit.buckets.forget(key)
        self.effects.append(issued)
        self.effects.append(
            SecurityEvent(
                now,
                "ban",
                Severity.WARNING,
                key,
                port,
                country,
                account,
                method,
                rule,
                f"{reason}: banned until {issued.until:.0f} ({issued.offences} offences): "
                f"{evidence}"[:DETAIL_LIMIT],
            )
        )
        return issued

    def ban(
        self, ip: str, now: float, duration: float | None, reason: str, actor: str
    ) -> BanIssued | str:
        """A ban by hand (`sipguard ban`); the error text when the address may not be banned."""
        if parse_ip(ip) is None:
            return f"not an IP address: {ip!r}"
        if ip in self._policy.trusted:
            return (
                f"{ip} is trusted (trusted networks, the upstream, sipguard itself): never banned"
            )
        key = self._policy.source_key(ip)
        base = duration if duration is not None else self._policy.policy.bans.default
        issued = self._bans.ban(
            key,
            now,
            self._policy.policy.bans,
            base,
            reason="manual",
            rule="",
            evidence=reason[:DETAIL_LIMIT],
            actor=actor,
            escalate=False,
        )
        self._stat_bans["manual"] += 1
        self.effects.append(issued)
        self.effects.append(manual_ban_event(issued, self._geo(ip)))
        return issued

    def unban(self, ip: str, now: float, actor: str, reason: str = "") -> BanLifted | None:
        """Lift a ban by hand (`sipguard unban`); None when the address was not banned."""
        address = parse_ip(ip) is not None
        key = self._policy.source_key(ip) if address else ip
        why = f"manual: {reason}"[:DETAIL_LIMIT] if reason else "manual"
        lifted = self._bans.lift(key, now, why, actor)
        if lifted is not None:
            self.effects.append(lifted)
            self.effects.append(manual_unban_event(lifted, self._geo(ip) if address else None))
            for limit in self._policy.limits.values():
                limit.buckets.forget(key)
        return lifted

    def active_bans(self, now: float) -> list[ActiveBan]:
        return self._bans.active(now)

    def load_bans(self, bans: list[ActiveBan], offences: dict[str, int], now: float) -> int:
        return self._bans.load(bans, offences, now)

    def load_logins(self, rows: list[LoginSeen]) -> None:
        """The unusual-login history from the store, at start."""
        self._logins.load(rows)

    def _lift(self, key: str, now: float) -> None:
        lifted = self._bans.expire(key, now)
        if lifted is not None:
            self.effects.append(lifted)

    # ---- housekeeping and reloads ------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Expire bans, trim idle buckets and old event keys; the housekeeping task calls it every
        second."""
        self.effects.extend(self._bans.sweep(now))
        for limit in self._policy.limits.values():
            limit.buckets.sweep(now)
        self._bruteforce.sweep(now)
        self._enumeration.sweep(now)
        self._fraud.sweep(now)
        self._replies.sweep(now)
        if self._policy.global_limit is not None:
            self._policy.global_limit.buckets.sweep(now)
        horizon = now - EVENT_REPEAT_WINDOW
        for event_key in [k for k, t in self._recent_events.items() if t < horizon]:
            del self._recent_events[event_key]

    def swap_policy(self, policy: CompiledPolicy, geo: GeoLookup | None = None) -> None:
        """One assignment between two messages; bans, detector state and unchanged limits'
        counters survive."""
        policy.carry_over(self._policy)
        self._policy = policy
        self._bruteforce.spec = policy.detection.bruteforce
        self._enumeration.spec = policy.detection.enumeration
        self._logins.configure(policy.detection.logins)
        self._fraud.swap(policy.policy.fraud)
        if geo is not None:
            self._geo = geo
        self._configure_traffic()

    def _configure_traffic(self) -> None:
        """Rollups on (keep the tally, or start one) or off (`records.rollups: off`: no tally)."""
        if self._policy.policy.records.rollups is None:
            self._traffic = None
        elif self._traffic is None:
            calls = self._fraud.calls
            self._traffic = TrafficTally(
                0.0,
                calls=calls.answered_total,
                call_seconds=calls.call_clock.seconds,
                auth_failures=self._stat_auth_failures,
            )

    def take_traffic(self, now: float) -> TrafficSample | None:
        """What the engine tallied since the last call (the rollup service calls it once a
        minute), and a fresh start; None when rollups are off."""
        traffic = self._traffic
        if traffic is None:
            return None
        calls = self._fraud.calls
        return traffic.take(
            now,
            calls=calls.answered_total,
            call_seconds=calls.call_clock.total(now),
            auth_failures=self._stat_auth_failures,
        )

    @property
    def policy(self) -> CompiledPolicy:
        return self._policy

    def calls_in_progress(self, account: str) -> int:
        return self._fraud.calls_in_progress(account)

    def tracked_sources(self) -> int:
        return sum(len(limit.buckets) for limit in self._policy.limits.values())

    def stats(self) -> EngineStats:
        """Counts for metrics; O(limit classes), no per-source work."""
        return EngineStats(
            bans_active=len(self._bans),
            bans_issued=dict(self._stat_bans),
            auth_failures=self._stat_auth_failures,
            findings=dict(self._stat_findings),
            calls_in_progress=self._fraud.tracked_calls,
            tracked_sources=self.tracked_sources(),
        )

    # ---- helpers -----------------------------------------------------------------------------

    def _fresh(self, seen: tuple[str, str, str], now: float) -> bool:
        """True the first time `seen` happens within EVENT_REPEAT_WINDOW (bounded memory)."""
        last = self._recent_events.get(seen)
        if last is not None and now - last < EVENT_REPEAT_WINDOW:
            return False
        if last is None and len(self._recent_events) >= MAX_EVENT_KEYS:
            self._recent_events.popitem(last=False)
        self._recent_events[seen] = now
        return True

    def _event(
        self,
        kind: str,
        severity: Severity,
        pkt: Packet,
        key: str,
        msg: SipRequest | SipResponse,
        country: str | None,
        rule: str,
    ) -> None:
        if not self._fresh((kind, key, rule), pkt.now):
            return
        self.effects.append(
            SecurityEvent(
                pkt.now,
                kind,
                severity,
                key,
                pkt.port,
                country,
                None,
                _method(msg),
                rule,
                _evidence(msg, country),
            )
        )

    def _refuse_request(self, req: SipRequest, pkt: Packet) -> Decision | None:
        """What a proxy must refuse before routing (RFC 3261 16.3): unknown scheme,
        Proxy-Require."""
        try:
            uri = parse_uri(req.uri)
        except SipParseError:
            uri = None
        if not isinstance(uri, SipUri | TelUri):
            return self._answer(req, pkt, 416, REJECT_UNSUPPORTED_SCHEME)
        if req.has(Hdr.PROXY_REQUIRE):
            unsupported = b", ".join(req.get_all(Hdr.PROXY_REQUIRE))
            return self._answer(
                req, pkt, 420, REJECT_BAD_EXTENSION, ((b"Unsupported", unsupported),)
            )
        return None

    def _answer(
        self,
        req: SipRequest,
        pkt: Packet,
        status: int,
        verdict: Verdict,
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> Decision:
        if not _answerable(req):
            return Decision(DROP_MALFORMED)
        return Decision(verdict, stateless_reply(req, status, extra), reply_hop(pkt))

    def _malformed_flood(self, pkt: Packet, key: str, exc: SipParseError) -> Decision | None:
        """`limits.malformed`: a source sending garbage past its rate is dropped unanswered, and
        banned after `ban_after` excesses. None while it is within the limit (or there is none).
        """
        limit = self._policy.limits.get(MALFORMED_CLASS)
        if limit is None or limit.buckets.allow(key, pkt.now):
            return None
        last = f" (last: {exc.reason})"
        banned = self._ban_past_limit(limit, pkt, key, "unparseable messages", None, None, last)
        return banned or Decision(limit.verdict)

    def _malformed(
        self, data: bytes, exc: SipParseError, pkt: Packet, key: str, trusted: bool
    ) -> Decision:
        if pkt.side is Side.INSIDE:
            return Decision(DROP_MALFORMED)  # never answer the PBX's garbage; it is counted
        if not trusted:
            over = self._malformed_flood(pkt, key, exc)
            if over is not None:
                return over
        if not trusted and not self._replies.allow(key, pkt.now):
            return Decision(DROP_MALFORMED)  # a flood of garbage gets no flood of answers
        if pkt.transport is Transport.UDP and b"\r\n\r\n" not in data:
            data = data.rstrip(b"\r\n") + b"\r\n\r\n"  # a datagram ends where the message ends
        reply = build_response_raw(data, exc.status_hint, to_tag=reply_tag(data))
        if reply is None:
            return Decision(DROP_MALFORMED)
        return Decision(REJECT_MALFORMED, reply, reply_hop(pkt))


def manual_ban_event(ban: BanIssued, country: str | None = None) -> SecurityEvent:
    """The audit record of a ban by hand: who, until when, why (also written by `sipguard ban`
    while sipguard is stopped)."""
    detail = f"manual: banned until {ban.until:.0f} by {ban.actor}"
    if ban.evidence:
        detail += f": {ban.evidence}"
    return SecurityEvent(
        ban.issued_at,
        "ban",
        Severity.NOTICE,
        ban.ip,
        0,
        country,
        None,
        None,
        "manual",
        detail[:DETAIL_LIMIT],
    )


def manual_unban_event(lifted: BanLifted, country: str | None = None) -> SecurityEvent:
    """The audit record of a ban lifted by hand: who, and why when they said."""
    why = lifted.why.removeprefix("manual").removeprefix(": ")
    detail = f"manual: lifted by {lifted.actor}" + (f": {why}" if why else "")
    return SecurityEvent(
        lifted.at,
        "unban",
        Severity.NOTICE,
        lifted.ip,
        0,
        country,
        None,
        None,
        "manual",
        detail[:DETAIL_LIMIT],
    )


def _answerable(msg: SipRequest | SipResponse) -> bool:
    """Never answer an ACK or a response (DESIGN.md section 2)."""
    return isinstance(msg, SipRequest) and msg.method_raw != b"ACK"


def _method(msg: SipRequest | SipResponse | None) -> str | None:
    return msg.method.name if isinstance(msg, SipRequest) else None


def _evidence(msg: SipRequest | SipResponse, country: str | None) -> str:
    agent = msg.user_agent()
    parts = [f"country={country or '-'}"]
    if agent:
        parts.append("ua=" + agent[:80].decode("ascii", "backslashreplace"))
    return " ".join(parts)[:DETAIL_LIMIT]


def _kind(msg: SipRequest | SipResponse) -> str:
    if isinstance(msg, SipResponse):
        return "response"
    # a closed set (unknown methods are OTHER): attackers can't grow the counters. `_name_`, not
    # `name`: the same string without a Python-level property call per message
    return msg.method._name_
