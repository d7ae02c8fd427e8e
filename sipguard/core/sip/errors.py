"""The one exception of the SIP core."""

from __future__ import annotations

__all__ = ["SipParseError"]


class SipParseError(Exception):
    """The only exception the parser, the accessors and the framer raise; anything else is a bug.

    `status_hint` is the status a UAS/proxy would answer with (400 by default; 413 body too large,
    414 Request-URI too long, 505 version not supported, 513 message too large, 501 unknown method
    with a CSeq mismatch). The engine decides whether to answer at all.
    """

    __slots__ = ("reason", "status_hint")

    def __init__(self, reason: str, *, status_hint: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint

    def __repr__(self) -> str:
        return f"SipParseError({self.reason!r}, status_hint={self.status_hint})"
