"""Legitimate phones for `sipguard demo`: simulated user agents (demo only).

Each phone has its own loopback address (127.0.1.x), registers through sipguard with digest
authentication and places a few calls: INVITE, the challenge, INVITE with credentials, ringing,
answer, ACK along the Record-Route, a short talk, BYE. Client side, so asyncio-dgram's simple
`send`/`recv` fits; every wait has a deadline and every retransmission a count.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncio_dgram

from sipguard.core.sip import Hdr, SipParseError, SipResponse, parse_message
from sipguard.core.sip.digest import authorization, parse_challenge

__all__ = ["CallResult", "Phone", "PhoneError"]

log = logging.getLogger("sipguard.demo.phones")

USER_AGENT = "sipguard-demo-phone/1.0 (demo only)"
T1 = 0.5  # RFC 3261 timer T1: the first retransmission interval
TRIES = 4  # sends of one request at most (0.5 + 1 + 2 + 4 s of waiting)
INVITE_TIMEOUT = 8.0  # seconds an INVITE may ring before the phone gives up


#: (branch, cseq, credentials header) -> request
_Builder = Callable[[str, int, tuple[bytes, bytes] | None], bytes]
#: the challenge's header, and the header that answers it
_CHALLENGE = {
    401: (Hdr.WWW_AUTHENTICATE, b"Authorization"),
    407: (Hdr.PROXY_AUTHENTICATE, b"Proxy-Authorization"),
}


class PhoneError(Exception):
    """The phone got no (usable) answer."""


@dataclass(slots=True)
class CallResult:
    dialled: str
    statuses: list[int] = field(default_factory=list)  # every final status seen, in order
    answered: bool = False
    ended: bool = False  # BYE answered 200

    @property
    def final(self) -> int:
        return self.statuses[-1] if self.statuses else 0


@dataclass(slots=True)
class _Dialog:
    call_id: str
    local_tag: str
    remote_to: str  # the To header value with the far end's tag
    remote_target: str  # the Contact of the 2xx
    route: list[str]  # the route set: Record-Route of the 2xx, reversed
    cseq: int


class Phone:
    """A softphone in a few dozen lines: REGISTER, INVITE, ACK, BYE, with digest auth."""

    def __init__(
        self,
        user: str,
        password: str,
        *,
        ip: str,
        proxy: tuple[str, int],
        domain: str = "127.0.0.1",
    ) -> None:
        self.user = user
        self.password = password
        self.ip = ip
        self.proxy = proxy
        self.domain = domain
        self.port = 0
        self.registered = False
        self._stream: asyncio_dgram.aio.DatagramServer | None = None
        self._cseq = 0
        self._cnonce = 0

    async def open(self) -> None:
        self._stream = await asyncio_dgram.bind((self.ip, 0))
        self.port = int(self._stream.sockname[1])

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    async def __aenter__(self) -> Phone:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact(self) -> str:
        return f"<sip:{self.user}@{self.ip}:{self.port};transport=udp>"

    # ---- the two things a phone does ---------------------------------------------------------

    async def register(self, expires: int = 300) -> int:
        """Register (challenge, then credentials); the final status."""
        call_id = _token()
        tag = _token()
        uri = f"sip:{self.domain}"

        def build(branch: str, cseq: int, auth: tuple[bytes, bytes] | None) -> bytes:
            return self._request(
                "REGISTER",
                uri,
                branch=branch,
                cseq=cseq,
                call_id=call_id,
                from_=f"<{self.aor}>;tag={tag}",
                to=f"<{self.aor}>",
                extra=[f"Contact: {self.contact}", f"Expires: {expires}"],
                auth=auth,
            )

        status, _ = await self._authenticated("REGISTER", uri, build)
        self.registered = status == 200 and expires > 0
        return status

    async def call(self, dialled: str, *, talk: float = 0.5) -> CallResult:
        """Call `dialled` (an extension or a number), talk for `talk` seconds, hang up."""
        result = CallResult(dialled)
        call_id = _token()
        tag = _token()
        uri = f"sip:{dialled}@{self.domain}"
        body = _sdp(self.ip)

        def build(branch: str, cseq: int, auth: tuple[bytes, bytes] | None) -> bytes:
            return self._request(
                "INVITE",
                uri,
                branch=branch,
                cseq=cseq,
                call_id=call_id,
                from_=f"<{self.aor}>;tag={tag}",
                to=f"<{uri}>",
                extra=[f"Contact: {self.contact}", "Content-Type: application/sdp"],
                auth=auth,
                body=body,
            )

        status, answer = await self._authenticated("INVITE", uri, build, result.statuses)
        if answer is None or not 200 <= status < 300:
            return result
        result.answered = True
        dialog = _dialog(answer, call_id, tag)
        await self._send(self._in_dialog("ACK", dialog, dialog.cseq))
        if talk > 0:
            await asyncio.sleep(talk)  # pacing: the call lasts this long, nothing waits on it
        dialog.cseq += 1
        bye = self._in_dialog("BYE", dialog, dialog.cseq)
        final = await self._transaction(bye, "BYE")
        result.statuses.append(final.status)
        result.ended = final.status == 200
        return result

    # ---- transactions ------------------------------------------------------------------------

    async def _authenticated(
        self,
        method: str,
        uri: str,
        build: _Builder,
        statuses: list[int] | None = None,
    ) -> tuple[int, SipResponse | None]:
        """Send, answer one 401/407 with credentials, return the final status and response."""
        auth: tuple[bytes, bytes] | None = None
        answer: SipResponse | None = None
        for _ in range(2):
            self._cseq += 1
            branch = _branch()
            data = build(branch, self._cseq, auth)
            answer = await self._transaction(data, method)
            if statuses is not None:
                statuses.append(answer.status)
            if method == "INVITE" and answer.status >= 300:
                await self._send(_ack_for(data, answer))
            if answer.status not in (401, 407):
                break
            asked, name = _CHALLENGE[answer.status]
            offer = parse_challenge(answer.get(asked) or b"")
            if offer is None:
                break
            self._cnonce += 1
            auth = (
                name,
                authorization(
                    offer,
                    username=self.user,
                    password=self.password,
                    method=method,
                    uri=uri,
                    cnonce=f"{self.user}-{self._cnonce}-{_token()}",
                ),
            )
        assert answer is not None
        return answer.status, answer

    async def _transaction(self, data: bytes, method: str) -> SipResponse:
        """Send `data` until a final answer comes (RFC 3261 timers E/A, bounded)."""
        request = parse_message(data)
        branch = request.top_via().branch
        interval = T1
        deadline = asyncio.get_running_loop().time() + INVITE_TIMEOUT
        provisional = False
        for _ in range(TRIES + 8):
            if not provisional:
                await self._send(data)
            answer = await self._receive(branch, method, interval, deadline)
            if answer is None:
                if asyncio.get_running_loop().time() >= deadline:
                    break
                interval = min(interval * 2, 4.0)
                continue
            if answer.status >= 200:
                return answer
            provisional = True  # ringing: stop retransmitting, wait for the final answer
        raise PhoneError(f"{self.user}: no answer to {method}")

    async def _receive(
        self, branch: bytes | None, method: str, wait: float, deadline: float
    ) -> SipResponse | None:
        assert self._stream is not None
        loop = asyncio.get_running_loop()
        until = min(loop.time() + wait, deadline)
        while (left := until - loop.time()) > 0:
            try:
                async with asyncio.timeout(left):
                    data, _ = await self._stream.recv()
            except TimeoutError:
                return None
            try:
                msg = parse_message(data)
            except SipParseError:
                continue
            if not isinstance(msg, SipResponse):
                continue  # the demo PBX never calls phones
            try:
                if msg.top_via().branch == branch and msg.cseq()[1].decode() == method:
                    return msg
            except SipParseError:
                continue
        return None

    async def _send(self, data: bytes) -> None:
        assert self._stream is not None
        await self._stream.send(data, self.proxy)

    # ---- message text ------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        uri: str,
        *,
        branch: str,
        cseq: int,
        call_id: str,
        from_: str,
        to: str,
        extra: Sequence[str] = (),
        auth: tuple[bytes, bytes] | None = None,
        body: bytes = b"",
        route: Sequence[str] = (),
    ) -> bytes:
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch={branch};rport",
            "Max-Forwards: 70",
            *(f"Route: {r}" for r in route),
            f"From: {from_}",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"User-Agent: {USER_AGENT}",
            *extra,
        ]
        head = "\r\n".join(lines).encode("utf-8")
        if auth is not None:
            head += b"\r\n" + auth[0] + b": " + auth[1]
        return head + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body

    def _in_dialog(self, method: str, dialog: _Dialog, cseq: int) -> bytes:
        return self._request(
            method,
            dialog.remote_target,
            branch=_branch(),
            cseq=cseq,
            call_id=dialog.call_id,
            from_=f"<{self.aor}>;tag={dialog.local_tag}",
            to=dialog.remote_to,
            route=dialog.route,
        )


def _dialog(answer: SipResponse, call_id: str, tag: str) -> _Dialog:
    contacts = answer.contacts()
    target = contacts[0].uri.decode() if contacts else f"sip:{answer.to_addr().uri.decode()}"
    route = [answer.raw[rr.start : rr.end].decode() for rr in reversed(answer.record_routes())]
    return _Dialog(
        call_id=call_id,
        local_tag=tag,
        remote_to=(answer.get(Hdr.TO) or b"").decode(),
        remote_target=target,
        route=route,
        cseq=answer.cseq()[0],
    )


def _ack_for(invite: bytes, answer: SipResponse) -> bytes:
    """The ACK of a non-2xx final answer (RFC 3261 17.1.1.3): same branch, the answer's To."""
    request = parse_message(invite)
    number = request.cseq()[0]
    via = request.get(Hdr.VIA) or b""
    lines = [
        b"ACK " + invite.split(b" ", 2)[1] + b" SIP/2.0",
        b"Via: " + via,
        b"Max-Forwards: 70",
        b"From: " + (request.get(Hdr.FROM) or b""),
        b"To: " + (answer.get(Hdr.TO) or b""),
        b"Call-ID: " + request.call_id(),
        b"CSeq: %d ACK" % number,
        b"Content-Length: 0",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _token() -> str:
    return secrets.token_hex(6)


def _branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def _sdp(ip: str) -> bytes:
    return (
        "v=0\r\n"
        f"o=demo-phone 1 1 IN IP4 {ip}\r\n"
        "s=sipguard demo call\r\n"
        f"c=IN IP4 {ip}\r\n"
        "t=0 0\r\n"
        "m=audio 4002 RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
    ).encode("ascii")
