"""A toy PBX for `sipguard demo`: demo only, not a PBX.

A registrar and user agent server on one UDP socket, with just enough behaviour that sipguard in
front of it sees what it would see in front of Asterisk or Kamailio:

* REGISTER: digest authentication (RFC 2617 MD5, qop=auth), `401` with `WWW-Authenticate` to a
  request without credentials, `403` to wrong credentials, `401 ... stale=true` to an unknown or
  expired nonce, `404` to an unknown user without credentials (the answer extension scanners
  look for), `200` with the bindings (`Contact: <...>;expires=N`) to a good one.
* INVITE: `404` for an unknown extension; the caller must authenticate like a REGISTER (but
  challenged with `407` and `Proxy-Authenticate`, as Asterisk's chan_sip and Kamailio do); then
  `100 Trying`, `180 Ringing` and, after a short ring, `200 OK` with an SDP answer. Extensions
  are the accounts; a number of six digits or more stands for an outside line (there is no trunk:
  the call is answered here, as if the far end picked up).
* ACK, BYE (`200`, or `481` for an unknown call), CANCEL (`200`, then `487` for the ringing
  INVITE), OPTIONS (`200`, or `404` for an unknown user); other methods `405`.
* Retransmitted requests get the same answer again; every table is bounded.

It answers every request to the address it came from (sipguard's inside socket), stores nothing,
relays no media and never calls a phone. Do not put it anywhere near a real network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sipguard.core.sip import (
    Hdr,
    Method,
    SipParseError,
    SipRequest,
    SipUri,
    build_response,
    parse_message,
    parse_uri,
)
from sipguard.core.sip.digest import DigestResponse, challenge, verify

__all__ = ["DEMO_ACCOUNTS", "REALM", "PbxStats", "ToyPbx"]

log = logging.getLogger("sipguard.demo.pbx")

REALM = "sipguard-demo"
#: The demo's accounts (extension: password). Demo only: these passwords are public.
DEMO_ACCOUNTS: Mapping[str, str] = {
    "101": "demo-101-secret",
    "102": "demo-102-secret",
    "103": "demo-103-secret",
}
SERVER = b"sipguard-demo-pbx (demo only, not a PBX)"
ALLOW = b"INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER"

NONCE_TTL = 300.0  # seconds a challenge may be answered
MAX_NONCES = 4096
MAX_TRANSACTIONS = 4096  # answers kept for retransmissions
MAX_RINGING = 256  # INVITEs between 180 and 200
MAX_CALLS = 1024  # established calls (a BYE ends them)
MAX_CONTACTS = 5  # bindings per account
DEFAULT_EXPIRES = 3600
MIN_EXPIRES, MAX_EXPIRES = 60, 3600
OUTSIDE_LINE_DIGITS = 6  # a dialled number at least this long goes "out" (answered here)

_TxKey = tuple[bytes, int, bytes, bytes]  # Call-ID, CSeq number, method, top Via branch


@dataclass(slots=True)
class PbxStats:
    """What the toy PBX answered: the demo prints these next to sipguard's own numbers."""

    requests: int = 0
    registrations: int = 0  # 200 to a REGISTER
    challenges: int = 0  # 401/407 to a request without credentials (the normal first step)
    auth_failures: int = 0  # 401/403/407 to a request with credentials
    not_found: int = 0  # 404
    calls_answered: int = 0  # 200 to an INVITE
    calls_ended: int = 0  # 200 to a BYE
    by_method: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Ringing:
    request: SipRequest
    addr: tuple[str, int]
    to_tag: bytes
    timer: asyncio.TimerHandle | None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, pbx: ToyPbx) -> None:
        self._pbx = pbx

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._pbx.receive(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("toy PBX socket error: %s", exc)


class ToyPbx:
    """Demo only, not a PBX: a registrar and UAS with digest auth on one loopback UDP socket."""

    def __init__(
        self,
        accounts: Mapping[str, str] = DEMO_ACCOUNTS,
        *,
        realm: str = REALM,
        ring_time: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = dict(accounts)
        self.realm = realm
        self.ring_time = ring_time
        self.stats = PbxStats()
        #: account -> contact URI -> expiry (clock time)
        self.bindings: dict[str, dict[bytes, float]] = {}
        self._clock = clock
        self._nonces: OrderedDict[str, float] = OrderedDict()
        self._answers: OrderedDict[_TxKey, bytes] = OrderedDict()
        self._ringing: OrderedDict[_TxKey, _Ringing] = OrderedDict()
        self._calls: OrderedDict[bytes, bytes] = OrderedDict()  # Call-ID -> our To tag
        self._transport: asyncio.DatagramTransport | None = None
        self.address: tuple[str, int] = ("", 0)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, port)
        )
        self._transport = transport
        sockname = transport.get_extra_info("sockname")
        self.address = (str(sockname[0]), int(sockname[1]))
        log.info(
            "toy PBX (demo only, not a PBX) on udp://%s:%d, realm %s, extensions %s",
            *self.address,
            self.realm,
            ", ".join(sorted(self.accounts)),
        )
        return self.address

    @property
    def url(self) -> str:
        return f"udp://{self.address[0]}:{self.address[1]}"

    def close(self) -> None:
        for ringing in self._ringing.values():
            if ringing.timer is not None:
                ringing.timer.cancel()
        self._ringing.clear()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            log.info("toy PBX (demo only, not a PBX) stopped")

    async def __aenter__(self) -> ToyPbx:
        if self._transport is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def registered(self, account: str) -> list[bytes]:
        """The contacts of `account` that have not expired."""
        now = self._clock()
        return [uri for uri, until in self.bindings.get(account, {}).items() if until > now]

    # ---- receiving ---------------------------------------------------------------------------

    def receive(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            log.debug("toy PBX: unparsable datagram from %s:%d (%s)", *addr, exc.reason)
            return
        if not isinstance(msg, SipRequest):
            return  # it never sends requests, so no answers are expected
        try:
            self._request(msg, addr)
        except SipParseError as exc:
            log.debug("toy PBX: broken %s from %s:%d (%s)", msg.method_raw, *addr, exc.reason)

    def _request(self, req: SipRequest, addr: tuple[str, int]) -> None:
        self.stats.requests += 1
        name = req.method_raw.decode("ascii", "replace")
        if len(self.stats.by_method) < 32 or name in self.stats.by_method:
            self.stats.by_method[name] = self.stats.by_method.get(name, 0) + 1
        method = req.method
        if method is Method.ACK:
            return  # ends a transaction; nothing to answer
        key = _tx_key(req)
        cached = self._answers.get(key)
        if cached is not None:  # a retransmission: the same answer again
            self._send(cached, addr)
            return
        ringing = self._ringing.get(key)
        if ringing is not None:
            self._send(self._reply(req, 180, ringing.to_tag), addr)
            return
        if method is Method.REGISTER:
            self._register(req, key, addr)
        elif method is Method.INVITE:
            self._invite(req, key, addr)
        elif method is Method.BYE:
            self._bye(req, key, addr)
        elif method is Method.CANCEL:
            self._cancel(req, key, addr)
        elif method is Method.OPTIONS:
            user = _user(req.uri)
            status = 404 if user is not None and user not in self.accounts else 200
            self._final(
                req, key, addr, status, extra=((b"Allow", ALLOW), (b"Accept", b"application/sdp"))
            )
        else:
            self._final(req, key, addr, 405, extra=((b"Allow", ALLOW),))

    # ---- REGISTER ----------------------------------------------------------------------------

    def _register(self, req: SipRequest, key: _TxKey, addr: tuple[str, int]) -> None:
        aor = _user(req.to_addr().uri)
        if not self._authorised(req, key, addr, aor, aor_must_match=True):
            return
        assert aor is not None
        now = self._clock()
        bindings = self.bindings.setdefault(aor, {})
        for uri, until in list(bindings.items()):
            if until <= now:
                del bindings[uri]
        default = _int(req.get(Hdr.EXPIRES), DEFAULT_EXPIRES)
        if req.is_star_contact():
            if default == 0:
                bindings.clear()
        else:
            for contact in req.contacts():
                expires = _int(contact.param(b"expires"), default)
                if expires == 0:
                    bindings.pop(contact.uri, None)
                    continue
                expires = min(max(expires, MIN_EXPIRES), MAX_EXPIRES)
                bindings.pop(contact.uri, None)
                bindings[contact.uri] = now + expires
                while len(bindings) > MAX_CONTACTS:
                    del bindings[next(iter(bindings))]
        extra = [
            (b"Contact", b"<%s>;expires=%d" % (uri, max(0, round(until - now))))
            for uri, until in bindings.items()
        ]
        self.stats.registrations += 1
        log.info(
            "toy PBX (demo only): %s registered from %s:%d, %d contact(s)", aor, *addr, len(extra)
        )
        self._final(req, key, addr, 200, extra=extra)

    # ---- calls -------------------------------------------------------------------------------

    def _invite(self, req: SipRequest, key: _TxKey, addr: tuple[str, int]) -> None:
        if req.to_addr().tag is not None:  # a re-INVITE in a call: accept it as it is
            call_tag = self._calls.get(req.call_id())
            self._final(req, key, addr, 200 if call_tag else 481, sdp=call_tag is not None)
            return
        dialled = _user(req.uri)
        if not self._reachable(dialled):
            self._final(req, key, addr, 404)
            return
        caller = _user(req.from_addr().uri)
        if not self._authorised(req, key, addr, caller, aor_must_match=False):
            return
        if len(self._ringing) >= MAX_RINGING:
            self._final(req, key, addr, 486)
            return
        to_tag = _tag()
        self._send(self._reply(req, 100, b""), addr)
        self._send(self._reply(req, 180, to_tag), addr)
        ringing = _Ringing(req, addr, to_tag, None)
        self._ringing[key] = ringing
        loop = asyncio.get_running_loop()
        ringing.timer = loop.call_later(self.ring_time, self._pick_up, key)
        log.info("toy PBX (demo only): call %s -> %s ringing", caller, dialled)

    def _pick_up(self, key: _TxKey) -> None:
        ringing = self._ringing.pop(key, None)
        if ringing is None:
            return
        req = ringing.request
        self._calls[req.call_id()] = ringing.to_tag
        while len(self._calls) > MAX_CALLS:
            self._calls.popitem(last=False)
        self.stats.calls_answered += 1
        self._final(req, key, ringing.addr, 200, to_tag=ringing.to_tag, sdp=True)

    def _bye(self, req: SipRequest, key: _TxKey, addr: tuple[str, int]) -> None:
        if self._calls.pop(req.call_id(), None) is None:
            self._final(req, key, addr, 481)
            return
        self.stats.calls_ended += 1
        self._final(req, key, addr, 200)

    def _cancel(self, req: SipRequest, key: _TxKey, addr: tuple[str, int]) -> None:
        invite_key = (key[0], key[1], b"INVITE", key[3])
        ringing = self._ringing.pop(invite_key, None)
        if ringing is None:
            self._final(req, key, addr, 481)
            return
        if ringing.timer is not None:
            ringing.timer.cancel()
        self._final(req, key, addr, 200)
        self._final(ringing.request, invite_key, ringing.addr, 487, to_tag=ringing.to_tag)

    def _reachable(self, dialled: str | None) -> bool:
        if dialled is None:
            return False
        if dialled in self.accounts:
            return True
        digits = dialled.removeprefix("+")
        return digits.isdigit() and len(digits) >= OUTSIDE_LINE_DIGITS

    # ---- authentication ----------------------------------------------------------------------

    def _authorised(
        self,
        req: SipRequest,
        key: _TxKey,
        addr: tuple[str, int],
        user: str | None,
        *,
        aor_must_match: bool,
    ) -> bool:
        """True when `req` carries good credentials; else answers 401/407/403/404, says False."""
        header = req.get(Hdr.AUTHORIZATION) or req.get(Hdr.PROXY_AUTHORIZATION)
        if header is None:
            if user is None or user not in self.accounts:
                self._final(req, key, addr, 404)
            else:
                self._challenge(req, key, addr, stale=False)
            return False
        answer = DigestResponse.parse(header)
        if answer is None or answer.realm != self.realm:
            self._refuse(req, key, addr, "unreadable credentials")
            return False
        password = self.accounts.get(answer.username)
        if password is None or (aor_must_match and answer.username != user):
            self._refuse(req, key, addr, "unknown user")
            return False
        issued = self._nonces.get(answer.nonce)
        if issued is None or self._clock() - issued > NONCE_TTL:
            self.stats.auth_failures += 1
            self._challenge(req, key, addr, stale=True)
            return False
        if not verify(answer, password, req.method_raw.decode("ascii", "replace")):
            self._refuse(req, key, addr, "wrong password")
            return False
        return True

    def _challenge(
        self, req: SipRequest, key: _TxKey, addr: tuple[str, int], *, stale: bool
    ) -> None:
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = self._clock()
        while len(self._nonces) > MAX_NONCES:
            self._nonces.popitem(last=False)
        if not stale:
            self.stats.challenges += 1
        value = challenge(self.realm, nonce, stale=stale)
        if req.method is Method.REGISTER:  # a registrar asks with 401, a call server with 407
            self._final(req, key, addr, 401, extra=((b"WWW-Authenticate", value),))
        else:
            self._final(req, key, addr, 407, extra=((b"Proxy-Authenticate", value),))

    def _refuse(self, req: SipRequest, key: _TxKey, addr: tuple[str, int], why: str) -> None:
        self.stats.auth_failures += 1
        log.info(
            "toy PBX (demo only): %s from %s:%d refused: %s",
            req.method_raw.decode("ascii", "replace"),
            *addr,
            why,
        )
        self._final(req, key, addr, 403)

    # ---- sending -----------------------------------------------------------------------------

    def _final(
        self,
        req: SipRequest,
        key: _TxKey,
        addr: tuple[str, int],
        status: int,
        *,
        to_tag: bytes | None = None,
        extra: Iterable[tuple[bytes, bytes]] = (),
        sdp: bool = False,
    ) -> None:
        if status == 404:
            self.stats.not_found += 1
        data = self._reply(req, status, _tag() if to_tag is None else to_tag, extra, sdp=sdp)
        self._answers[key] = data
        while len(self._answers) > MAX_TRANSACTIONS:
            self._answers.popitem(last=False)
        self._send(data, addr)

    def _reply(
        self,
        req: SipRequest,
        status: int,
        to_tag: bytes,
        extra: Iterable[tuple[bytes, bytes]] = (),
        *,
        sdp: bool = False,
    ) -> bytes:
        headers = [(b"Server", SERVER), *extra]
        if req.method is Method.INVITE and 180 <= status < 300:
            headers += [(b"Record-Route", rr) for rr in req.get_all(Hdr.RECORD_ROUTE)]
            host, port = self.address
            headers.append((b"Contact", b"<sip:pbx@%s:%d>" % (host.encode(), port)))
        data = build_response(req, status, to_tag=to_tag, extra_headers=headers)
        if not sdp:
            return data
        body = _sdp(self.address[0])
        head = data[: -len(b"Content-Length: 0\r\n\r\n")]
        return head + b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s" % (
            len(body),
            body,
        )

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)


def _tx_key(req: SipRequest) -> _TxKey:
    number, method = req.cseq()
    branch = req.top_via().branch or b""
    return (req.call_id(), number, method, branch)


def _user(uri: bytes) -> str | None:
    try:
        parsed = parse_uri(uri)
    except SipParseError:
        return None
    if not isinstance(parsed, SipUri) or parsed.user is None:
        return None
    return parsed.user.decode("utf-8", "replace")


def _int(value: bytes | None, default: int) -> int:
    if value is None:
        return default
    with contextlib.suppress(ValueError):
        return max(0, int(value.strip()))
    return default


def _tag() -> bytes:
    return secrets.token_hex(4).encode("ascii")


def _sdp(host: str) -> bytes:
    session = secrets.randbelow(2**31)
    return (
        b"v=0\r\n"
        b"o=demo-pbx %d %d IN IP4 %s\r\n"
        b"s=sipguard demo (demo only, not a PBX)\r\n"
        b"c=IN IP4 %s\r\n"
        b"t=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=sendrecv\r\n" % (session, session, host.encode(), host.encode())
    )
