"""The engine: bytes and facts in, a decision out. Pure: no sockets, no asyncio, no clock reads.

Issue 3 wires parsing, sanity and stateless routing; the firewall stages (bans, trusted networks,
countries, rate limits, detectors) slot in before routing in the order of shared/DESIGN.md section 2.
"""

from __future__ import annotations

import hashlib

from sipguard.core.sip import (
    Hdr,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    TelUri,
    build_response,
    parse_message,
    parse_uri,
)
from sipguard.core.sip.salvage import salvage_error_response
from sipguard.engine.context import Packet, Side
from sipguard.engine.proxy import Decision, Router, reply_hop
from sipguard.engine.verdict import (
    DROP_MALFORMED,
    REJECT_MALFORMED,
    Action,
    Reason,
    Verdict,
)
from sipguard.policy.model import Transport

REJECT_UNSUPPORTED_SCHEME = Verdict(Action.REJECT, Reason.MALFORMED, "uri-scheme")
REJECT_BAD_EXTENSION = Verdict(Action.REJECT, Reason.REPLY, "proxy-require")


class Engine:
    """Decides what happens to each message. The adapters call `handle` once per message."""

    __slots__ = ("_router",)

    def __init__(self, router: Router) -> None:
        self._router = router

    def handle(self, data: bytes, pkt: Packet) -> Decision:
        try:
            msg = parse_message(data, datagram=pkt.transport is Transport.UDP)
        except SipParseError as exc:
            decision = self._malformed(data, exc, pkt)
            decision.kind = "malformed"
            return decision
        if pkt.side is Side.INSIDE:
            decision = self._router.from_inside(msg, pkt)
        elif isinstance(msg, SipRequest):
            decision = self._refuse_request(msg, pkt) or self._router.from_outside(msg, pkt, None)
        else:
            decision = self._router.from_outside(msg, pkt, None)
        decision.kind = _kind(msg)
        return decision

    def _refuse_request(self, req: SipRequest, pkt: Packet) -> Decision | None:
        """What a proxy must refuse before routing (RFC 3261 16.3): unknown scheme, Proxy-Require."""
        try:
            uri = parse_uri(req.uri)
        except SipParseError:
            uri = None
        if not isinstance(uri, SipUri | TelUri):
            return self._answer(req, pkt, 416, REJECT_UNSUPPORTED_SCHEME)
        required = req.get_all(Hdr.PROXY_REQUIRE)
        if required:
            unsupported = b", ".join(required)
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
        if req.method_raw == b"ACK":
            return Decision(DROP_MALFORMED)
        reply = build_response(req, status, to_tag=_reply_tag(req.raw), extra_headers=extra)
        return Decision(verdict, reply, reply_hop(pkt))

    def _malformed(self, data: bytes, exc: SipParseError, pkt: Packet) -> Decision:
        if pkt.side is Side.INSIDE:
            return Decision(DROP_MALFORMED)  # never answer the PBX's garbage; it is counted
        reply = salvage_error_response(data, exc.status_hint, _reply_tag(data))
        if reply is None:
            return Decision(DROP_MALFORMED)
        return Decision(REJECT_MALFORMED, reply, reply_hop(pkt))


def _kind(msg: SipRequest | SipResponse) -> str:
    if isinstance(msg, SipResponse):
        return "response"
    return (
        msg.method.name
    )  # a closed set (unknown methods are OTHER): attackers can't grow the counters


def _reply_tag(data: bytes) -> bytes:
    return b"sg" + hashlib.blake2b(data[:512], digest_size=6).hexdigest().encode("ascii")
