"""Credentials in Authorization / Proxy-Authorization (RFC 3261 22, RFC 7616 digest).

Only what a firewall needs: the scheme, and `username`/`realm` for brute-force and enumeration
detectors. The header itself is forwarded untouched, so reading it is lenient: a malformed
auth-param list yields what could be read before the damage, never an exception.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from .uri import TOKEN_CHARS, _lws, unquote

if TYPE_CHECKING:
    from .message import Hdr

__all__ = ["DigestCredentials", "parse_credentials"]


class DigestCredentials(NamedTuple):
    """`header` is Hdr.AUTHORIZATION or Hdr.PROXY_AUTHORIZATION; `scheme` as sent (any case).

    `username`/`realm` are unquoted (quoted-pairs resolved), None when absent.
    """

    header: Hdr
    scheme: bytes
    username: bytes | None
    realm: bytes | None

    @property
    def is_digest(self) -> bool:
        """True for the Digest scheme (case-insensitive, RFC 7235 2.1)."""
        return self.scheme.lower() == b"digest"


_new = tuple.__new__
# the usual shape (username first, realm second, no quoted-pairs): one regex match
_FAST = re.compile(
    rb' *+(Digest) ++username *+= *+"([^"\\]*+)" *+, *+realm *+= *+"([^"\\]*+)" *+(?:,|\Z)', re.I
)
# one auth-param, or any single octet (so consecutive findall matches tile the whole value)
_PARAM = re.compile(
    rb' *([!%\'*+\-.0-9A-Z_`a-z~]+) *= *("(?:[^"\\]|\\.)*"|[^ ,"]*) *(?:,|\Z)|(.)', re.S
)


def parse_credentials(header: Hdr, value: bytes) -> DigestCredentials:
    """Parse `credentials = auth-scheme LWS auth-param *(COMMA auth-param)` (any scheme).

    Param names are case-insensitive, values token or quoted-string. Reading stops at the
    first octet that does not fit the grammar (a token68 blob, an unterminated quote).
    """
    m = _FAST.match(value)
    if m is not None:
        scheme, user, realm = m.groups()
        return _new(DigestCredentials, (header, scheme, user, realm))
    v = _lws(value).strip(b" ")
    sp = v.find(b" ")
    scheme = v if sp < 0 else v[:sp]
    username: bytes | None = None
    realm_: bytes | None = None
    if sp >= 0 and not scheme.translate(None, TOKEN_CHARS):
        for name, val, junk in _PARAM.findall(v, sp + 1):
            if junk:
                break
            lname = name.lower()
            if lname == b"username" and username is None:
                username = unquote(val)
            elif lname == b"realm" and realm_ is None:
                realm_ = unquote(val)
    return _new(DigestCredentials, (header, scheme, username, realm_))
