"""RFC 3261 stateless proxying (section 16.11) with NAT aliasing: bytes in, bytes and a next hop
out.

The rules are those of shared/DESIGN.md section 1. sipguard has two faces: the *outside* listeners
(phones,
trunks, the internet) and the *inside* address it uses toward the upstream PBX. Dialog-forming
requests get
two Record-Route entries, one per face (Kamailio's double record-routing), so in-dialog requests of
either
party come back through the face they know. Nothing here touches a socket or a clock.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from sipguard.core.sip import (
    Hdr,
    HeaderValue,
    MessageEditor,
    Method,
    NameAddr,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    Via,
    build_response,
    format_host,
    parse_uri,
)
from sipguard.engine.alias import ALIAS_PARAM, decode_alias, encode_alias
from sipguard.engine.context import Packet, Side
from sipguard.engine.verdict import (
    DROP_NOT_OURS,
    DROP_NOT_UPSTREAM,
    DROP_TOO_MANY_HOPS,
    DROP_UNROUTABLE,
    FORWARD,
    REJECT_TOO_MANY_HOPS,
    REJECT_UNROUTABLE,
    Verdict,
)
from sipguard.policy.model import Transport

MAGIC_COOKIE = b"z9hG4bK"  # RFC 3261 8.1.1.7
OUR_BRANCH = MAGIC_COOKIE + b"sg"
# which outside listener a request came in on, so its responses leave from it
LISTENER_PARAM = b"sgl"
ACCOUNT_PARAM = b"sga"  # the digest username a forwarded request carried (brute-force detection)
MAX_ACCOUNT = 64  # octets of a username kept in the Via: attackers choose it, so it is bounded
SOURCE_HEADER = b"X-SIPGuard-Source"
DEFAULT_SIP_PORT = 5060
# Requests that create a dialog (RFC 3261 12, RFC 6665, RFC 3515): they get Record-Route when
# initial. Sets of method tokens: `method_raw in` hashes bytes, `method in` an Enum (in Python).
_DIALOG_FORMING = frozenset((b"INVITE", b"SUBSCRIBE", b"REFER", b"NOTIFY"))
# Requests and responses whose Contact is a target that the other side will send requests to.
_CONTACT_BEARING = frozenset((b"REGISTER", b"INVITE", b"SUBSCRIBE", b"REFER", b"NOTIFY", b"UPDATE"))
# Enum members as module names: `Side.INSIDE` is a class attribute lookup (~90 ns on 3.11)
_INSIDE = Side.INSIDE
_OUTSIDE = Side.OUTSIDE
_UDP = Transport.UDP
_TCP = Transport.TCP
_ACK = Method.ACK


@dataclass(frozen=True, slots=True)
class Address:
    """One of sipguard's own addresses, or the upstream's: concrete IP, port and transport."""

    transport: Transport
    host: str
    port: int

    @property
    def hostport(self) -> bytes:
        return format_host(self.host.encode("ascii")) + b":%d" % self.port


@dataclass(frozen=True, slots=True)
class Hop:
    """Where a message goes next. `listener` picks the outside socket that sends a UDP message."""

    side: Side
    transport: Transport
    ip: str
    port: int
    listener: int = 0


@dataclass(slots=True)
class Decision:
    """One per message, so not frozen (cheaper to build). `data` goes to `hop` when there is one."""

    verdict: Verdict
    data: bytes = b""
    hop: Hop | None = None
    kind: str = ""  # method token, "response" or "malformed": what the counters are keyed by


class Router:
    """Stateless routing between the outside listeners and the upstream. One instance per layout."""

    def __init__(self, outside: Sequence[Address], inside: Address, upstream: Address) -> None:
        if not outside:
            raise ValueError("at least one outside listener is needed")
        self._outside = tuple(outside)
        self._upstream = upstream
        inside = Address(
            upstream.transport, inside.host, inside.port
        )  # one transport on the inside
        self._inside = inside
        self._upstream_ip = _normal_ip(upstream.host)
        self._upstream_hop = Hop(Side.INSIDE, upstream.transport, self._upstream_ip, upstream.port)
        self._upstream_stream = upstream.transport is not Transport.UDP  # Content-Length needed
        self._ours = frozenset(
            (_normal_ip(a.host).encode("ascii"), a.port) for a in (*self._outside, inside)
        )
        self._inside_ours = frozenset({(_normal_ip(inside.host).encode("ascii"), inside.port)})
        self._outside_ours = frozenset(
            (_normal_ip(a.host).encode("ascii"), a.port) for a in self._outside
        )
        self._rr_inside = _record_route(inside)
        self._rr_outside = tuple(_record_route(a) for a in self._outside)
        # the Route URIs made from our own Record-Routes, known to point at us without parsing
        self._own_routes = frozenset(
            uri
            for uri in (rr[1:-1] for rr in (self._rr_inside, *self._rr_outside))
            if self._points_at_us(uri, self._ours)
        )
        # "SIP/2.0/UDP host:port;branch=" of each face (outside: per transport), built once
        self._via_inside = _via_head(inside)
        self._via_outside = tuple(
            {t: _via_head(Address(t, a.host, a.port)) for t in Transport} for a in self._outside
        )

    # ---- outside -> inside -------------------------------------------------------------------

    def from_outside(
        self, msg: SipRequest | SipResponse, pkt: Packet, country: str | None
    ) -> Decision:
        if isinstance(msg, SipResponse):
            return self._outside_response(msg, pkt)
        return self._outside_request(msg, pkt, country)

    def _outside_request(self, req: SipRequest, pkt: Packet, country: str | None) -> Decision:
        max_forwards = req.max_forwards()
        if max_forwards == 0:
            return self._too_many_hops(req, pkt)
        vias = req.vias()
        edit = MessageEditor(req)
        _mark_received(edit, vias[0], pkt)
        edit.decrement_max_forwards()
        self._pop_our_routes(req, edit)  # loose routing; the upstream is the next hop regardless
        via = self._via(self._via_inside, self._branch(req, vias[0], pkt), pkt.listener)
        credentials = req.credentials()
        if credentials is not None and credentials.username:
            # the PBX's answer tells whether these credentials were good: remember whose they are
            via += b";%s=%s" % (ACCOUNT_PARAM, encode_account(credentials.username))
        edit.insert_via(via)
        if req.method_raw in _DIALOG_FORMING and req.to_addr().tag is None:
            edit.add_header(b"Record-Route", self._rr_inside, first=True)
            edit.add_header(b"Record-Route", self._rr_outside[pkt.listener], first=True)
        if req.method_raw in _CONTACT_BEARING:
            self._alias_contacts(edit, req.contacts(), pkt)
        if req.has(Hdr.X_SIPGUARD_SOURCE):
            edit.remove_headers(Hdr.X_SIPGUARD_SOURCE)  # nobody outside may speak for sipguard
        edit.add_header(SOURCE_HEADER, _source_value(pkt, country))
        if self._upstream_stream:
            edit.ensure_content_length()
        return Decision(FORWARD, edit.build(), self._upstream_hop)

    def _outside_response(self, resp: SipResponse, pkt: Packet) -> Decision:
        vias = resp.vias()
        if len(vias) < 2 or not self._is_our_via(vias[0], self._outside_ours):
            return Decision(DROP_NOT_OURS)
        edit = MessageEditor(resp)
        _remove_top_via(resp, edit, vias)
        if resp.cseq()[1] in _CONTACT_BEARING:
            self._alias_contacts(edit, resp.contacts(), pkt)
        if self._upstream_stream:
            edit.ensure_content_length()
        return Decision(FORWARD, edit.build(), self._upstream_hop)

    # ---- inside -> outside -------------------------------------------------------------------

    def from_inside(self, msg: SipRequest | SipResponse, pkt: Packet) -> Decision:
        if _normal_ip(pkt.ip) != self._upstream_ip:
            return Decision(DROP_NOT_UPSTREAM)
        if isinstance(msg, SipResponse):
            return self._inside_response(msg)
        return self._inside_request(msg, pkt)

    def _inside_response(self, resp: SipResponse) -> Decision:
        vias = resp.vias()
        if len(vias) < 2 or not self._is_our_via(vias[0], self._inside_ours):
            return Decision(DROP_NOT_OURS)
        hop = _response_hop(vias[1], _listener_of(vias[0]))
        if hop is None:
            return Decision(DROP_UNROUTABLE)
        edit = MessageEditor(resp)
        _remove_top_via(resp, edit, vias)
        if resp.cseq()[1] == b"REGISTER":
            self._restore_contacts(
                edit, resp.contacts()
            )  # phones look for their own Contact in the 200
        if resp.has(Hdr.X_SIPGUARD_SOURCE):
            edit.remove_headers(Hdr.X_SIPGUARD_SOURCE)
        if resp.has(Hdr.SERVER):
            edit.remove_headers(Hdr.SERVER)  # scanners fingerprint the PBX (and its CVEs) by it
        if hop.transport is not _UDP:
            edit.ensure_content_length()
        return Decision(FORWARD, edit.build(), hop)

    def _inside_request(self, req: SipRequest, pkt: Packet) -> Decision:
        if req.max_forwards() == 0:
            return self._too_many_hops(req, pkt)
        vias = req.vias()
        edit = MessageEditor(req)
        _mark_received(edit, vias[0], pkt)
        edit.decrement_max_forwards()
        next_route = self._pop_our_routes(req, edit)
        hop = self._target_of(req, edit, next_route)
        if hop is None:
            if req.method is _ACK:
                return Decision(DROP_UNROUTABLE)
            reply = stateless_reply(req, 404)
            return Decision(
                REJECT_UNROUTABLE, reply, Hop(Side.INSIDE, pkt.transport, pkt.ip, pkt.port)
            )
        head = self._via_outside[hop.listener][hop.transport]
        edit.insert_via(self._via(head, self._branch(req, vias[0], pkt), None))
        if req.method_raw in _DIALOG_FORMING and req.to_addr().tag is None:
            edit.add_header(b"Record-Route", self._rr_outside[hop.listener], first=True)
            edit.add_header(b"Record-Route", self._rr_inside, first=True)
        if req.has(Hdr.X_SIPGUARD_SOURCE):
            edit.remove_headers(Hdr.X_SIPGUARD_SOURCE)
        if hop.transport is not _UDP:
            edit.ensure_content_length()
        return Decision(FORWARD, edit.build(), hop)

    def _target_of(
        self, req: SipRequest, edit: MessageEditor, next_route: NameAddr | None
    ) -> Hop | None:
        """Next hop of a PBX request: the next Route if one is left, else the de-aliased
        Request-URI."""
        if next_route is not None:
            return self._uri_hop(next_route.uri)
        uri = _sip_uri(req.uri)
        if uri is None:
            return None
        token = uri.param(ALIAS_PARAM)
        if token is not None and self._points_at_us(req.uri, self._inside_ours):
            target = decode_alias(token)
            if target is None:
                return None
            edit.set_request_uri(target.uri)
            return self._outside_hop(target.transport, target.ip, target.port)
        return self._uri_hop(req.uri)

    def _uri_hop(self, raw_uri: bytes) -> Hop | None:
        uri = _sip_uri(raw_uri)
        if uri is None:
            return None
        token = uri.param(ALIAS_PARAM)
        if token is not None:
            target = decode_alias(token)
            if target is not None:
                return self._outside_hop(target.transport, target.ip, target.port)
        ip = _ip_literal(uri.host)
        if ip is None:
            return None  # no DNS on the hot path: targets outside are IP literals or aliases
        transport = (
            Transport.TCP if (uri.param(b"transport") or b"").lower() == b"tcp" else Transport.UDP
        )
        return self._outside_hop(transport, ip, uri.port or DEFAULT_SIP_PORT)

    def _outside_hop(self, transport: Transport, ip: str, port: int) -> Hop:
        return Hop(Side.OUTSIDE, transport, ip, port, self._listener_for(transport, ip))

    def _listener_for(self, transport: Transport, ip: str) -> int:
        """The outside listener that sends to `ip`: same transport and IP family when there is
        one."""
        version = 6 if ":" in ip else 4
        best = 0
        for index, face in enumerate(self._outside):
            if (6 if ":" in face.host else 4) != version:
                continue
            if face.transport is transport:
                return index
            best = index
        return best

    # ---- shared pieces -----------------------------------------------------------------------

    def _pop_our_routes(self, req: SipRequest, edit: MessageEditor) -> NameAddr | None:
        """Remove the leading Route entries that name sipguard; return the first one that
        doesn't."""
        routes = req.routes()
        if not routes:
            return None
        ours = 0
        own = self._own_routes
        while ours < len(routes) and (
            routes[ours].uri in own or self._points_at_us(routes[ours].uri, self._ours)
        ):
            ours += 1
        if ours:
            lines = req.indexes(Hdr.ROUTE)
            if len(lines) == len(routes):  # one value per line (the usual): remove whole lines
                for index in lines[:ours]:
                    edit.replace(*req.field_span(index), b"")
            else:
                _remove_leading_values(req, edit, req.values(Hdr.ROUTE), ours)
        return routes[ours] if ours < len(routes) else None

    def _too_many_hops(self, req: SipRequest, pkt: Packet) -> Decision:
        if req.method is _ACK:
            return Decision(DROP_TOO_MANY_HOPS)  # never answer an ACK
        reply = stateless_reply(req, 483)
        return Decision(REJECT_TOO_MANY_HOPS, reply, reply_hop(pkt))

    def _alias_contacts(
        self, edit: MessageEditor, contacts: Sequence[NameAddr], pkt: Packet
    ) -> None:
        for contact in contacts:
            uri = _sip_uri(contact.uri)
            if uri is None:
                continue
            token = encode_alias(pkt.transport, pkt.ip, pkt.port, contact.uri)
            user = (uri.user + b"@") if uri.user else b""
            aliased = b"sip:%s%s;%s=%s" % (user, self._inside.hostport, ALIAS_PARAM, token)
            if self._inside.transport is _TCP:
                aliased += b";transport=tcp"
            edit.replace(contact.uri_start, contact.uri_end, aliased)

    def _restore_contacts(self, edit: MessageEditor, contacts: Sequence[NameAddr]) -> None:
        for contact in contacts:
            uri = _sip_uri(contact.uri)
            token = uri.param(ALIAS_PARAM) if uri is not None else None
            target = decode_alias(token) if token is not None else None
            if target is not None:
                edit.replace(contact.uri_start, contact.uri_end, target.uri)

    def _points_at_us(self, raw_uri: bytes, ours: frozenset[tuple[bytes, int]]) -> bool:
        uri = _sip_uri(raw_uri)
        if uri is None:
            return False
        ip = _ip_literal(uri.host)
        return ip is not None and (ip.encode("ascii"), uri.port or DEFAULT_SIP_PORT) in ours

    def _is_our_via(self, via: Via, ours: frozenset[tuple[bytes, int]]) -> bool:
        if via.branch is None or not via.branch.startswith(OUR_BRANCH):
            return False
        ip = _ip_literal(via.host)
        return ip is not None and (ip.encode("ascii"), via.port or DEFAULT_SIP_PORT) in ours

    def _via(self, head: bytes, branch: bytes, listener: int | None) -> bytes:
        value = head + branch
        if listener is not None:
            value += b";%s=%d" % (LISTENER_PARAM, listener)
        return value

    def _branch(self, req: SipRequest, top: Via, pkt: Packet) -> bytes:
        """Deterministic (RFC 3261 16.11): a retransmission, its CANCEL and non-2xx ACK get the
        same branch."""
        if top.branch is not None and top.branch.startswith(MAGIC_COOKIE):
            key = b"|".join(
                (top.branch, top.host, b"%d" % (top.port or 0), pkt.ip.encode(), b"%d" % pkt.port)
            )
        else:  # RFC 2543 peer: hash what identifies its transaction
            cseq_number, _ = req.cseq()
            key = b"|".join(
                (
                    req.uri,
                    req.to_addr().tag or b"",
                    req.from_addr().tag or b"",
                    req.call_id(),
                    b"%d" % cseq_number,
                    top.host,
                    b"%d" % (top.port or 0),
                    pkt.ip.encode(),
                )
            )
        return OUR_BRANCH + hashlib.blake2b(key, digest_size=10).hexdigest().encode("ascii")


def _remove_leading_values(
    msg: SipRequest, edit: MessageEditor, values: Sequence[HeaderValue], count: int
) -> None:
    """Remove the first `count` values of a list header: whole lines, then the head of a shared
    line."""
    index = 0
    while index < count:
        field_index = values[index].field_index
        end = index  # values of one header line are adjacent in `values`
        while end < len(values) and values[end].field_index == field_index:
            end += 1
        if end <= count:  # every value of this line goes: remove the line
            start, stop = msg.field_span(field_index)
            edit.replace(start, stop, b"")
            index = end
        else:  # the line keeps some values: remove up to the first one kept
            edit.replace(values[index].start, values[count].start, b"")
            index = count


def _remove_top_via(resp: SipResponse, edit: MessageEditor, vias: Sequence[Via]) -> None:
    """`edit.remove_top_via()`; when every Via line holds one value (as sipguard writes its own)
    the first line goes whole, without splitting its value again."""
    if resp.count(Hdr.VIA) == len(vias):
        edit.replace(*resp.field_span(resp.index(Hdr.VIA)), b"")
    else:
        edit.remove_top_via()


def encode_account(username: bytes) -> bytes:
    """A Via-parameter-safe form of a username (base64url, no padding)."""
    return base64.urlsafe_b64encode(username[:MAX_ACCOUNT]).rstrip(b"=")


def via_account(our_via: Via) -> str | None:
    """The username sipguard put in its own Via, or None for a request without credentials."""
    for name, value in our_via.params:
        if name == ACCOUNT_PARAM and value is not None:
            return _decode_account(value)
    return None


@functools.lru_cache(maxsize=8192)  # an account answers many requests; bounded
def _decode_account(value: bytes) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw.decode("utf-8", "backslashreplace")


def reply_hop(pkt: Packet) -> Hop:
    """Replies go to the packet's source, never to a Via address (no reflection to third
    parties)."""
    return Hop(pkt.side, pkt.transport, pkt.ip, pkt.port, pkt.listener)


def reply_tag(data: bytes) -> bytes:
    """The same To tag for every retransmission of a request (the same bytes), without keeping
    state (RFC 3261 16.11); also for requests the parser refused."""
    return b"sg" + hashlib.blake2b(data[:512], digest_size=6).hexdigest().encode("ascii")


def stateless_reply(
    req: SipRequest, status: int, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> bytes:
    """A response of sipguard's own to `req` (the caller checks that it is not an ACK)."""
    return build_response(req, status, to_tag=reply_tag(req.raw), extra_headers=extra)


_BARE_RPORT = (b"rport", None)


def _mark_received(edit: MessageEditor, top: Via, pkt: Packet) -> None:
    """RFC 3261 18.2.1 `received` and RFC 3581 `rport` on the sender's Via."""
    if top.has_rport:
        if (
            len(top.params) == 2
            and top.params[1] == _BARE_RPORT
            and top.params[0][0] == b"branch"
            and edit.message.raw.endswith(b";rport", 0, top.end)
        ):  # the usual `;branch=...;rport`: the two edits below as one, without a parameter scan
            edit.replace(
                top.end - 6,
                top.end,
                b";rport=%d;received=%s" % (pkt.port, pkt.ip.encode("ascii")),
            )
            return
        edit.set_via_param(top, b"received", pkt.ip.encode("ascii"))
        edit.set_via_param(top, b"rport", b"%d" % pkt.port)
    elif _ip_literal(top.host) != _normal_ip(pkt.ip):
        edit.set_via_param(top, b"received", pkt.ip.encode("ascii"))


def _response_hop(via: Via, listener: int) -> Hop | None:
    """Where a response goes: the Via's received/rport, else its sent-by (RFC 3261 18.2.2, RFC
    3581)."""
    host = via.received if via.received is not None else via.host
    return _hop_to(host, via.rport or via.port or DEFAULT_SIP_PORT, via.transport, listener)


# The same few clients get every response: their (frozen, shared) Hop is built once. Bounded, so
# made-up Via addresses only cost misses.
@functools.lru_cache(maxsize=8192)
def _hop_to(host: bytes, port: int, transport: bytes, listener: int) -> Hop | None:
    ip = _ip_literal(host)
    if ip is None or transport not in (b"UDP", b"TCP"):
        return None
    kind = _UDP if transport == b"UDP" else _TCP
    return Hop(_OUTSIDE, kind, ip, port, listener)


def _listener_of(our_via: Via) -> int:
    for name, value in our_via.params:
        if name == LISTENER_PARAM and value is not None and value.isdigit():
            return int(value)
    return 0


def _source_value(pkt: Packet, country: str | None) -> bytes:
    return _source_text(pkt.ip, pkt.port, pkt.transport is _TCP, country)


# One value per phone (address, port, country) and many messages each: built once. Bounded.
@functools.lru_cache(maxsize=8192)
def _source_text(ip: str, port: int, tcp: bool, country: str | None) -> bytes:
    value = b"%s:%d;transport=%s" % (
        format_host(ip.encode("ascii")),
        port,
        b"tcp" if tcp else b"udp",
    )
    if country:
        value += b";country=" + country.encode("ascii")
    return value


def _via_head(face: Address) -> bytes:
    """`SIP/2.0/UDP host:port;branch=`: the start of every Via sipguard puts on a face."""
    return b"SIP/2.0/%s %s;branch=" % (face.transport.name.encode("ascii"), face.hostport)


def _record_route(face: Address) -> bytes:
    suffix = b";transport=tcp" if face.transport is Transport.TCP else b""
    return b"<sip:%s;lr%s>" % (face.hostport, suffix)


def _sip_uri(raw: bytes) -> SipUri | None:
    try:
        uri = parse_uri(raw)
    except SipParseError:
        return None
    return uri if isinstance(uri, SipUri) else None


# The same few hosts (the PBX, the phones) appear in every message, and ipaddress is slow (~2 us):
# remember recent answers. Bounded, so a flood of made-up hosts only costs misses.
@functools.lru_cache(maxsize=8192)
def _ip_literal(host: bytes) -> str | None:
    try:
        return str(ipaddress.ip_address(host.decode("ascii")))
    except (UnicodeDecodeError, ValueError):
        return None


@functools.lru_cache(maxsize=8192)
def _normal_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text
