"""Byte-level parsing of SIP header values: URIs, name-addr, Via, parameters, comma lists.

Everything stays `bytes`; nothing is decoded. The functions work on `raw[start:end]` spans of a
message so the results can carry positions in `raw` (the editor rewrites by span).

Linear whitespace inside a header value (SP, HTAB and folds, i.e. CRLF followed by SP/HTAB) is
normalised with `_lws`, which maps every CR, LF and HTAB to SP: the length does not change, so an
offset in the normalised copy is an offset in `raw`. A bare CR or LF cannot reach these
functions: the parser rejects them in the header section.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from .errors import SipParseError

__all__ = [
    "NameAddr",
    "OtherUri",
    "Params",
    "SipUri",
    "TelUri",
    "Via",
    "format_host",
    "name_addr_from_line",
    "name_addr_value",
    "param_spans",
    "parse_name_addr",
    "parse_params",
    "parse_uri",
    "parse_via",
    "split_host_port",
    "split_list",
    "unquote",
    "via_from_line",
    "via_value",
]

Params = tuple[tuple[bytes, bytes | None], ...]
"""`;name[=value]` parameters in order; names lower-cased, values raw (quotes kept)."""

_ALNUM = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN_CHARS = _ALNUM + b"-.!%*_+`'~"
"""RFC 3261 25.1 token."""
_SCHEME_CHARS = _ALNUM + b"+-."
_HOST_CHARS = _ALNUM + b"-._"  # `_` is not in RFC 3261's hostname, but real names carry it
_IPV6_CHARS = b"0123456789abcdefABCDEF:."
_PARAM_VALUE_CHARS = TOKEN_CHARS + b"[]:"  # token / host (IPv6 references, RFC 5118 4.5)
_WS = b" \t\r\n"
_NO_PARAMS: Params = ()
_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (~130 ns less)

# Fast paths: one C-level regex match for the canonical shapes (no LWS oddities, no quoted
# parameter values); anything else goes through the general code below, which accepts the
# full grammar. The results are identical (tests/core/test_uri.py checks both paths).
_T = rb"!%'*+\-.0-9A-Z_`a-z~"  # token characters as a regex class body
_CANON_PARAMS = rb"((?:;[" + _T + rb"]+(?:=[" + _T + rb"\[\]:]+)?)*)"
_VIA_BODY = (
    rb"(SIP/2\.0/(["
    + _T
    + rb"]+) (\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?"
    + _CANON_PARAMS
    + rb")"
)
_NAME_ADDR_BODY = (
    rb'((?:"((?:[^"\\]|\\.)*)" *|([' + _T + rb" ]*?) *)"
    rb'<([A-Za-z][A-Za-z0-9+.\-]*:[^<>"\s]*)>' + _CANON_PARAMS + rb")"
)
_ADDR_SPEC_BODY = rb'(([A-Za-z][A-Za-z0-9+.\-]*:[^;?<>",\s]+)' + _CANON_PARAMS + rb")"
# `value` variants match a value span of raw; `line` variants a whole header line (name, colon,
# one value, no fold), so the accessors need not locate the value first
_LINE = rb"[^:]*:[ \t]*"
_VIA_FAST = re.compile(_VIA_BODY)
_VIA_LINE = re.compile(_LINE + _VIA_BODY + rb"[ \t]*")
_NAME_ADDR_FAST = re.compile(_NAME_ADDR_BODY, re.S)
_NAME_ADDR_LINE = re.compile(_LINE + _NAME_ADDR_BODY + rb"[ \t]*", re.S)
_ADDR_SPEC_FAST = re.compile(_ADDR_SPEC_BODY)
_ADDR_SPEC_LINE = re.compile(_LINE + _ADDR_SPEC_BODY + rb"[ \t]*")
# `value` variants for a whole header value (as the message keeps it: leading LWS already
# skipped, trailing SP/HTAB allowed), restricted to lower-case parameter names (the shape real
# messages have: no lower(), no general parser). The quantifiers are possessive (no backtracking
# state: ~25% faster; each one is followed by a character it cannot match, so the language is
# the same). The parameter group first tries the overwhelmingly common `;branch=x;rport`,
# `;branch=x`, `;rport;branch=x` (Via) and `;tag=x` (From/To), then captures the first
# parameters one group each (a group that did not take part is None: exactly the "no value"
# of Params), then any further ones as text; so no parameter loop runs for the usual values.
_LC = rb"!%'*+\-.0-9_`a-z~"  # token characters without upper-case letters
_PVALUE = rb"[" + _T + rb"\[\]:]++"
_LC_PARAMS = rb"(?:;[" + _LC + rb"]++(?:=" + _PVALUE + rb")?+)*+"
_LC_PARAM = rb"(?:;([" + _LC + rb"]++)(?:=(" + _PVALUE + rb"))?+)?+"
# The Via alternatives, in order: `;branch=x[;rport]`; `;branch=x;rport=n;received=a` (the
# phone's Via once a NAT-fixing proxy has filled in rport and added received, as sipguard does:
# every response that comes back through sipguard carries it); `;rport;branch=x`; any.
_VIA_VALUE = re.compile(
    rb"SIP/2\.0/([" + _T + rb"]++) (\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9._-]++)(?::([0-9]{1,5}))?+"
    rb"(;branch=(["
    + _T
    + rb"]++)(;rport)?+|;branch=(["
    + _T
    + rb"]++);rport=([0-9]{1,5});received=("
    + _PVALUE
    + rb")|;rport;branch=(["
    + _T
    + rb"]++)|"
    + 4 * _LC_PARAM
    + rb"("
    + _LC_PARAMS
    + rb"))[ \t]*+"
)
_NAME_ADDR_VALUE = re.compile(
    rb'(?:"((?:[^"\\]++|\\.)*+)" *+|((?:[' + _T + rb"]++(?: ++[" + _T + rb"]++)*+)?+) *+)"
    rb'<([A-Za-z][A-Za-z0-9+.\-]*+:[^<>"\s]*+)>'
    rb"(;tag=([" + _T + rb"]++)|" + 2 * _LC_PARAM + rb"(" + _LC_PARAMS + rb"))[ \t]*+",
    re.S,
)
_BRANCH = b"branch"
_RPORT_NAME = b"rport"
_RECEIVED = b"received"
_TAG = b"tag"
_RPORT: tuple[bytes, bytes | None] = (b"rport", None)
_SIP20 = b"SIP/2.0"


def _split_params(ptxt: bytes) -> Params:
    """`;name[=value]...` already validated by a `value` regex (lower-case names)."""
    out = []
    for q in ptxt[1:].split(b";"):
        k, _, v = q.partition(b"=")
        out.append((k, v or None))  # a validated value is never empty: b"" means no '='
    return tuple(out)


def _canon_params(ptxt: bytes) -> Params:
    """Parameters already validated by _CANON_PARAMS (`;name[=value]`, no LWS, no quotes)."""
    out = []
    for p in ptxt.split(b";")[1:]:
        k, eq, v = p.partition(b"=")
        out.append((k.lower(), v if eq else None))
    return tuple(out)


def _lws(v: bytes) -> bytes:
    """Map CR, LF and HTAB to SP (same length: offsets stay valid)."""
    if b"\r" in v:
        v = v.replace(b"\r", b" ").replace(b"\n", b" ")
    if b"\t" in v:
        v = v.replace(b"\t", b" ")
    return v


def is_token(b: bytes) -> bool:
    """True for a non-empty RFC 3261 token."""
    return bool(b) and not b.translate(None, TOKEN_CHARS)


def is_scheme(b: bytes) -> bool:
    """True for an RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )."""
    return bool(b) and b[:1].isalpha() and not b.translate(None, _SCHEME_CHARS)


def format_host(host: bytes) -> bytes:
    """`host` as it is written in a URI or Via: IPv6 literals get their brackets back."""
    if b":" in host:
        return b"[" + host + b"]"
    return host


def unquote(v: bytes) -> bytes:
    """The content of a quoted-string (quotes removed, quoted-pairs resolved); else `v`."""
    if len(v) >= 2 and v[:1] == b'"' and v[-1:] == b'"':
        v = v[1:-1]
        if b"\\" in v:
            out = bytearray()
            i = 0
            n = len(v)
            while i < n:
                j = v.find(b"\\", i)
                if j < 0:
                    out += v[i:]
                    break
                out += v[i:j]
                out += v[j + 1 : j + 2]
                i = j + 2
            return bytes(out)
    return v


def _skip_quoted(b: bytes, i: int, n: int) -> int:
    """`b[i]` is a DQUOTE: the index just after the closing DQUOTE (quoted-pairs honoured)."""
    j = i + 1
    while True:
        q = b.find(b'"', j, n)
        if q < 0:
            raise SipParseError("unterminated quoted string")
        bs = b.find(b"\\", j, q)
        if bs < 0:
            return q + 1
        j = bs + 2


def _strip(raw: bytes, s: int, e: int) -> tuple[int, int]:
    while s < e and raw[s] in _WS:
        s += 1
    while e > s and raw[e - 1] in _WS:
        e -= 1
    return s, e


def split_list(raw: bytes, s: int, e: int) -> list[tuple[int, int]]:
    """Split `raw[s:e]` at commas outside quoted strings and `<...>`; spans stripped of LWS.

    Empty elements (`a,,b`) come back as empty spans; the caller decides whether they matter.
    """
    out: list[tuple[int, int]] = []
    start = s
    i = s
    find = raw.find
    if find(b'"', s, e) < 0 and find(b"<", s, e) < 0:
        while True:
            c = find(b",", i, e)
            if c < 0:
                break
            out.append(_strip(raw, start, c))
            start = i = c + 1
    else:
        while True:
            c = find(b",", i, e)
            q = find(b'"', i, e)
            a = find(b"<", i, e)
            if c < 0:
                c = e
            if q < 0:
                q = e
            if a < 0:
                a = e
            if c < q and c < a:
                out.append(_strip(raw, start, c))
                start = i = c + 1
            elif q == a:  # both e: no more comma, quote or '<'
                break
            elif q < a:
                i = _skip_quoted(raw, q, e)
            else:
                g = find(b">", a + 1, e)
                if g < 0:
                    raise SipParseError("'<' without '>'")
                i = g + 1
    out.append(_strip(raw, start, e))
    return out


def _split_semis(v: bytes) -> list[bytes]:
    """`v.split(b";")`, but not inside quoted strings."""
    if b'"' not in v:
        return v.split(b";")
    parts: list[bytes] = []
    n = len(v)
    start = i = 0
    while True:
        c = v.find(b";", i)
        q = v.find(b'"', i)
        if c < 0 and q < 0:
            break
        if q < 0 or (0 <= c < q):
            parts.append(v[start:c])
            start = i = c + 1
        else:
            i = _skip_quoted(v, q, n)
    parts.append(v[start:])
    return parts


def _param(part: bytes) -> tuple[bytes, bytes | None]:
    p = part.strip(b" ")
    if not p:
        raise SipParseError("empty parameter")
    name, eq, val = p.partition(b"=")
    if eq:
        name = name.rstrip(b" ")
        val = val.lstrip(b" ")
        if not val:
            raise SipParseError("parameter without value after '='")
        if val[:1] == b'"':
            if _skip_quoted(val, 0, len(val)) != len(val):
                raise SipParseError("junk after quoted parameter value")
        elif val.translate(None, _PARAM_VALUE_CHARS):
            raise SipParseError("bad character in parameter value")
    if not is_token(name):
        raise SipParseError("bad parameter name")
    return name.lower(), (val if eq else None)


def parse_params(v: bytes) -> Params:
    """`*( SEMI name [EQUAL value] )` with LWS allowed around `;` and `=`; `v` has no CR/LF/HTAB.

    `v` must be empty/blank or start (after blanks) with `;`.
    """
    parts = _split_semis(v)
    if parts[0].strip(b" "):
        raise SipParseError("junk before parameters")
    if len(parts) == 1:
        return _NO_PARAMS
    return tuple([_param(p) for p in parts[1:]])


def param_spans(raw: bytes, s: int, e: int) -> list[tuple[bytes, int, int]]:
    """(lower-cased name, start of its `;`, end of the parameter) for each `;param` in raw[s:e].

    Used by the editor to replace one parameter of a Via value in place.
    """
    v = raw[s:e]
    if b'"' in v:
        return _param_spans(raw, s, e)
    semi = v.find(b";")
    if semi < 0:
        return []
    ptxt = v[semi:]
    if len(ptxt.translate(None, _WS)) != len(ptxt):
        return _param_spans(raw, s, e)
    # no quotes and no LWS among the parameters (the usual Via): split them as they are
    out: list[tuple[bytes, int, int]] = []
    pos = s + semi
    for p in ptxt[1:].split(b";"):
        n = pos + 1 + len(p)
        out.append((p.partition(b"=")[0].lower(), pos, n))
        pos = n
    return out


def _param_spans(raw: bytes, s: int, e: int) -> list[tuple[bytes, int, int]]:
    """param_spans for any value (quoted strings, LWS around `;` and `=`)."""
    v = _lws(raw[s:e])
    out: list[tuple[bytes, int, int]] = []
    parts = _split_semis(v)
    pos = len(parts[0])
    for p in parts[1:]:
        start = pos
        pos += 1 + len(p)
        name = p.partition(b"=")[0].strip(b" ").lower()
        end = start + 1 + len(p.rstrip(b" "))
        out.append((name, s + start, s + end))
    return out


def _port(p: bytes) -> int:
    if not p.isdigit() or len(p) > 5:
        raise SipParseError("bad port")
    port = int(p)
    if port > 65535:
        raise SipParseError("port out of range")
    return port


def split_host_port(b: bytes) -> tuple[bytes, int | None]:
    """`host[:port]` with IPv6 references in brackets (RFC 5118); host returned without brackets.

    An unbracketed IPv6 address (`2001:db8::10`) is an error, never guessed (RFC 5118 4.2).
    """
    if b[:1] == b"[":
        j = b.find(b"]")
        if j < 0:
            raise SipParseError("IPv6 reference without ']'")
        host = b[1:j]
        if b":" not in host or host.translate(None, _IPV6_CHARS):
            raise SipParseError("bad IPv6 reference")
        rest = b[j + 1 :]
        if not rest:
            return host, None
        if rest[:1] != b":":
            raise SipParseError("junk after IPv6 reference")
        return host, _port(rest[1:])
    c = b.find(b":")
    if c >= 0:
        host = b[:c]
        port: int | None = _port(b[c + 1 :])
    else:
        host = b
        port = None
    if not host or host.translate(None, _HOST_CHARS):
        raise SipParseError("bad host")
    return host, port


class SipUri(NamedTuple):
    """A sip: or sips: URI (RFC 3261 19.1); `host` has no brackets; `%` escapes kept raw."""

    scheme: bytes
    user: bytes | None
    password: bytes | None
    host: bytes
    port: int | None
    params: Params
    headers: bytes | None

    def param(self, name: bytes) -> bytes | None:
        """Value of URI parameter `name` (lower-case); None when absent or valueless."""
        for k, v in self.params:
            if k == name:
                return v
        return None

    def has_param(self, name: bytes) -> bool:
        """True when URI parameter `name` (lower-case) is present, with or without a value."""
        return any(k == name for k, _ in self.params)

    def host_port(self) -> bytes:
        """`host[:port]` as written in a URI (IPv6 bracketed)."""
        h = format_host(self.host)
        return h if self.port is None else h + b":%d" % self.port


class TelUri(NamedTuple):
    """A tel: URI (RFC 3966): the number (global `+...` or local) and its parameters."""

    number: bytes
    params: Params


class OtherUri(NamedTuple):
    """Any other absolute URI: only the (lower-cased) scheme is interpreted."""

    scheme: bytes
    raw: bytes


def _uri_params(v: bytes) -> Params:
    # URI parameters allow no LWS; names lower-cased, values raw (escapes kept)
    out: list[tuple[bytes, bytes | None]] = []
    for p in v.split(b";")[1:]:
        name, eq, val = p.partition(b"=")
        if not name:
            raise SipParseError("empty URI parameter")
        out.append((name.lower(), val if eq else None))
    return tuple(out)


# The same few URIs (the PBX's, the phones') come back in every message; the parse is pure and its
# result immutable, so remember recent ones. Bounded: a flood of distinct URIs only costs misses.
URI_CACHE_SIZE = 8192


# The usual SIP URI, `sip[s]:[user@]host[:port][;params]` (lower-case scheme, no password, no
# `?headers`, no `@` after the host): one regex match instead of the general code below, with
# the same result (a URI a flood of new identities brings, e.g. an enumeration scan, misses the
# cache). Nothing in it may be SP, HTAB, CR, LF, `<`, `>` or `"` (the general check).
_SIP_URI_FAST = re.compile(
    rb'sip(s?):(?:([^:;?@\s<>"]++)@)?+([A-Za-z0-9._-]++|\[[0-9A-Fa-f.]*+:[0-9A-Fa-f:.]*+\])'
    rb'(?::([0-9]{1,5}))?+((?:;[^;?@=\s<>"]++(?:=[^;?@\s<>"]*+)?+)*+)'
)
_SIP = b"sip"
_SIPS = b"sips"


@functools.lru_cache(maxsize=URI_CACHE_SIZE)
def parse_uri(data: bytes) -> SipUri | TelUri | OtherUri:
    """Parse an absolute URI; sip/sips/tel structurally, any other scheme as OtherUri.

    Raises SipParseError for a missing/invalid scheme or a malformed sip/sips/tel URI.
    """
    m = _SIP_URI_FAST.fullmatch(data)
    if m is None:
        return _parse_uri(data)
    s, fuser, fhost, p, ptxt = m.groups()
    if fhost[0] == 91:  # '['
        fhost = fhost[1:-1]
    fport = None
    if p is not None:
        fport = int(p)
        if fport > 65535:
            raise SipParseError("port out of range")
    return _new(
        SipUri,
        (_SIPS if s else _SIP, fuser, None, fhost, fport, _uri_params(ptxt) if ptxt else (), None),
    )


def _parse_uri(data: bytes) -> SipUri | TelUri | OtherUri:
    """The general URI parser (parse_uri without its fast path and cache)."""
    colon = data.find(b":")
    scheme = data[:colon]
    if colon <= 0 or not is_scheme(scheme):
        raise SipParseError("URI without a valid scheme")
    if data.translate(None, b' \t\r\n<>"') != data:
        raise SipParseError("whitespace, quote or angle bracket in URI")
    scheme = scheme.lower()
    rest = data[colon + 1 :]
    if scheme in {b"sip", b"sips"}:
        at = rest.find(b"@")
        user: bytes | None = None
        password: bytes | None = None
        if at >= 0:
            userinfo = rest[:at]
            rest = rest[at + 1 :]
            user, c, pw = userinfo.partition(b":")
            if c:
                password = pw
            if not user:
                raise SipParseError("empty user part in SIP URI")
        j = max(rest.find(b"]"), 0) if rest[:1] == b"[" else 0
        semi = rest.find(b";", j)
        qm = rest.find(b"?", j)
        end = len(rest)
        if 0 <= semi < end:
            end = semi
        if 0 <= qm < end:
            end = qm
        host, port = split_host_port(rest[:end])
        headers: bytes | None = None
        if qm >= 0:
            headers = rest[qm + 1 :]
            ptxt = rest[end:qm]
        else:
            ptxt = rest[end:]
        params = _uri_params(ptxt) if ptxt else _NO_PARAMS
        return SipUri(scheme, user, password, host, port, params, headers)
    if scheme == b"tel":
        semi = rest.find(b";")
        number = rest if semi < 0 else rest[:semi]
        if not number:
            raise SipParseError("empty tel: number")
        return TelUri(number, _uri_params(rest[semi:]) if semi >= 0 else _NO_PARAMS)
    return OtherUri(scheme, data)


class Via(NamedTuple):
    """One Via value (RFC 3261 20.42); `start..end` is its span in the message's `raw`."""

    protocol: bytes
    """`SIP/2.0` (name/version, LWS removed)."""
    transport: bytes
    """Upper-cased: UDP, TCP, TLS, SCTP, WS, WSS or any token."""
    host: bytes
    """sent-by host; IPv6 without brackets."""
    port: int | None
    params: Params
    branch: bytes | None
    received: bytes | None
    """`received` value, IPv6 brackets removed (RFC 5118 4.5 allows both forms)."""
    rport: int | None
    """`rport=N` value; None when absent or empty (see has_rport)."""
    has_rport: bool
    start: int
    end: int

    @property
    def sent_by_host_raw(self) -> bytes:
        """The sent-by host as written (IPv6 bracketed)."""
        return format_host(self.host)

    def param(self, name: bytes) -> bytes | None:
        """Value of Via parameter `name` (lower-case); None when absent or valueless."""
        for k, v in self.params:
            if k == name:
                return v
        return None


def parse_via(raw: bytes, s: int, e: int) -> Via:
    """Parse one Via value `raw[s:e]` (already split from its list and stripped)."""
    m = _VIA_FAST.fullmatch(raw, s, e)
    if m is not None:
        return _via_match(m, 0)
    return _parse_via(raw, s, e)


def via_from_line(line: bytes, base: int) -> Via | None:
    """Fast path for a header line holding exactly one canonical Via value (None otherwise);
    `base` is the offset of `line` in raw."""
    m = _VIA_LINE.fullmatch(line)
    return None if m is None else _via_match(m, base)


def _via_match(m: re.Match[bytes], base: int) -> Via:
    _, transport, h, p, ptxt = m.groups()
    s, e = m.span(1)
    if h[0] == 91:  # '['
        h = h[1:-1]
        if b":" not in h:
            raise SipParseError("bad IPv6 reference")
    port = None
    if p is not None:
        port = int(p)
        if port > 65535:
            raise SipParseError("port out of range")
    if not ptxt:
        return _new(
            Via,
            (
                b"SIP/2.0",
                transport.upper(),
                h,
                port,
                (),
                None,
                None,
                None,
                False,
                base + s,
                base + e,
            ),
        )
    params = _canon_params(ptxt)
    d = dict(params)
    received = d.get(b"received")
    if received is not None and received[:1] == b"[" and received[-1:] == b"]":
        received = received[1:-1]
    rport = d.get(b"rport")
    return _new(
        Via,
        (
            b"SIP/2.0",
            transport.upper(),
            h,
            port,
            params,
            d.get(b"branch"),
            received,
            None if rport is None else _port(rport),
            b"rport" in d,
            base + s,
            base + e,
        ),
    )


def via_value(v: bytes, base: int) -> Via | None:
    """Fast path for a header value (leading LWS skipped) holding exactly one canonical Via
    with lower-case parameter names; None otherwise. `base` is the offset of `v` in raw."""
    m = _VIA_VALUE.fullmatch(v)
    if m is None:
        return None
    (
        transport,
        h,
        p,
        _,
        branch,
        rp,
        nat_branch,
        nat_rport,
        nat_received,
        branch2,
        k1,
        v1,
        k2,
        v2,
        k3,
        v3,
        k4,
        v4,
        rest,
    ) = m.groups()
    if h[0] == 91:  # '['
        h = h[1:-1]
        if b":" not in h:
            raise SipParseError("bad IPv6 reference")
    port = None
    if p is not None:
        port = int(p)
        if port > 65535:
            raise SipParseError("port out of range")
    if branch is not None:  # ;branch=x[;rport]
        return _new(
            Via,
            (
                _SIP20,
                transport.upper(),
                h,
                port,
                ((_BRANCH, branch),) if rp is None else ((_BRANCH, branch), _RPORT),
                branch,
                None,
                None,
                rp is not None,
                base,
                base + m.end(4),
            ),
        )
    if nat_branch is not None:  # ;branch=x;rport=n;received=a
        return _nat_fixed_via(transport, h, port, nat_branch, nat_rport, nat_received, m, base)
    if branch2 is not None:  # ;rport;branch=x
        params: Params = (_RPORT, (_BRANCH, branch2))
    elif k1 is None:
        params = ()
    elif k2 is None:
        params = ((k1, v1),)
    elif k3 is None:
        params = ((k1, v1), (k2, v2))
    elif k4 is None:
        params = ((k1, v1), (k2, v2), (k3, v3))
    elif not rest:
        params = ((k1, v1), (k2, v2), (k3, v3), (k4, v4))
    else:
        params = _split_params(m[4])
    d = dict(params)  # the last one wins for duplicates
    received = d.get(b"received")
    if received is not None and received[:1] == b"[" and received[-1:] == b"]":
        received = received[1:-1]
    rport = d.get(b"rport")
    return _new(
        Via,
        (
            _SIP20,
            transport.upper(),
            h,
            port,
            params,
            d.get(_BRANCH),
            received,
            None if rport is None else _port(rport),
            b"rport" in d,
            base,
            base + m.end(4),
        ),
    )


def _nat_fixed_via(
    transport: bytes,
    host: bytes,
    port: int | None,
    branch: bytes,
    rport: bytes,
    received: bytes,
    m: re.Match[bytes],
    base: int,
) -> Via:
    """via_value for `;branch=x;rport=n;received=a`: the parameters are known, no dict needed."""
    n = int(rport)
    if n > 65535:
        raise SipParseError("port out of range")
    params = ((_BRANCH, branch), (_RPORT_NAME, rport), (_RECEIVED, received))
    if received[:1] == b"[" and received[-1:] == b"]":
        received = received[1:-1]
    return _new(
        Via,
        (
            _SIP20,
            transport.upper(),
            host,
            port,
            params,
            branch,
            received,
            n,
            True,
            base,
            base + m.end(4),
        ),
    )


def _parse_via(raw: bytes, s: int, e: int) -> Via:
    v = _lws(raw[s:e])
    i1 = v.find(b"/")
    i2 = v.find(b"/", i1 + 1) if i1 >= 0 else -1
    if i2 < 0:
        raise SipParseError("Via without sent-protocol")
    name = v[:i1].strip(b" ")
    version = v[i1 + 1 : i2].strip(b" ")
    rest = v[i2 + 1 :].lstrip(b" ")
    sp = rest.find(b" ")
    if sp <= 0:
        raise SipParseError("Via without sent-by")
    transport = rest[:sp]
    rest = rest[sp + 1 :].lstrip(b" ")
    semi = rest.find(b";")
    if semi < 0:
        sent_by = rest.rstrip(b" ")
        ptxt = b""
    else:
        sent_by = rest[:semi].rstrip(b" ")
        ptxt = rest[semi:]
    if not is_token(name) or not is_token(version) or not is_token(transport):
        raise SipParseError("bad Via sent-protocol")
    if b" " in sent_by:  # COLON = SWS ":" SWS
        h, c, p = sent_by.rpartition(b":")
        if not c or b" " in h.strip(b" ") or b" " in p.strip(b" "):
            raise SipParseError("bad Via sent-by")
        sent_by = h.strip(b" ") + b":" + p.strip(b" ")
    host, port = split_host_port(sent_by)
    branch = received = None
    rport: int | None = None
    has_rport = False
    if ptxt:
        params = parse_params(ptxt)
        for k, val in params:
            if k == b"branch":
                branch = val
            elif k == b"received":
                received = val
                if val is not None and val[:1] == b"[" and val[-1:] == b"]":
                    received = val[1:-1]
            elif k == b"rport":
                has_rport = True
                if val is not None:
                    rport = _port(val)
    else:
        params = _NO_PARAMS
    return Via(
        name + b"/" + version,
        transport.upper(),
        host,
        port,
        params,
        branch,
        received,
        rport,
        has_rport,
        s,
        e,
    )


class NameAddr(NamedTuple):
    """A From/To/Contact/Route value: `[display] <uri>` or a bare addr-spec, then `;params`.

    `display` is the display name (quoted-string content with quoted-pairs resolved, or the
    unquoted tokens), None when absent. `uri_start..uri_end` and `start..end` are spans in `raw`.
    """

    display: bytes | None
    uri: bytes
    uri_start: int
    uri_end: int
    params: Params
    tag: bytes | None
    start: int
    end: int

    def param(self, name: bytes) -> bytes | None:
        """Value of header parameter `name` (lower-case); None when absent or valueless."""
        for k, v in self.params:
            if k == name:
                return v
        return None

    def has_param(self, name: bytes) -> bool:
        """True when header parameter `name` (lower-case) is present."""
        return any(k == name for k, _ in self.params)


def parse_name_addr(raw: bytes, s: int, e: int) -> NameAddr:
    """Parse one name-addr / addr-spec value `raw[s:e]` (split from its list, stripped)."""
    m = _NAME_ADDR_FAST.fullmatch(raw, s, e)
    if m is not None:
        return _name_addr_match(m, 0)
    m = _ADDR_SPEC_FAST.fullmatch(raw, s, e)
    if m is not None:
        return _addr_spec_match(m, 0)
    return _parse_name_addr(raw, s, e)


def name_addr_from_line(line: bytes, base: int) -> NameAddr | None:
    """Fast path for a header line holding exactly one canonical name-addr/addr-spec (None
    otherwise); `base` is the offset of `line` in raw."""
    m = _NAME_ADDR_LINE.fullmatch(line)
    if m is not None:
        return _name_addr_match(m, base)
    m = _ADDR_SPEC_LINE.fullmatch(line)
    if m is not None:
        return _addr_spec_match(m, base)
    return None


def name_addr_value(v: bytes, base: int) -> NameAddr | None:
    """Fast path for a header value (leading LWS skipped) holding exactly one canonical
    `[display] <uri>;params` with lower-case parameter names; None otherwise. `base` is the
    offset of `v` in raw."""
    m = _NAME_ADDR_VALUE.fullmatch(v)
    if m is None:
        return None
    qd, td, uri, _, tag, k1, v1, k2, v2, rest = m.groups()
    if qd is not None:
        display: bytes | None = unquote(b'"' + qd + b'"') if b"\\" in qd else qd
    else:
        display = td or None
    us, ue = m.span(3)
    if tag is not None:  # ;tag=x
        params: Params = ((_TAG, tag),)
    elif k1 is None:
        params = ()
    elif k2 is None:
        params = ((k1, v1),)
        if k1 == _TAG:
            tag = v1
    elif not rest:
        params = ((k1, v1), (k2, v2))
        if k1 == _TAG:
            tag = v1
        elif k2 == _TAG:
            tag = v2
    else:
        params = _split_params(m[4])
        for k, val in params:
            if k == _TAG:  # the first one
                tag = val
                break
    return _new(NameAddr, (display, uri, base + us, base + ue, params, tag, base, base + m.end(4)))


def _name_addr_match(m: re.Match[bytes], base: int) -> NameAddr:
    _, qd, td, uri, ptxt = m.groups()
    if qd is not None:
        display: bytes | None = unquote(b'"' + qd + b'"') if b"\\" in qd else qd
    else:
        display = td or None
    s, e = m.span(1)
    us, ue = m.span(4)
    return _finish(display, uri, base + us, base + ue, ptxt, base + s, base + e)


def _addr_spec_match(m: re.Match[bytes], base: int) -> NameAddr:
    _, uri, ptxt = m.groups()
    s, e = m.span(1)
    return _finish(None, uri, base + s, base + s + len(uri), ptxt, base + s, base + e)


def _finish(
    display: bytes | None, uri: bytes, us: int, ue: int, ptxt: bytes, s: int, e: int
) -> NameAddr:
    if not ptxt:
        return _new(NameAddr, (display, uri, us, ue, (), None, s, e))
    params = _canon_params(ptxt)
    tag = None
    for k, val in params:
        if k == b"tag":
            tag = val
            break
    return _new(NameAddr, (display, uri, us, ue, params, tag, s, e))


def _parse_name_addr(raw: bytes, s: int, e: int) -> NameAddr:
    v = _lws(raw[s:e])
    n = len(v)
    if not n:
        raise SipParseError("empty address")
    display: bytes | None
    if v[0] == 34:  # '"'
        q = _skip_quoted(v, 0, n)
        display = unquote(v[:q])
        lt = q
        while lt < n and v[lt] == 32:
            lt += 1
        if lt >= n or v[lt] != 60:  # '<'
            raise SipParseError("quoted display name not followed by '<'")
    else:
        lt = v.find(b"<")
        if lt >= 0:
            disp = v[:lt].strip(b" ")
            if disp and not is_token(disp.replace(b" ", b"")):
                raise SipParseError("bad display name")
            display = disp or None
        else:
            display = None
    if lt >= 0:
        gt = v.find(b">", lt + 1)
        if gt < 0:
            raise SipParseError("'<' without '>'")
        us, ue = lt + 1, gt
        uri = v[us:ue]
        if not uri or b" " in uri:
            raise SipParseError("whitespace in addr-spec")
        ptxt = v[gt + 1 :]
    else:
        # addr-spec: a URI with ',', '?' or ';' must be in <> (RFC 3261 20.10), so ';' starts
        # the header parameters
        semi = v.find(b";")
        ue = n if semi < 0 else semi
        us = 0
        uri = v[:ue].rstrip(b" ")
        ue = len(uri)
        if not uri or b" " in uri or b"?" in uri:
            raise SipParseError("bad addr-spec (URI with '?' or LWS outside <>)")
        ptxt = v[ue:]
    colon = uri.find(b":")
    if colon <= 0 or not is_scheme(uri[:colon]):
        raise SipParseError("address without a URI scheme")
    tag = None
    if ptxt:
        params = parse_params(ptxt)
        for k, val in params:
            if k == b"tag":
                tag = val
                break
    else:
        params = _NO_PARAMS
    return NameAddr(display, uri, s + us, s + ue, params, tag, s, e)
