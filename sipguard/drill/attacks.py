"""The attacks themselves: each drives one `Attacker` as its expectation says and returns what
came back (`Raw`). Every loop is bounded by the attack's count, its packet budget and a deadline.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sipguard.core.sip import Hdr
from sipguard.core.sip.digest import authorization, parse_challenge
from sipguard.drill.expect import Expectation
from sipguard.drill.sipmsg import build_request, malformed_messages
from sipguard.drill.target import Target
from sipguard.drill.ua import Attacker, BudgetSpent

__all__ = ["ANSWER_WAIT", "ATTACK_DEADLINE", "Raw", "run_attack"]

ANSWER_WAIT = 0.5  # seconds an attacker waits for the answer to one request
CALL_WAIT = 2.0  # seconds for the final answer to an INVITE (the PBX may ring first)
SILENT_STOP = 2  # consecutive unanswered requests that end a probing attack (it is dropped)
ATTACK_DEADLINE = 12.0  # seconds any one attack may take
_count = itertools.count(1)


@dataclass(slots=True)
class Raw:
    """What one attacker saw."""

    started: float
    finished: float = 0.0
    sent: int = 0
    requests: int = 0
    statuses: list[int] = field(default_factory=list)  # final answers, in order
    rejected_at: float | None = None  # first 403/503 answer
    skip: str = ""  # the attack could not be staged (e.g. the PBX does not know the account)
    detail: str = ""


Runner = Callable[[Attacker, Expectation, Raw], Awaitable[None]]


async def run_attack(exp: Expectation, target: Target) -> Raw:
    raw = Raw(started=time.time())
    runner = _RUNNERS[exp.attack]
    async with Attacker(exp.source, target, exp.packets) as ua:
        try:
            await runner(ua, exp, raw)
        except BudgetSpent:
            raw.detail = (raw.detail + "; " if raw.detail else "") + "packet budget spent"
        raw.sent = ua.sent
        raw.started = ua.first_sent or raw.started
        statuses = [a.status for a in ua.answers if a.status >= 200]
        raw.statuses = statuses
        refused = [a.at for a in ua.answers if a.status in (403, 503)]
        raw.rejected_at = refused[0] if refused else None
    raw.finished = time.time()
    return raw


def _ids(ua: Attacker) -> tuple[str, str, str]:
    n = next(_count)
    token = secrets.token_hex(4)
    return (
        f"drill-{n}-{token}@{ua.source}",
        f"z9hG4bK-drill-{n}-{token}",
        f"d{n}{token}",
    )


async def _request(
    ua: Attacker,
    exp: Expectation,
    method: str,
    user: str | None,
    *,
    from_user: str | None = None,
    extra: tuple[tuple[str, str], ...] = (),
    wait: float = ANSWER_WAIT,
) -> int | None:
    """Send one request and wait for its final answer: its status, or None (silence)."""
    call_id, branch, tag = _ids(ua)
    data = build_request(
        method,
        ua.leg,
        user=user,
        from_user=from_user or user or exp.account or "drill",
        call_id=call_id,
        branch=branch,
        tag=tag,
        user_agent=exp.user_agent,
        extra=extra,
    )
    await ua.send(data, call_id=call_id, invite=method == "INVITE")
    answer = await ua.final(call_id, wait)
    return None if answer is None else answer.status


def _deadline(raw: Raw) -> bool:
    return time.time() - raw.started > ATTACK_DEADLINE


async def _probe(ua: Attacker, exp: Expectation, raw: Raw) -> None:
    """A few identical probes (a scanner's first contact, a foreign phone registering)."""
    silent = 0
    user = exp.account if exp.method == "REGISTER" and exp.account else "100"
    for _ in range(exp.count):
        raw.requests += 1
        status = await _request(ua, exp, exp.method, user)
        silent = silent + 1 if status is None else 0
        if silent >= SILENT_STOP or _deadline(raw):
            return


async def _sweep(ua: Attacker, exp: Expectation, raw: Raw) -> None:
    """Distinct extensions, one after the other (svwar): 1000, 1001, ..."""
    silent = 0
    revealed = 0
    for i in range(exp.count):
        raw.requests += 1
        user = str(1000 + i)
        status = await _request(ua, exp, exp.method, user, from_user=user)
        silent = silent + 1 if status is None else 0
        revealed += status in (404, 484, 604)
        if silent >= SILENT_STOP or _deadline(raw):
            break
    raw.detail = f"{revealed} 'no such user' answers"


async def _brute(ua: Attacker, exp: Expectation, raw: Raw) -> None:
    """REGISTER as the test account, then wrong passwords against each fresh challenge."""
    account = exp.account
    call_id, branch, tag = _ids(ua)
    first = build_request(
        "REGISTER",
        ua.leg,
        user=account,
        from_user=account,
        call_id=call_id,
        branch=branch,
        tag=tag,
        user_agent=exp.user_agent,
    )
    raw.requests += 1
    await ua.send(first, call_id=call_id)
    answer = await ua.final(call_id, ANSWER_WAIT * 2)
    if answer is None or answer.response is None:
        raw.detail = "the first REGISTER got no answer"
        return
    if answer.status not in (401, 407):
        raw.skip = (
            f"the PBX answered {answer.status} to REGISTER for {account!r} (no password "
            "challenge): name an account it knows with --account (a test account)"
        )
        return
    header = Hdr.WWW_AUTHENTICATE if answer.status == 401 else Hdr.PROXY_AUTHENTICATE
    auth_name = "Authorization" if answer.status == 401 else "Proxy-Authorization"
    challenge = parse_challenge(answer.response.get(header) or b"")
    if challenge is None:
        raw.skip = f"the PBX's {answer.status} carried no digest challenge sipguard can answer"
        return
    uri = f"sip:{ua.leg.dst}"
    silent = 0
    for attempt in range(exp.count):
        raw.requests += 1
        credentials = authorization(
            challenge,
            method="REGISTER",
            uri=uri,
            username=account,
            password=f"drill-wrong-{attempt}-{secrets.token_hex(3)}",
            cnonce=secrets.token_hex(8),
        ).decode()
        call_id, branch, tag = _ids(ua)
        data = build_request(
            "REGISTER",
            ua.leg,
            user=account,
            from_user=account,
            call_id=call_id,
            cseq=attempt + 2,
            branch=branch,
            tag=tag,
            user_agent=exp.user_agent,
            extra=((auth_name, credentials),),
        )
        await ua.send(data, call_id=call_id)
        answer = await ua.final(call_id, ANSWER_WAIT)
        if answer is None:
            silent += 1
            if silent >= SILENT_STOP:
                break
            continue
        silent = 0
        if answer.status < 300:
            raw.detail = "a wrong password was accepted"
            return
        if answer.response is not None:
            fresh = answer.response.get(header)
            offer = parse_challenge(fresh) if fresh else None
            if offer is not None:
                challenge = offer
        if _deadline(raw):
            break
    raw.detail = f"{raw.requests - 1} wrong passwords sent"


async def _flood(ua: Attacker, exp: Expectation, raw: Raw) -> None:
    """`count` requests back to back, then wait until the answers stop."""
    target_user = exp.account or "drill"
    for _ in range(exp.count):
        call_id, branch, tag = _ids(ua)
        data = build_request(
            exp.method,
            ua.leg,
            user=target_user,
            from_user=target_user,
            call_id=call_id,
            branch=branch,
            tag=tag,
            user_agent=exp.user_agent,
        )
        raw.requests += 1
        await ua.send(data, call_id=call_id, invite=exp.method == "INVITE")
    await ua.quiet(0.4, 4.0)


async def _call(ua: Attacker, exp: Expectation, raw: Raw) -> None:
    """One call to `exp.number` as the test account."""
    raw.requests += 1
    status = await _request(
        ua, exp, "INVITE", exp.number, from_user=exp.account or "drill", wait=CALL_WAIT
    )
    raw.detail = "no answer" if status is None else f"answered {status}"
    await ua.quiet(0.2, 1.0)


async def _malformed(ua: Attacker, exp: Expectation, raw: Raw) -> None:
    for data in malformed_messages(ua.leg, exp.count):
        raw.requests += 1
        await ua.send(data)
    await ua.quiet(0.3, 2.0)


_RUNNERS: dict[str, Runner] = {
    "scanner-ua": _probe,
    "scanner-disguised": _sweep,
    "enumeration": _sweep,
    "brute-force": _brute,
    "register-flood": _flood,
    "invite-flood": _flood,
    "fraud-premium": _call,
    "fraud-satellite": _call,
    "fraud-country": _call,
    "night-call": _call,
    "denied-country": _probe,
    "malformed-burst": _malformed,
}
