"""SIP message types: header slots, methods, and the lazily-parsed request/response.

The parser (parser.py) only finds the header lines, their names and slots; values are parsed
when an accessor asks for them, and the structured results are cached on the message.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from itertools import accumulate
from typing import NamedTuple

from .auth import DigestCredentials, parse_credentials
from .errors import SipParseError
from .limits import MAX_VIA_VALUES
from .uri import (
    NameAddr,
    SipUri,
    Via,
    name_addr_value,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_list,
    via_value,
)

__all__ = [
    "HEADER_IDS",
    "HEADER_NAMES",
    "METHODS",
    "NAME_PART_SLOTS",
    "Hdr",
    "HeaderField",
    "HeaderValue",
    "Method",
    "SipMessage",
    "SipRequest",
    "SipResponse",
]


class Hdr(enum.IntEnum):
    """Header slots. Long and compact names share one slot (RFC 3261 7.3.3 and later RFCs).

    The first seven are the ones the parser itself reads (mandatory or single-valued); keep
    their numbers: parser.py and replies.py use the plain ints 0..6 for them.
    """

    VIA = 0
    FROM = 1
    TO = 2
    CALL_ID = 3
    CSEQ = 4
    MAX_FORWARDS = 5
    CONTENT_LENGTH = 6
    CONTACT = 7
    CONTENT_TYPE = 8
    CONTENT_ENCODING = 9
    USER_AGENT = 10
    SERVER = 11
    AUTHORIZATION = 12
    PROXY_AUTHORIZATION = 13
    WWW_AUTHENTICATE = 14
    PROXY_AUTHENTICATE = 15
    ROUTE = 16
    RECORD_ROUTE = 17
    PATH = 18
    EXPIRES = 19
    SUPPORTED = 20
    REQUIRE = 21
    PROXY_REQUIRE = 22
    UNSUPPORTED = 23
    ALLOW = 24
    SUBJECT = 25
    EVENT = 26
    REFER_TO = 27
    REFERRED_BY = 28
    ALLOW_EVENTS = 29
    SESSION_EXPIRES = 30
    ACCEPT_CONTACT = 31
    REJECT_CONTACT = 32
    REQUEST_DISPOSITION = 33
    IDENTITY = 34
    IDENTITY_INFO = 35
    RETRY_AFTER = 36
    DATE = 37
    X_SIPGUARD_SOURCE = 38
    ACCEPT = 39
    CALL_INFO = 40
    WARNING = 41
    ORGANIZATION = 42
    P_ASSERTED_IDENTITY = 43
    P_PREFERRED_IDENTITY = 44
    PRIVACY = 45
    REASON = 46
    RSEQ = 47
    RACK = 48
    SUBSCRIPTION_STATE = 49
    MIN_EXPIRES = 50
    REPLACES = 51
    OTHER = 52


N_SLOTS = len(Hdr)

# canonical spelling used when sipguard writes a header, and in messages
HEADER_NAMES: dict[Hdr, bytes] = {
    Hdr.VIA: b"Via",
    Hdr.FROM: b"From",
    Hdr.TO: b"To",
    Hdr.CALL_ID: b"Call-ID",
    Hdr.CSEQ: b"CSeq",
    Hdr.MAX_FORWARDS: b"Max-Forwards",
    Hdr.CONTENT_LENGTH: b"Content-Length",
    Hdr.CONTACT: b"Contact",
    Hdr.CONTENT_TYPE: b"Content-Type",
    Hdr.CONTENT_ENCODING: b"Content-Encoding",
    Hdr.USER_AGENT: b"User-Agent",
    Hdr.SERVER: b"Server",
    Hdr.AUTHORIZATION: b"Authorization",
    Hdr.PROXY_AUTHORIZATION: b"Proxy-Authorization",
    Hdr.WWW_AUTHENTICATE: b"WWW-Authenticate",
    Hdr.PROXY_AUTHENTICATE: b"Proxy-Authenticate",
    Hdr.ROUTE: b"Route",
    Hdr.RECORD_ROUTE: b"Record-Route",
    Hdr.PATH: b"Path",
    Hdr.EXPIRES: b"Expires",
    Hdr.SUPPORTED: b"Supported",
    Hdr.REQUIRE: b"Require",
    Hdr.PROXY_REQUIRE: b"Proxy-Require",
    Hdr.UNSUPPORTED: b"Unsupported",
    Hdr.ALLOW: b"Allow",
    Hdr.SUBJECT: b"Subject",
    Hdr.EVENT: b"Event",
    Hdr.REFER_TO: b"Refer-To",
    Hdr.REFERRED_BY: b"Referred-By",
    Hdr.ALLOW_EVENTS: b"Allow-Events",
    Hdr.SESSION_EXPIRES: b"Session-Expires",
    Hdr.ACCEPT_CONTACT: b"Accept-Contact",
    Hdr.REJECT_CONTACT: b"Reject-Contact",
    Hdr.REQUEST_DISPOSITION: b"Request-Disposition",
    Hdr.IDENTITY: b"Identity",
    Hdr.IDENTITY_INFO: b"Identity-Info",
    Hdr.RETRY_AFTER: b"Retry-After",
    Hdr.DATE: b"Date",
    Hdr.X_SIPGUARD_SOURCE: b"X-SIPGuard-Source",
    Hdr.ACCEPT: b"Accept",
    Hdr.CALL_INFO: b"Call-Info",
    Hdr.WARNING: b"Warning",
    Hdr.ORGANIZATION: b"Organization",
    Hdr.P_ASSERTED_IDENTITY: b"P-Asserted-Identity",
    Hdr.P_PREFERRED_IDENTITY: b"P-Preferred-Identity",
    Hdr.PRIVACY: b"Privacy",
    Hdr.REASON: b"Reason",
    Hdr.RSEQ: b"RSeq",
    Hdr.RACK: b"RAck",
    Hdr.SUBSCRIPTION_STATE: b"Subscription-State",
    Hdr.MIN_EXPIRES: b"Min-Expires",
    Hdr.REPLACES: b"Replaces",
}

# compact forms: RFC 3261 7.3.3 (c e f i k l m s t v), RFC 3515 (r), RFC 3892 (b), RFC 4028 (x),
# RFC 3841 (a j d), RFC 6665 (o u), RFC 4474 / 8224 (y n)
_COMPACT: dict[bytes, Hdr] = {
    b"v": Hdr.VIA,
    b"f": Hdr.FROM,
    b"t": Hdr.TO,
    b"i": Hdr.CALL_ID,
    b"m": Hdr.CONTACT,
    b"l": Hdr.CONTENT_LENGTH,
    b"k": Hdr.SUPPORTED,
    b"s": Hdr.SUBJECT,
    b"e": Hdr.CONTENT_ENCODING,
    b"c": Hdr.CONTENT_TYPE,
    b"o": Hdr.EVENT,
    b"r": Hdr.REFER_TO,
    b"b": Hdr.REFERRED_BY,
    b"u": Hdr.ALLOW_EVENTS,
    b"x": Hdr.SESSION_EXPIRES,
    b"a": Hdr.ACCEPT_CONTACT,
    b"j": Hdr.REJECT_CONTACT,
    b"d": Hdr.REQUEST_DISPOSITION,
    b"y": Hdr.IDENTITY,
    b"n": Hdr.IDENTITY_INFO,
}

HEADER_IDS: dict[bytes, Hdr] = {
    **{name.lower(): h for h, name in HEADER_NAMES.items()},
    **_COMPACT,
}
"""Lower-case header name (long or compact) -> slot."""

SLOTS: dict[bytes, int] = {k: int(v) for k, v in HEADER_IDS.items()}
"""The same table with plain ints, for the parser's inner loop (STYLE D5)."""

OTHER = int(Hdr.OTHER)


class Method(enum.Enum):
    """Request methods (case-sensitive, RFC 3261 7.1); anything else is OTHER (see method_raw)."""

    INVITE = b"INVITE"
    ACK = b"ACK"
    BYE = b"BYE"
    CANCEL = b"CANCEL"
    REGISTER = b"REGISTER"
    OPTIONS = b"OPTIONS"
    PRACK = b"PRACK"
    SUBSCRIBE = b"SUBSCRIBE"
    NOTIFY = b"NOTIFY"
    PUBLISH = b"PUBLISH"
    INFO = b"INFO"
    REFER = b"REFER"
    MESSAGE = b"MESSAGE"
    UPDATE = b"UPDATE"
    OTHER = b""


METHODS: dict[bytes, Method] = {m.value: m for m in Method if m is not Method.OTHER}


class HeaderField(NamedTuple):
    """One header field: `start..end` is the whole line incl. CRLF and folded continuations,
    `value_start..value_end` the raw value (leading/trailing LWS stripped), all in `raw`."""

    slot: int
    name: bytes
    start: int
    end: int
    value_start: int
    value_end: int


class HeaderValue(NamedTuple):
    """One element of a comma-separated header value list; `start..end` is its span in `raw`.

    `field_index` indexes `msg.headers`; `index_in_field` counts the non-empty elements.
    """

    text: bytes
    start: int
    end: int
    field_index: int
    index_in_field: int


RawField = tuple[int, bytes, int, int, int, int]
"""(slot, name, start, end, value_start, value_end): the layout of HeaderField as a plain tuple."""


def _name_variants(name: bytes) -> set[bytes]:
    """`Call-ID` -> Call-ID, call-id, CALL-ID, Call-Id: the spellings phones and PBXs send."""
    words = name.split(b"-")
    return {
        name,
        name.lower(),
        name.upper(),
        b"-".join(w[:1].upper() + w[1:].lower() for w in words),
        b"-".join(w[:1].upper() + w[1:] for w in words),
    }


NAME_PART_SLOTS: dict[bytes, int] = {
    v + sep: int(h)
    for name, h in [*((n, h) for h, n in HEADER_NAMES.items()), *_COMPACT.items()]
    for v in _name_variants(name)
    for sep in (b":", b": ", b":\t", b" : ")
}
"""A header line's name part as the parser splits it off (name, optional WSP, colon, optional
WSP), in the spellings seen on the wire, -> slot: one dict lookup per line instead of
strip + lower + lookup. Anything else takes the general way (`slot_of_name_part`)."""


def slot_of_name_part(np: bytes) -> int:
    """Slot of a name part (`Name<WSP>:<LWS>`) whatever its spelling; OTHER when unknown."""
    return SLOTS.get(np[: np.find(b":")].rstrip(b" \t").lower(), OTHER)


_FOLD = re.compile(rb"[ \t]*\r\n[ \t]+")


def unfold(v: bytes) -> bytes:
    """Collapse every fold (CRLF + WSP, with WSP before it) to one SP (RFC 3261 7.3.1)."""
    if b"\r" in v:
        return _FOLD.sub(b" ", v).strip(b" ")
    return v


def _line_value(np: bytes, v: bytes) -> bytes:
    """The value of a header line that went through the parser's slow path (folds), with the
    same result `get` has always had: after the colon, SP/HTAB stripped, folds collapsed."""
    line = np + v
    v = line[line.find(b":") + 1 :].strip(b" \t")
    if b"\r" in v:
        return _FOLD.sub(b" ", v).strip(b" ")
    return v


_VIA = 0
_FROM = 1
_TO = 2
_CALL_ID = 3
_CONTACT = int(Hdr.CONTACT)
_ROUTE = int(Hdr.ROUTE)
_RECORD_ROUTE = int(Hdr.RECORD_ROUTE)
_USER_AGENT = int(Hdr.USER_AGENT)
_AUTHORIZATION = int(Hdr.AUTHORIZATION)
_PROXY_AUTHORIZATION = int(Hdr.PROXY_AUTHORIZATION)
_HAUTH = Hdr.AUTHORIZATION
_HPROXY_AUTH = Hdr.PROXY_AUTHORIZATION
_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__


@dataclass(slots=True, eq=False)
class _Message:
    """Shared part of SipRequest and SipResponse.

    The parser stores the header section split at each header name (`_p`): the start line,
    then for header field i its name part `_p[2i+1]` (name, optional WSP, colon, leading LWS)
    and its value `_p[2i+2]` (up to the CRLF ending the field; folded continuation lines
    merged, trailing SP/HTAB kept), and the slots (`_sl`, one octet per field: `in`, count()
    and index() of a small int are memchr-fast on bytes). Positions in `raw` are computed on
    demand from the part lengths: value i starts at `len(b"".join(_p[:2i+2])) + 2i + 2` (the
    parts plus the CRLF before each field). `_fold` is True when a field is folded: then the
    accessors that return raw values take the general path.
    """

    raw: bytes
    """The whole message as it will be forwarded (cut at Content-Length for datagrams)."""
    body_offset: int
    _p: list[bytes] = field(repr=False)
    _sl: bytes = field(repr=False)
    _fold: bool = field(repr=False)
    _cseq: tuple[int, bytes] = field(repr=False)
    _mf: int | None = field(repr=False)
    _cl: int | None = field(repr=False)
    _acc: list[int] | None = field(init=False, default=None, repr=False)
    _headers: list[HeaderField] | None = field(init=False, default=None, repr=False)
    _vias: list[Via] | None = field(init=False, default=None, repr=False)
    _from: NameAddr | None = field(init=False, default=None, repr=False)
    _to: NameAddr | None = field(init=False, default=None, repr=False)
    _contacts: list[NameAddr] | None = field(init=False, default=None, repr=False)
    _star: bool = field(init=False, default=False, repr=False)
    _routes: list[NameAddr] | None = field(init=False, default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.raw == other.raw

    __hash__ = None  # type: ignore[assignment]

    # -- positions (computed on demand) ----------------------------------------------------

    def field_start(self, i: int) -> int:
        """Offset in `raw` of header field `i` (an index into `headers`)."""
        if not i:
            return len(self._p[0]) + 2
        acc = self._acc
        if acc is None:
            if i < 8:  # cheaper than building the table for the first few lines
                return len(b"".join(self._p[: 2 * i + 1])) + 2 * i + 2
            acc = self._acc = list(accumulate(map(len, self._p), initial=0))
        return acc[2 * i + 1] + 2 * i + 2

    def field_span(self, i: int) -> tuple[int, int]:
        """(start, end) of header field `i` in `raw`: the whole line(s) including CRLF."""
        s = self.field_start(i)
        p = self._p
        return s, s + len(p[2 * i + 1]) + len(p[2 * i + 2]) + 2

    def value_span(self, i: int) -> tuple[int, int]:
        """(value_start, value_end) of header field `i` in `raw` (LWS around it excluded)."""
        p = self._p
        vs = self.field_start(i) + len(p[2 * i + 1])
        return vs, vs + len(p[2 * i + 2].rstrip(b" \t"))

    def raw_field(self, i: int) -> RawField:
        """Header field `i` as a plain (slot, name, start, end, value_start, value_end)."""
        p = self._p
        np = p[2 * i + 1]
        v = p[2 * i + 2]
        s = self.field_start(i)
        vs = s + len(np)
        return (
            self._sl[i],
            np[: np.find(b":")].rstrip(b" \t"),
            s,
            vs + len(v) + 2,
            vs,
            vs + len(v.rstrip(b" \t")),
        )

    def index(self, h: Hdr) -> int:
        """Index (into `headers`) of the first field of slot `h`, -1 when absent."""
        sl = self._sl
        return sl.index(h) if h in sl else -1

    def indexes(self, h: int) -> list[int]:
        """Indexes (into `headers`) of every field of slot `h`, in order."""
        sl = self._sl
        c = sl.count(h)
        if c <= 1:
            return [sl.index(h)] if c else []
        i = sl.index(h)
        if c == 2:  # two Route / Record-Route / Via lines: no loop (~180 ns less)
            return [i, sl.index(h, i + 1)]
        out = [i]
        for _ in range(c - 1):
            i = sl.index(h, i + 1)
            out.append(i)
        return out

    # -- raw header access ------------------------------------------------------------------

    @property
    def headers(self) -> list[HeaderField]:
        """All header fields in order (built on first use)."""
        hs = self._headers
        if hs is None:
            # one pass with a running offset (raw_field per field would sum the lengths again)
            p = self._p
            hs = []
            pos = len(p[0]) + 2
            for i, h in enumerate(self._sl):
                np = p[2 * i + 1]
                v = p[2 * i + 2]
                vs = pos + len(np)
                end = vs + len(v) + 2
                hs.append(
                    _new(
                        HeaderField,
                        (
                            h,
                            np[: np.find(b":")].rstrip(b" \t"),
                            pos,
                            end,
                            vs,
                            vs + len(v.rstrip(b" \t")),
                        ),
                    )
                )
                pos = end
            self._headers = hs
        return hs

    @property
    def body(self) -> bytes:
        """The body (empty when there is none)."""
        return self.raw[self.body_offset :]

    def has(self, h: Hdr) -> bool:
        """True when at least one header field of slot `h` is present."""
        return h in self._sl

    def count(self, h: Hdr) -> int:
        """Number of header fields (lines) of slot `h`."""
        return self._sl.count(h)

    def _value(self, i: int) -> bytes:
        """Raw value of header field `i` (SP/HTAB around it stripped, folds collapsed)."""
        p = self._p
        if self._fold:
            return _line_value(p[2 * i + 1], p[2 * i + 2])
        return p[2 * i + 2].rstrip(b" \t")

    def get(self, h: Hdr) -> bytes | None:
        """Raw value of the first header field of slot `h` (folds collapsed to SP), or None."""
        sl = self._sl
        if h not in sl:
            return None
        return self._value(sl.index(h))

    def get_all(self, h: Hdr) -> list[bytes]:
        """Raw values of every header field of slot `h`, one item per line, in order."""
        return [self._value(i) for i in self.indexes(h)]

    def get_named(self, name: bytes) -> list[bytes]:
        """Raw values of every header field called `name` (case-insensitive), in order."""
        lname = name.lower()
        p = self._p
        return [
            self._value(i)
            for i in range(len(self._sl))
            if p[2 * i + 1].partition(b":")[0].rstrip(b" \t").lower() == lname
        ]

    def _spans(self, i: int) -> list[tuple[int, int]]:
        """List element spans of header field `i`; fast path for a value without a comma."""
        vs, ve = self.value_span(i)
        raw = self.raw
        if raw.find(b",", vs, ve) < 0:
            return [(vs, ve)]
        return split_list(raw, vs, ve)

    def values(self, h: Hdr) -> list[HeaderValue]:
        """Comma-separated list elements of slot `h` across all its lines, in order.

        Splits outside quoted strings and `<...>`; empty elements are skipped.
        """
        raw = self.raw
        fold = self._fold  # without a fold no value holds a CR: unfold would change nothing
        out: list[HeaderValue] = []
        for fi in self.indexes(h):
            vs, ve = self.value_span(fi)
            if raw.find(b",", vs, ve) < 0:  # one element (the usual line): no list to split
                if vs < ve:
                    v = raw[vs:ve]
                    out.append(_new(HeaderValue, (unfold(v) if fold else v, vs, ve, fi, 0)))
                continue
            k = 0
            for s, e in split_list(raw, vs, ve):
                if s < e:
                    v = raw[s:e]
                    out.append(_new(HeaderValue, (unfold(v) if fold else v, s, e, fi, k)))
                    k += 1
        return out

    # -- structured accessors (parsed on first call, cached) --------------------------------

    def vias(self) -> list[Via]:
        """Every Via value, top first (several per line and across lines)."""
        vs = self._vias
        if vs is None:
            sl = self._sl
            p = self._p
            vs = []
            i = sl.index(_VIA)  # the parser guarantees one
            n = sl.count(_VIA)
            while True:
                v = via_value(p[2 * i + 2], len(b"".join(p[: 2 * i + 2])) + 2 * i + 2)
                if v is not None:
                    vs.append(v)
                else:
                    raw = self.raw
                    for s, e in self._spans(i):
                        if s == e:
                            raise SipParseError("empty Via value")
                        vs.append(parse_via(raw, s, e))
                n -= 1
                if not n:
                    break
                i = sl.index(_VIA, i + 1)
            if len(vs) > MAX_VIA_VALUES:
                raise SipParseError("too many Via values")
            self._vias = vs
        return vs

    def top_via(self) -> Via:
        """The first Via value (the parser guarantees a Via header exists)."""
        return self.vias()[0]

    def _single_addr(self, h: int) -> NameAddr:
        i = self._sl.index(h)
        p = self._p
        a = name_addr_value(p[2 * i + 2], len(b"".join(p[: 2 * i + 2])) + 2 * i + 2)
        if a is not None:
            return a
        spans = self._spans(i)
        if len(spans) != 1:
            raise SipParseError("more than one address in a single-valued header")
        s, e = spans[0]
        return parse_name_addr(self.raw, s, e)

    def from_addr(self) -> NameAddr:
        """The From header as a name-addr (tag in `.tag`)."""
        a = self._from
        if a is None:
            a = self._from = self._single_addr(_FROM)
        return a

    def to_addr(self) -> NameAddr:
        """The To header as a name-addr (tag in `.tag`)."""
        a = self._to
        if a is None:
            a = self._to = self._single_addr(_TO)
        return a

    def _addr_list(self, h: int, star: bool = False) -> list[NameAddr]:
        """Addresses of every field of slot `h`; with `star`, a `*` element sets `_star`."""
        sl = self._sl
        c = sl.count(h)
        if not c:
            return []
        p = self._p
        if c == 1:  # the usual case: one line, one canonical address
            fi = sl.index(h)
            v = p[2 * fi + 2]
            if v[:1] != b"*":
                a = name_addr_value(v, len(b"".join(p[: 2 * fi + 2])) + 2 * fi + 2)
                if a is not None:
                    return [a]
            fis = [fi]
        else:
            fis = self.indexes(h)
        raw = self.raw
        out: list[NameAddr] = []
        for fi in fis:
            v = p[2 * fi + 2]
            if v[:1] != b"*":
                a = name_addr_value(v, len(b"".join(p[: 2 * fi + 2])) + 2 * fi + 2)
                if a is not None:
                    out.append(a)
                    continue
            for s, e in self._spans(fi):
                if s == e:
                    raise SipParseError(
                        "empty Contact value" if star else "empty element in an address list"
                    )
                if star and raw[s:e] == b"*":
                    self._star = True
                else:
                    out.append(parse_name_addr(raw, s, e))
        return out

    def contacts(self) -> list[NameAddr]:
        """Contact values in order; empty for `Contact: *` (see is_star_contact)."""
        cs = self._contacts
        if cs is None:
            self._star = False
            cs = self._addr_list(_CONTACT, True)
            if self._star and cs:
                raise SipParseError("Contact '*' mixed with addresses")
            self._contacts = cs
        return cs

    def is_star_contact(self) -> bool:
        """True for `Contact: *` (a REGISTER removing all bindings)."""
        self.contacts()
        return self._star

    def routes(self) -> list[NameAddr]:
        """Route values in order."""
        rs = self._routes
        if rs is None:
            rs = self._routes = self._addr_list(_ROUTE)
        return rs

    def record_routes(self) -> list[NameAddr]:
        """Record-Route values in order."""
        return self._addr_list(_RECORD_ROUTE)

    def call_id(self) -> bytes:
        """The Call-ID (mandatory: the parser guarantees it is present)."""
        return self._value(self._sl.index(_CALL_ID))

    def cseq(self) -> tuple[int, bytes]:
        """(sequence number, method token), validated by the parser."""
        return self._cseq

    def max_forwards(self) -> int | None:
        """Max-Forwards (0..255, validated by the parser), None when absent."""
        return self._mf

    def content_length(self) -> int | None:
        """Content-Length (validated by the parser), None when absent."""
        return self._cl

    def user_agent(self) -> bytes | None:
        """The User-Agent value (raw), None when absent."""
        sl = self._sl
        if _USER_AGENT not in sl:
            return None
        return self._value(sl.index(_USER_AGENT))

    def credentials(self) -> DigestCredentials | None:
        """Credentials from the first Authorization, else the first Proxy-Authorization.

        Never raises: a malformed credentials value gives what could be read (see auth.py).
        """
        sl = self._sl
        if _AUTHORIZATION in sl:
            return parse_credentials(_HAUTH, self._p[2 * sl.index(_AUTHORIZATION) + 2])
        if _PROXY_AUTHORIZATION in sl:
            return parse_credentials(_HPROXY_AUTH, self._p[2 * sl.index(_PROXY_AUTHORIZATION) + 2])
        return None

    def validate(self) -> None:
        """Parse every structured header a proxy relies on; raise SipParseError if any is bad.

        Checks all Via values, From, To, Contact, Route and Record-Route, and the URIs of
        From/To/Contact (sip/sips/tel structurally, other schemes by their scheme only).
        Call it before forwarding a message from an untrusted peer. The results are cached, so
        the accessors called afterwards do not parse again.
        """
        self.vias()
        f = self.from_addr()
        t = self.to_addr()
        cs = self.contacts()
        sl = self._sl
        if _ROUTE in sl:
            self.routes()
        if _RECORD_ROUTE in sl:
            self.record_routes()
        parse_uri(f.uri)
        parse_uri(t.uri)
        for a in cs:
            parse_uri(a.uri)


@dataclass(slots=True, eq=False)
class SipRequest(_Message):
    """A parsed request. `uri_start..uri_end` is the Request-URI's span in `raw`."""

    method: Method
    method_raw: bytes
    uri: bytes
    uri_start: int
    uri_end: int

    def __repr__(self) -> str:
        return f"SipRequest({self.method_raw!r} {self.uri!r}, {len(self.raw)} octets)"

    def request_uri(self) -> SipUri | None:
        """The Request-URI parsed, None when its scheme is not sip/sips (tel/other: 416 case)."""
        u = parse_uri(self.uri)
        return u if isinstance(u, SipUri) else None

    def validate(self) -> None:
        """As `_Message.validate`, plus the Request-URI: a sip/sips/tel R-URI must be well
        formed and must not carry `?headers` (RFC 3261 19.1.5, RFC 4475 escruri)."""
        _Message.validate(self)
        u = parse_uri(self.uri)
        if type(u) is SipUri and u.headers is not None:
            raise SipParseError("headers in the Request-URI")


@dataclass(slots=True, eq=False)
class SipResponse(_Message):
    """A parsed response."""

    status: int
    reason: bytes

    def __repr__(self) -> str:
        return f"SipResponse({self.status} {self.reason!r}, {len(self.raw)} octets)"


SipMessage = SipRequest | SipResponse
