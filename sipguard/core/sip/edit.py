"""Byte-preserving rewriting of a parsed message.

MessageEditor collects edits as spans of `msg.raw` and applies them once in `build()`:
everything not touched stays byte-identical (folding, compact names, odd spacing, binary
bodies). Inserts at the same position keep call order; an insert at the start of a replaced
span goes before it. Overlapping edits are a programming error (ValueError in build()).
"""

from __future__ import annotations

from .message import HEADER_NAMES, Hdr, HeaderValue, SipMessage, SipRequest
from .parser import parse_message
from .uri import Via, param_spans, split_list

__all__ = [
    "MessageEditor",
    "add_header",
    "decrement_max_forwards",
    "insert_via",
    "remove_headers",
    "remove_top_via",
    "set_request_uri",
]


class MessageEditor:
    """Edits of one message, applied by `build()` (the message itself is never changed)."""

    __slots__ = ("_edits", "_msg")

    def __init__(self, msg: SipMessage) -> None:
        self._msg = msg
        # (start, is a replacement, call number, end, data): plain tuple order is the order
        # build() applies them in (same start: inserts first, then call order), so it sorts
        # them without a key function (~70 ns less per edit)
        self._edits: list[tuple[int, bool, int, int, bytes]] = []

    @property
    def message(self) -> SipMessage:
        """The message being edited."""
        return self._msg

    # -- primitives -------------------------------------------------------------------------

    def replace(self, start: int, end: int, data: bytes) -> None:
        """Replace `raw[start:end]` with `data` (start == end inserts)."""
        if not 0 <= start <= end <= len(self._msg.raw):
            raise ValueError("edit span outside the message")
        edits = self._edits
        edits.append((start, end != start, len(edits), end, data))

    def insert(self, pos: int, data: bytes) -> None:
        """Insert `data` at `pos` of `raw`."""
        self.replace(pos, pos, data)

    def build(self) -> bytes:
        """The edited message (msg.raw itself when there are no edits)."""
        raw = self._msg.raw
        edits = self._edits
        if not edits:
            return raw
        out: list[bytes] = []
        cur = 0
        for s, _, _, e, d in sorted(edits):
            if s < cur:
                raise ValueError("overlapping edits")
            out.append(raw[cur:s])
            out.append(d)
            cur = e
        out.append(raw[cur:])
        return b"".join(out)

    # -- positions --------------------------------------------------------------------------

    def _after_start_line(self) -> int:
        return self._msg.raw.find(b"\r\n") + 2

    def _end_of_headers(self) -> int:
        return self._msg.body_offset - 2

    # -- operations -------------------------------------------------------------------------

    def insert_via(self, value: bytes) -> None:
        """Add `Via: value` as the new top Via (a line of its own before the first Via)."""
        fi = self._msg.index(Hdr.VIA)
        pos = self._msg.field_start(fi) if fi >= 0 else self._after_start_line()
        self.insert(pos, b"Via: " + value + b"\r\n")

    def remove_top_via(self) -> None:
        """Remove the first Via value: its whole line when the line holds only it, otherwise
        the value and the comma (and LWS) after it."""
        fi = self._msg.index(Hdr.VIA)
        if fi < 0:
            raise ValueError("no Via to remove")
        self._remove_in_field(fi, 0)

    def _remove_in_field(self, fi: int, k: int) -> None:
        msg = self._msg
        vs, ve = msg.value_span(fi)
        spans = [sp for sp in split_list(msg.raw, vs, ve) if sp[0] < sp[1]]
        if len(spans) <= 1:
            self.replace(*msg.field_span(fi), b"")
        elif k == 0:
            self.replace(spans[0][0], spans[1][0], b"")
        else:
            self.replace(spans[k - 1][1], spans[k][1], b"")

    def remove_value(self, hv: HeaderValue) -> None:
        """Remove one element of a list header (the whole line if it is the only one)."""
        self._remove_in_field(hv.field_index, hv.index_in_field)

    def set_via_param(self, via: Via, name: bytes, value: bytes | None) -> None:
        """Set `;name=value` (`;name` when value is None) on `via` (from msg.vias()),
        replacing the parameter in place when present, else appending it to the value.

        The caller formats the value (e.g. `format_host` is not applied to received=).
        """
        text = b";" + name if value is None else b";" + name + b"=" + value
        lname = name.lower()
        for pname, _ in via.params:  # the parsed parameters say whether it is there at all
            if pname == lname:
                break
        else:
            self.insert(via.end, text)
            return
        for pname, ps, pe in param_spans(self._msg.raw, via.start, via.end):
            if pname == lname:
                self.replace(ps, pe, text)
                return
        self.insert(via.end, text)

    def add_header(self, name: bytes, value: bytes, *, first: bool = False) -> None:
        """Add `name: value` after the last header, or right after the start line."""
        pos = self._after_start_line() if first else self._end_of_headers()
        self.insert(pos, name + b": " + value + b"\r\n")

    def remove_headers(self, h: Hdr) -> None:
        """Remove every header line of slot `h` (long and compact names)."""
        msg = self._msg
        for i in msg.indexes(h):
            self.replace(*msg.field_span(i), b"")

    def remove_named(self, name: bytes) -> None:
        """Remove every header line called `name` (case-insensitive; for Hdr.OTHER names)."""
        lname = name.lower()
        msg = self._msg
        p = msg._p
        for i in range(len(msg._sl)):
            if p[2 * i + 1].partition(b":")[0].rstrip(b" \t").lower() == lname:
                self.replace(*msg.field_span(i), b"")

    def set_request_uri(self, uri: bytes) -> None:
        """Replace the Request-URI."""
        msg = self._msg
        if not isinstance(msg, SipRequest):
            raise TypeError("a response has no Request-URI")
        self.replace(msg.uri_start, msg.uri_end, uri)

    def decrement_max_forwards(self) -> None:
        """Max-Forwards - 1 (RFC 3261 16.6 step 3), or add `Max-Forwards: 70` when absent.

        Max-Forwards 0 must be answered with 483, never forwarded: ValueError.
        """
        msg = self._msg
        mf = msg.max_forwards()
        if mf is None:
            self.add_header(HEADER_NAMES[Hdr.MAX_FORWARDS], b"70")
            return
        if mf <= 0:
            raise ValueError("Max-Forwards is 0: answer 483, do not forward")
        self.replace(*msg.value_span(msg.index(Hdr.MAX_FORWARDS)), b"%d" % (mf - 1))

    def ensure_content_length(self) -> None:
        """Add `Content-Length: <body length>` when absent (needed on stream transports)."""
        msg = self._msg
        if msg.content_length() is None:
            self.add_header(
                HEADER_NAMES[Hdr.CONTENT_LENGTH], b"%d" % (len(msg.raw) - msg.body_offset)
            )


# -- functional wrappers on bytes ---------------------------------------------------------


def insert_via(raw: bytes, value: bytes) -> bytes:
    """`raw` with `Via: value` added as the top Via."""
    ed = MessageEditor(parse_message(raw))
    ed.insert_via(value)
    return ed.build()


def remove_top_via(raw: bytes) -> bytes:
    """`raw` without its first Via value."""
    ed = MessageEditor(parse_message(raw))
    ed.remove_top_via()
    return ed.build()


def add_header(raw: bytes, name: bytes, value: bytes, *, first: bool = False) -> bytes:
    """`raw` with `name: value` added."""
    ed = MessageEditor(parse_message(raw))
    ed.add_header(name, value, first=first)
    return ed.build()


def remove_headers(raw: bytes, h: Hdr) -> bytes:
    """`raw` without any header line of slot `h`."""
    ed = MessageEditor(parse_message(raw))
    ed.remove_headers(h)
    return ed.build()


def set_request_uri(raw: bytes, uri: bytes) -> bytes:
    """`raw` (a request) with its Request-URI replaced."""
    ed = MessageEditor(parse_message(raw))
    ed.set_request_uri(uri)
    return ed.build()


def decrement_max_forwards(raw: bytes) -> bytes:
    """`raw` with Max-Forwards decremented (or `Max-Forwards: 70` added)."""
    ed = MessageEditor(parse_message(raw))
    ed.decrement_max_forwards()
    return ed.build()
