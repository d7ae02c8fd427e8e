"""Answer a request that failed to parse, when it is safe and possible (RFC 3261 16.3, 8.2.6).

The parser refused the message, so this works from the raw lines with the least trust: it copies the Via,
From, To, Call-ID and CSeq lines verbatim and answers only when all of them are there, the top Via looks
like a Via, the start line is a request and the method is not ACK (an ACK is never answered).
"""

from __future__ import annotations

from sipguard.core.sip.limits import MAX_HEADER_COUNT

_WANTED = {
    b"via": b"via",
    b"v": b"via",
    b"from": b"from",
    b"f": b"from",
    b"to": b"to",
    b"t": b"to",
    b"call-id": b"call-id",
    b"i": b"call-id",
    b"cseq": b"cseq",
}
# RFC 3261 25.1 token characters
_TOKEN_CHARS = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
_REASONS = {
    400: b"Bad Request",
    413: b"Request Entity Too Large",
    414: b"Request-URI Too Long",
    416: b"Unsupported URI Scheme",
    420: b"Bad Extension",
    483: b"Too Many Hops",
    501: b"Not Implemented",
    505: b"Version Not Supported",
    513: b"Message Too Large",
}


def salvage_error_response(data: bytes, status: int, to_tag: bytes) -> bytes | None:
    """A stateless `status` response to the unparseable request `data`, or None to drop it silently."""
    head_end = data.find(b"\r\n\r\n")
    head = data if head_end < 0 else data[:head_end]
    lines = head.split(b"\r\n")
    start = lines[0]
    if start.startswith(b"SIP/") or b" " not in start:
        return None  # a response, or no recognisable request line
    method = start.split(b" ", 1)[0]
    if method == b"ACK" or not method or any(c not in _TOKEN_CHARS for c in method):
        return None
    found: dict[bytes, list[bytes]] = {}
    for line in _unfold(lines[1 : MAX_HEADER_COUNT + 1]):
        name, sep, value = line.partition(b":")
        key = _WANTED.get(name.strip().lower())
        if key is not None and sep:
            found.setdefault(key, []).append(value.strip())
    if any(len(found.get(k, ())) != 1 for k in (b"from", b"to", b"call-id", b"cseq")):
        return None
    vias = found.get(b"via")
    if not vias or not vias[0].upper().startswith(b"SIP/2.0/") or b" " not in vias[0]:
        return None
    to = found[b"to"][0]
    if b";tag=" not in to.lower():
        to += b";tag=" + to_tag
    out = [b"SIP/2.0 %d %s" % (status, _REASONS.get(status, b"Error"))]
    out += [b"Via: " + v for v in vias]
    out += [b"From: " + found[b"from"][0], b"To: " + to]
    out += [b"Call-ID: " + found[b"call-id"][0], b"CSeq: " + found[b"cseq"][0]]
    out.append(b"Content-Length: 0")
    return b"\r\n".join(out) + b"\r\n\r\n"


def _unfold(lines: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += b" " + line.strip()
        else:
            out.append(line)
    return out
