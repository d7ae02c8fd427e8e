"""StreamFramer: whole SIP messages out of a TCP/TLS byte stream (RFC 3261 18.3).

Messages are framed by Content-Length, which a stream transport requires. A CRLFCRLF between
messages is an RFC 5626 keep-alive ping, yielded as b"" (answer with a CRLF pong); a lone CRLF
(a pong, or the CRLFs RFC 3261 7.5 says to ignore before a start line) is skipped. The framer
remembers how far it searched for the end of the header section, so every octet is scanned a
bounded number of times (O(n), no rescans: h11's ReceiveBuffer).
"""

from __future__ import annotations

from .errors import SipParseError
from .limits import MAX_HEADER_SECTION, MAX_MESSAGE_SIZE, MAX_STREAM_BUFFER
from .parser import content_length_of

__all__ = ["StreamFramer"]


class StreamFramer:
    """Feed stream octets; get whole messages (bytes) and keep-alive pings (b"").

    Any SipParseError means the stream cannot be framed any more: close the connection.
    """

    __slots__ = ("_buf", "_error", "_max_buffer", "_max_message", "_need", "_scan")

    def __init__(
        self, max_buffer: int = MAX_STREAM_BUFFER, *, max_message: int = MAX_MESSAGE_SIZE
    ) -> None:
        self._buf = bytearray()
        self._scan = 0  # where the next search for CRLFCRLF starts
        self._need = -1  # total length of the message being collected, once its head is known
        self._max_buffer = max_buffer
        self._max_message = max_message
        self._error: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """Octets received and not yet returned."""
        return len(self._buf)

    @property
    def pending_error(self) -> SipParseError | None:
        """Set when feed() returned messages but the octets after them cannot be framed; the
        next feed() raises it. Close the connection after handling the returned messages."""
        return self._error

    def feed(self, data: bytes) -> list[bytes]:
        """Add `data`; return every message (and b"" per keep-alive ping) now complete.

        Raises SipParseError when the stream cannot be framed. If complete messages came before
        the broken part in the same call, they are returned first and the error is raised by
        the next call (see pending_error), so a pipelined good message is never lost.
        """
        if self._error is not None:
            raise self._error
        out: list[bytes] = []
        try:
            self._frame(data, out)
        except SipParseError as exc:
            if not out:
                raise
            self._error = exc
        return out

    def _frame(self, data: bytes, out: list[bytes]) -> None:
        buf = self._buf
        buf += data
        while True:
            need = self._need
            if need < 0:
                if self._scan == 0 and buf and buf[0] in (13, 10):
                    # between messages: CRLFCRLF ping, CRLF pong, or wait to tell them apart
                    if buf[:4] == b"\r\n\r\n":
                        del buf[:4]
                        out.append(b"")
                        continue
                    if len(buf) < 4 and b"\r\n\r\n".startswith(buf):
                        break  # maybe the first half of a ping: never discard it
                    if buf[:2] == b"\r\n":
                        del buf[:2]
                        continue
                    raise SipParseError("stray CR or LF between messages")
                idx = buf.find(b"\r\n\r\n", max(0, self._scan - 3))
                if idx < 0:
                    self._scan = len(buf)
                    if len(buf) > MAX_HEADER_SECTION:
                        raise SipParseError("header section too large", status_hint=513)
                    break
                if idx > MAX_HEADER_SECTION:
                    raise SipParseError("header section too large", status_hint=513)
                cl = content_length_of(bytes(buf[: idx + 2]))
                if cl is None:
                    raise SipParseError("Content-Length missing on a stream transport")
                need = idx + 4 + cl
                if need > self._max_message:
                    raise SipParseError("message too large", status_hint=513)
                self._need = need
            if len(buf) < need:
                break
            out.append(bytes(buf[:need]))
            del buf[:need]
            self._need = -1
            self._scan = 0
        if len(buf) > self._max_buffer:
            raise SipParseError("stream buffer limit exceeded", status_hint=513)
