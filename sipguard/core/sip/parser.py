"""parse_message: bytes -> SipRequest | SipResponse, plus the sanity checks.

The hot path: find the blank line, split header lines with bytes.find, look the lower-cased
name up in a dict of bytes -> int, store one plain tuple of spans per header. Values are
parsed later by the accessors, except the few the parser must read itself (CSeq,
Max-Forwards, Content-Length) to frame and sanity-check the message.
"""

from __future__ import annotations

import re
from typing import cast

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
    OTHER,
    SLOTS,
    Hdr,
    Method,
    SipRequest,
    SipResponse,
)
from .uri import TOKEN_CHARS, is_scheme

__all__ = ["content_length_of", "is_keepalive", "parse_message"]

_NAMES = [HEADER_NAMES[Hdr(i)].decode() for i in range(7)]
_MF = 5
_CL = 6
_MOTHER = Method.OTHER
_SLOTS_GET = SLOTS.get


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


def _version(ver: bytes) -> None:
    if ver != b"SIP/2.0" and ver.upper() != b"SIP/2.0":
        if ver[:4].upper() == b"SIP/":
            raise SipParseError("SIP version not supported", status_hint=505)
        raise SipParseError("bad SIP version")


# A header line: a token name, optional WSP, a colon. Lines that do not match (folded
# continuations, bad names, no colon) make the count differ and take the slow path.
_NAME_RE = re.compile(rb"\r\n([!%'*+\-.0-9A-Z_`a-z~]+)[ \t]*:")


def _slow_lines(lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Merge folded continuation lines into the line they continue; validate the names."""
    out: list[bytes] = []
    names: list[bytes] = []
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
        names.append(name.lower())
    return out, names


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
    lines = head.split(b"\r\n")
    nl = len(lines) - 1
    # every line of the header section must end in CRLF: a bare CR or LF could make a lenient
    # next hop see a header line sipguard did not see (each CRLF removes 2 octets, a bare one 1)
    if hend - len(head.translate(None, b"\r\n")) != 2 * nl:
        raise SipParseError("bare CR or LF in the header section")

    line = lines[0]
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

    names = _NAME_RE.findall(head.lower())  # lower-cased once, then plain dict lookups
    del lines[0]
    if len(names) != nl:
        lines, names = _slow_lines(lines)
        nl = len(lines)
    if nl > MAX_HEADERS:
        raise SipParseError("too many header fields")
    if hend > MAX_HEADER_LINE and max(map(len, lines), default=0) > MAX_HEADER_LINE:
        raise SipParseError("header line too long")
    # unknown names -> OTHER (their syntax was already checked by _NAME_RE or _slow_lines)
    found = list(map(_SLOTS_GET, names))
    sl = [OTHER if s is None else s for s in found] if None in found else cast("list[int]", found)

    # mandatory and single-valued headers
    if 0 not in sl:
        raise SipParseError("missing Via")
    for h in (1, 2, 3):
        c = sl.count(h)
        if c != 1:
            raise SipParseError(f"{'missing' if not c else 'more than one'} {_NAMES[h]}")
    c = sl.count(4)
    if c != 1:
        raise SipParseError(f"{'missing' if not c else 'more than one'} CSeq")
    cs = lines[sl.index(4)].partition(b":")[2].split()
    if len(cs) != 2:
        raise SipParseError("malformed CSeq")
    seq = _number(cs[0], "CSeq")
    if seq > MAX_CSEQ:
        raise SipParseError("CSeq number out of range")
    mf: int | None = None
    if _MF in sl:
        i = sl.index(_MF)
        if _MF in sl[i + 1 :]:
            raise SipParseError("more than one Max-Forwards")
        mf = _number(lines[i].partition(b":")[2].strip(), "Max-Forwards")
        if mf > MAX_MAX_FORWARDS:
            raise SipParseError("Max-Forwards out of range")
    cl: int | None = None
    bo = hend + 4
    if _CL in sl:
        i = sl.index(_CL)
        if _CL in sl[i + 1 :]:
            raise SipParseError("more than one Content-Length")
        cl = _number(lines[i].partition(b":")[2].strip(), "Content-Length")
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

    hs = len(line) + 2
    if is_request:
        if cs[1] != method_raw:
            raise SipParseError(
                "CSeq method does not match the request method",
                status_hint=501 if method is _MOTHER else 400,
            )
        msg: SipRequest | SipResponse = SipRequest(
            data,
            bo,
            lines,
            sl,
            hs,
            (seq, cs[1]),
            mf,
            cl,
            method,
            method_raw,
            uri,
            len(method_raw) + 1,
            len(method_raw) + 1 + len(uri),
        )
    else:
        msg = SipResponse(
            data,
            bo,
            lines,
            sl,
            hs,
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
