"""Stateless responses built from a request (RFC 3261 8.2.6, 16.7): precomputed status lines.

Never answer an ACK (RFC 3261 17.1.1.3: ACK has no response) or a response: that check is the
caller's job; these functions build what they are asked to.
"""

from __future__ import annotations

from collections.abc import Iterable

from .message import SLOTS, Hdr, SipRequest

__all__ = ["REASONS", "STATUS_LINES", "build_response", "build_response_raw", "reason_phrase"]

REASONS: dict[int, bytes] = {
    100: b"Trying",
    180: b"Ringing",
    181: b"Call Is Being Forwarded",
    182: b"Queued",
    183: b"Session Progress",
    199: b"Early Dialog Terminated",
    200: b"OK",
    202: b"Accepted",
    204: b"No Notification",
    300: b"Multiple Choices",
    301: b"Moved Permanently",
    302: b"Moved Temporarily",
    305: b"Use Proxy",
    380: b"Alternative Service",
    400: b"Bad Request",
    401: b"Unauthorized",
    402: b"Payment Required",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    406: b"Not Acceptable",
    407: b"Proxy Authentication Required",
    408: b"Request Timeout",
    410: b"Gone",
    412: b"Conditional Request Failed",
    413: b"Request Entity Too Large",
    414: b"Request-URI Too Long",
    415: b"Unsupported Media Type",
    416: b"Unsupported URI Scheme",
    417: b"Unknown Resource-Priority",
    420: b"Bad Extension",
    421: b"Extension Required",
    422: b"Session Interval Too Small",
    423: b"Interval Too Brief",
    428: b"Use Identity Header",
    429: b"Provide Referrer Identity",
    433: b"Anonymity Disallowed",
    436: b"Bad Identity-Info",
    437: b"Unsupported Certificate",
    438: b"Invalid Identity Header",
    439: b"First Hop Lacks Outbound Support",
    440: b"Max-Breadth Exceeded",
    469: b"Bad Info Package",
    470: b"Consent Needed",
    480: b"Temporarily Unavailable",
    481: b"Call/Transaction Does Not Exist",
    482: b"Loop Detected",
    483: b"Too Many Hops",
    484: b"Address Incomplete",
    485: b"Ambiguous",
    486: b"Busy Here",
    487: b"Request Terminated",
    488: b"Not Acceptable Here",
    489: b"Bad Event",
    491: b"Request Pending",
    493: b"Undecipherable",
    494: b"Security Agreement Required",
    500: b"Server Internal Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Server Time-out",
    505: b"Version Not Supported",
    513: b"Message Too Large",
    555: b"Push Notification Service Not Supported",
    580: b"Precondition Failure",
    600: b"Busy Everywhere",
    603: b"Decline",
    604: b"Does Not Exist Anywhere",
    606: b"Not Acceptable",
    607: b"Unwanted",
    608: b"Rejected",
}

_CLASS_REASONS = {
    1: b"Provisional",
    2: b"Success",
    3: b"Redirection",
    4: b"Client Error",
    5: b"Server Error",
    6: b"Global Failure",
}

STATUS_LINES: dict[int, bytes] = {
    code: b"SIP/2.0 %d %s\r\n" % (code, REASONS.get(code, _CLASS_REASONS[code // 100]))
    for code in range(100, 700)
}
"""Every status line, built once at import (uvicorn's STATUS_LINE)."""

_TAIL = b"Content-Length: 0\r\n\r\n"
_VIA, _FROM, _TO, _CALL_ID, _CSEQ = 0, 1, 2, 3, 4
assert (_VIA, _CSEQ) == (Hdr.VIA, Hdr.CSEQ)


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase for `status` (a generic one for unregistered codes)."""
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} outside 100..699")
    return REASONS.get(status, _CLASS_REASONS[status // 100])


def _status_line(status: int, reason: bytes | None) -> bytes:
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} outside 100..699")
    if reason is None:
        return STATUS_LINES[status]
    if b"\r" in reason or b"\n" in reason:
        raise ValueError("CR/LF in reason phrase")
    return b"SIP/2.0 %d %s\r\n" % (status, reason)


def _extra(extra_headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    out = []
    for name, value in extra_headers:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
            raise ValueError("CR/LF in an extra header")
        out.append(name + b": " + value + b"\r\n")
    return out


def build_response(
    req: SipRequest,
    status: int,
    reason: bytes | None = None,
    *,
    to_tag: bytes,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
) -> bytes:
    """A response to `req`: status line, every Via line verbatim and in order, From, To (with
    `;tag=to_tag` added when the To has no tag and to_tag is not empty), Call-ID, CSeq (all
    verbatim), `extra_headers` as (name, value) pairs, `Content-Length: 0`.

    Never call it for an ACK. May raise SipParseError when the To header is malformed.
    """
    raw = req.raw
    parts = [_status_line(status, reason)]
    for i in req.indexes(Hdr.VIA):
        s, e = req.field_span(i)
        parts.append(raw[s:e])
    s, e = req.field_span(req.index(Hdr.FROM))
    parts.append(raw[s:e])
    i = req.index(Hdr.TO)
    s, e = req.field_span(i)
    if to_tag and req.to_addr().tag is None:
        ve = req.value_span(i)[1]
        parts.append(raw[s:ve] + b";tag=" + to_tag + raw[ve:e])
    else:
        parts.append(raw[s:e])
    for h in (Hdr.CALL_ID, Hdr.CSEQ):
        s, e = req.field_span(req.index(h))
        parts.append(raw[s:e])
    parts += _extra(extra_headers)
    parts.append(_TAIL)
    return b"".join(parts)


def build_response_raw(
    data: bytes,
    status: int,
    reason: bytes | None = None,
    *,
    to_tag: bytes,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
) -> bytes | None:
    """Best-effort response to a request that parse_message refused (400, 505, 513 ...).

    Copies the Via, From, To, Call-ID and CSeq lines it can find, like build_response. Returns
    None when no sensible reply exists: a response or an ACK, no complete header line, a bare
    CR/LF in the header section, or one of those five headers missing. A datagram whose header
    section is not closed by a blank line (RFC 4475 baddn) is answered from its complete lines.
    """
    data = data.lstrip(b"\r\n")
    hend = data.find(b"\r\n\r\n")
    if hend < 0:
        hend = data.rfind(b"\r\n")
        if hend < 0:
            return None
    head = data[: hend + 2]
    if head.count(b"\r") != head.count(b"\r\n") or head.count(b"\n") != head.count(b"\r\n"):
        return None
    lines = head.split(b"\r\n")[:-1]
    start = lines[0]
    if start[:4].upper() == b"SIP/" or start.split(b" ", 1)[0] == b"ACK":
        return None
    # join folded continuation lines to the line they continue
    fields: list[bytes] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    vias: list[bytes] = []
    firsts: dict[int, bytes] = {}
    for f in fields:
        name, colon, _ = f.partition(b":")
        if not colon:
            continue
        slot = SLOTS.get(name.rstrip(b" \t").lower())
        if slot == _VIA:
            vias.append(f + b"\r\n")
        elif slot is not None and 0 < slot < 5 and slot not in firsts:
            firsts[slot] = f
    if not vias or len(firsts) != 4:
        return None
    to = firsts[_TO]
    if to_tag and b";tag=" not in to.lower().replace(b" ", b""):
        to = to.rstrip(b" \t") + b";tag=" + to_tag
    parts = [_status_line(status, reason), *vias]
    parts += [firsts[_FROM] + b"\r\n", to + b"\r\n"]
    parts += [firsts[_CALL_ID] + b"\r\n", firsts[_CSEQ] + b"\r\n"]
    parts += _extra(extra_headers)
    parts.append(_TAIL)
    return b"".join(parts)
