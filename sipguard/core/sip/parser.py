"""parse_message: bytes -> SipRequest | SipResponse, plus the sanity checks.

The hot path: find the blank line, split the header section at the header names with one
regex (start line, then name part and value per field), look each name part up in a dict of
the usual spellings -> int slot (lower-casing only names it does not know), and keep the
parts. Values are parsed later by the accessors, except the few the parser must read itself
(CSeq, Max-Forwards, Content-Length) to frame and sanity-check the message.
"""

from __future__ import annotations

import re

from .errors import SipParseError
from .limits import (
    MAX_CSEQ,
    MAX_HEADER_LINE,
    MAX_HEADER_SECTION,
    MAX_HEADERS,
    MAX_MAX_FORWARDS,
    MAX_MESSAGE_SIZE,
    MAX_URI_LENGTH,
)
from .message import (
    HEADER_NAMES,
    METHODS,
    NAME_PART_SLOTS,
    Hdr,
    Method,
    SipRequest,
    SipResponse,
    slot_of_name_part,
)
from .uri import TOKEN_CHARS, is_scheme

__all__ = ["content_length_of", "is_keepalive", "parse_message"]

_NAMES = [HEADER_NAMES[Hdr(i)].decode() for i in range(7)]
_MF = 5
_CL = 6
_MOTHER = Method.OTHER


def is_keepalive(data: bytes) -> bool:
    """True for a datagram of only CR/LF octets (a CRLF / CRLFCRLF keep-alive, RFC 5626 4.4)."""
    return bool(data) and not data.strip(b"\r\n")


def _number(v: bytes, what: str) -> int:
    if not v.isdigit():
        raise SipParseError(f"{what} is not a number")
    if len(v) > 10:
        v = v.lstrip(b"0") or b"0"
        if len(v) > 10:
            raise SipParseError(f"{what} too large")
    return int(v)


# b"0".."2047" -> int: Max-Forwards and most Content-Length values in one dict lookup
# (anything else, leading zeros or WSP included, goes through _number)
_SMALL_NUMBER = {b"%d" % i: i for i in range(2048)}.get


def _version(ver: bytes) -> None:
    if ver != b"SIP/2.0" and ver.upper() != b"SIP/2.0":
        if ver[:4].upper() == b"SIP/":
            raise SipParseError("SIP version not supported", status_hint=505)
        raise SipParseError("bad SIP version")


# The header section split at every `CRLF name [WSP] ":" [WSP]` (a token name): one C-level pass
# gives the start line, then name part and value for each header field. Folded continuation
# lines, bad names and lines without a colon do not match, so their CRLF stays inside a part,
# the CR/LF count differs and the message takes the slow path.
_SPLIT_RE = re.compile(rb"\r\n([!%'*+\-.0-9A-Z_`a-z~]++[ \t]*+:[ \t]*+)")
# name part -> slot: the usual spellings, plus the ones seen since (bounded: a flood of made-up
# header names only fills it up, after which new names take the slower way every time; names
# longer than 64 octets are not kept, so the table stays small whatever the names are)
_NP_TABLE: dict[bytes, int] = dict(NAME_PART_SLOTS)
_NP_TABLE_LIMIT = len(_NP_TABLE) + 2048
_NP_KEEP_MAX = 64
_NP_GET = _NP_TABLE.get


def _slow_parts(lines: list[bytes]) -> list[bytes]:
    """Header lines (after the start line) -> [name part, value, ...], merging folded
    continuation lines into the line they continue and validating the names."""
    out: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not out:
                raise SipParseError("folded line before the first header")
            out[-1] += b"\r\n" + line
            continue
        c = line.find(b":")
        if c < 0:
            raise SipParseError("header line without ':'")
        name = line[:c].rstrip(b" \t")
        if not name or name.translate(None, TOKEN_CHARS):
            raise SipParseError("bad header name")
        out.append(line)
    parts: list[bytes] = []
    for line in out:
        v = line[line.find(b":") + 1 :].lstrip(b" \t\r\n")
        parts.append(line[: len(line) - len(v)])
        parts.append(v)
    return parts


def _learn(names: list[bytes]) -> bytes:
    """Slots of `names` when some are not in the spelling table (unknown headers -> OTHER, odd
    spellings of known ones); the table remembers them, up to a bound, so the next message
    with the same header lines takes the fast path again."""
    out = []
    for n in names:
        h = _NP_GET(n)
        if h is None:
            h = slot_of_name_part(n)
            if len(_NP_TABLE) < _NP_TABLE_LIMIT and len(n) <= _NP_KEEP_MAX:
                _NP_TABLE[n] = h
        out.append(h)
    return bytes(out)


def _count_error(sl: bytes) -> SipParseError:
    """The error for a message whose mandatory / single-valued header counts are wrong."""
    if 0 not in sl:
        return SipParseError("missing Via")
    for h in (1, 2, 3, 4):
        c = sl.count(h)
        if c != 1:
            return SipParseError(f"{'missing' if not c else 'more than one'} {_NAMES[h]}")
    return SipParseError("bad header counts")  # not reached: the caller saw a wrong count


# The name parts of a message's header lines, joined -> its slots and where the parser finds
# CSeq, Max-Forwards and Content-Length. A phone or a PBX sends the same header lines in the same
# order every time, so the spelling lookups, counts and indexes are worked out once per layout
# (~1.1 us) and then found with one join and one dict lookup (~0.25 us). The join cannot mix up
# two layouts: a name part holds exactly one colon and the next one starts with a token octet.
# Bounded: emptied when full, and only keys of up to 1 KiB are kept (a phone's INVITE: ~110
# octets; a flood of long made-up names would otherwise hold up to 16 KiB per entry), so the table
# stays under ~4 MiB. Layouts with a missing or repeated mandatory header raise and are never
# remembered.
_ABSENT = -1
_REPEATED = -2
_Layout = tuple[bytes, int, int, int]
"""(slots, CSeq value index, Max-Forwards value index, Content-Length value index) in parts."""
_LAYOUTS: dict[bytes, _Layout] = {}
_LAYOUTS_LIMIT = 4096
_LAYOUT_KEY_MAX = 1024
_LAYOUT_GET = _LAYOUTS.get


def _value_part(sl: bytes, h: int) -> int:
    """Index in the parser's parts of the value of the single field of slot `h`; _ABSENT when
    there is none, _REPEATED when there are several."""
    c = sl.count(h)
    if not c:
        return _ABSENT
    return 2 * sl.index(h) + 2 if c == 1 else _REPEATED


def _learn_layout(names: list[bytes], key: bytes) -> _Layout:
    """The layout of a message whose header name parts are `names` (joined: `key`), remembered;
    raises when a mandatory header is missing or a single-valued one repeated."""
    try:
        sl = bytes(map(_NP_GET, names))  # type: ignore[arg-type]  # a None raises TypeError
    except TypeError:  # None: a spelling not in the table yet
        sl = _learn(names)
    if sl.count(1) != 1 or sl.count(2) != 1 or sl.count(3) != 1 or sl.count(4) != 1 or 0 not in sl:
        raise _count_error(sl)
    layout = (sl, 2 * sl.index(4) + 2, _value_part(sl, _MF), _value_part(sl, _CL))
    if len(key) <= _LAYOUT_KEY_MAX:
        if len(_LAYOUTS) >= _LAYOUTS_LIMIT:
            _LAYOUTS.clear()
        _LAYOUTS[key] = layout
    return layout


def parse_message(
    data: bytes,
    *,
    datagram: bool = True,
    max_size: int = MAX_MESSAGE_SIZE,
    strict: bool = False,
) -> SipRequest | SipResponse:
    """Parse one SIP message.

    datagram=True (UDP): without Content-Length the body is the rest of the datagram; octets
    past Content-Length are cut off (`raw` ends at the body end). datagram=False (a message from
    StreamFramer): Content-Length is required and the body must be exactly that long.
    CRLFs before the start line are skipped (RFC 3261 7.5). strict=True also runs
    `msg.validate()` (every Via, From, To, Contact, Route, Record-Route and the R-URI).

    Raises SipParseError (with a status hint) and nothing else.
    """
    if len(data) > max_size:
        raise SipParseError("message too large", status_hint=513)
    if data[:2] == b"\r\n":
        data = data.lstrip(b"\r\n")
    hend = data.find(b"\r\n\r\n")
    if hend < 0:
        raise SipParseError("no blank line after the header section")
    if hend > MAX_HEADER_SECTION:
        raise SipParseError("header section too large", status_hint=513)
    head = data[:hend]
    p = _SPLIT_RE.split(head)
    fold = False
    slow = None
    # every CR/LF of the header section must be one of the CRLFs the split consumed (one per
    # header field); otherwise take the slow path, which also refuses a bare CR or LF: it could
    # make a lenient next hop see a header line sipguard did not see
    if len(head.translate(None, b"\r\n")) != hend - (len(p) - 1):
        slow = head.split(b"\r\n")
        if hend - len(head.translate(None, b"\r\n")) != 2 * (len(slow) - 1):
            raise SipParseError("bare CR or LF in the header section")
        line = slow[0]
    else:
        line = p[0]

    method_raw = uri = code = b""
    method = _MOTHER
    is_request = line[:4].upper() != b"SIP/"
    if is_request:
        parts = line.split(b" ")
        if len(parts) != 3:
            if len(parts) > 3 and parts[-1][:4].upper() == b"SIP/" and parts[-1] != b"SIP/2.0":
                _version(parts[-1])
            raise SipParseError("malformed request line")
        method_raw, uri, ver = parts
        if ver != b"SIP/2.0":
            _version(ver)
        method = METHODS.get(method_raw, _MOTHER)
        if method is _MOTHER and (not method_raw or method_raw.translate(None, TOKEN_CHARS)):
            raise SipParseError("bad method")
        if len(uri) > MAX_URI_LENGTH:
            raise SipParseError("Request-URI too long", status_hint=414)
        if uri[:4] != b"sip:":
            c = uri.find(b":")
            if c <= 0 or not is_scheme(uri[:c]):
                raise SipParseError("Request-URI without a scheme")
    else:
        parts = line.split(b" ", 2)
        if len(parts) < 2:
            raise SipParseError("malformed status line")
        if parts[0] != b"SIP/2.0":
            _version(parts[0])
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or code[:1] not in b"123456":
            raise SipParseError("bad status code")

    if slow is not None:
        p = [line, *_slow_parts(slow[1:])]
        fold = len(p) != len(slow) * 2 - 1
    names = p[1::2]
    if len(names) > MAX_HEADERS:
        raise SipParseError("too many header fields")
    if hend > MAX_HEADER_LINE and any(
        len(p[k]) + len(p[k + 1]) > MAX_HEADER_LINE for k in range(1, len(p), 2)
    ):
        raise SipParseError("header line too long")
    key = b"".join(names)
    layout = _LAYOUT_GET(key)
    if layout is None:
        layout = _learn_layout(names, key)
    sl, cs_i, mf_i, cl_i = layout
    cs = p[cs_i].split()
    if len(cs) != 2:
        raise SipParseError("malformed CSeq")
    seq = _SMALL_NUMBER(cs[0])
    if seq is None:
        seq = _number(cs[0], "CSeq")
    if seq > MAX_CSEQ:
        raise SipParseError("CSeq number out of range")
    mf: int | None = None
    if mf_i != _ABSENT:
        if mf_i == _REPEATED:
            raise SipParseError("more than one Max-Forwards")
        mf = _SMALL_NUMBER(p[mf_i])
        if mf is None:
            mf = _number(p[mf_i].strip(), "Max-Forwards")
        if mf > MAX_MAX_FORWARDS:
            raise SipParseError("Max-Forwards out of range")
    cl: int | None = None
    bo = hend + 4
    if cl_i != _ABSENT:
        if cl_i == _REPEATED:
            raise SipParseError("more than one Content-Length")
        cl = _SMALL_NUMBER(p[cl_i])
        if cl is None:
            cl = _number(p[cl_i].strip(), "Content-Length")
        if cl > max_size:
            raise SipParseError("body too large", status_hint=413)
        e = bo + cl
        n = len(data)
        if e > n:
            raise SipParseError("body shorter than Content-Length")
        if e < n:
            if not datagram:
                raise SipParseError("octets after the body")
            data = data[:e]
    elif not datagram:
        raise SipParseError("Content-Length missing on a stream transport")

    if is_request:
        if cs[1] != method_raw:
            raise SipParseError(
                "CSeq method does not match the request method",
                status_hint=501 if method is _MOTHER else 400,
            )
        n = len(method_raw) + 1
        msg: SipRequest | SipResponse = SipRequest(
            data,
            bo,
            p,
            sl,
            fold,
            (seq, cs[1]),
            mf,
            cl,
            method,
            method_raw,
            uri,
            n,
            n + len(uri),
        )
    else:
        msg = SipResponse(
            data,
            bo,
            p,
            sl,
            fold,
            (seq, cs[1]),
            mf,
            cl,
            int(code),
            parts[2] if len(parts) > 2 else b"",
        )
    if strict:
        msg.validate()
    return msg


def content_length_of(head: bytes) -> int | None:
    """Content-Length of a header section `head` (start line + header lines, CRLF-terminated).

    Used by StreamFramer before the whole message is there. Raises SipParseError for a
    negative, non-numeric or repeated Content-Length.
    """
    cl: int | None = None
    pos = head.find(b"\r\n") + 2
    n = len(head)
    while 0 < pos < n:
        eol = head.find(b"\r\n", pos)
        if eol < 0:
            break
        colon = head.find(b":", pos, eol)
        if colon >= 0:
            name = head[pos:colon].rstrip(b" \t").lower()
            if name in {b"content-length", b"l"}:
                end = eol + 2
                while head[end : end + 1] in (b" ", b"\t"):
                    eol = head.find(b"\r\n", end)
                    end = eol + 2
                if cl is not None:
                    raise SipParseError("more than one Content-Length header")
                v = head[colon + 1 : eol].strip(b" \t\r\n")
                cl = _number(v, "Content-Length")
                pos = end
                continue
        pos = eol + 2
    return cl
