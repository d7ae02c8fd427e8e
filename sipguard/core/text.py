"""Attacker-controlled text made safe to show: escaped where not printable, cut to a fixed length.

Used wherever bytes from the network reach a human or a machine that reads lines: log lines,
alerts, reports. Escaping comes before any format's own quoting, so every output stays one line
of bounded length whatever the attacker sent.
"""

from __future__ import annotations

__all__ = ["TRUNCATED", "clean"]

TRUNCATED = "..."  # ends a field that was cut


def clean(text: str | None, limit: int) -> str:
    """`text` with every non-printable character escaped (`\\n`, `\\x1b`, `\\u202e`...) and cut
    to at most `limit` characters (ending in `...` when cut). Printable non-ASCII stays."""
    if not text:
        return ""
    if len(text) <= limit and text.isprintable():
        return text
    pieces: list[str] = []
    size = 0
    for ch in text:
        piece = ch if ch.isprintable() else _escape(ch)
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break
    if size <= limit:
        return "".join(pieces)
    while size > limit - len(TRUNCATED):
        size -= len(pieces.pop())
    return "".join(pieces) + TRUNCATED


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
