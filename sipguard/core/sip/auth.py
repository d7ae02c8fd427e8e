"""Credentials in Authorization / Proxy-Authorization (RFC 3261 22, RFC 7616 digest).

Only what a firewall needs: the scheme, and `username`/`realm` for brute-force and enumeration
detectors. Other auth-params are left alone; the header is forwarded untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from .errors import SipParseError
from .uri import _lws, _skip_quoted, is_token, unquote

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


def parse_credentials(header: Hdr, value: bytes) -> DigestCredentials:
    """Parse `credentials = auth-scheme LWS auth-param *(COMMA auth-param)`.

    For any scheme the comma-separated `name=value` params are read (names case-insensitive,
    values token or quoted-string); a malformed quoted string raises SipParseError. Params that
    are not `name=value` (a scheme with a token68 blob) are skipped.
    """
    v = _lws(value).strip(b" ")
    sp = v.find(b" ")
    scheme = v if sp < 0 else v[:sp]
    if not is_token(scheme):
        raise SipParseError("bad authorization scheme")
    username: bytes | None = None
    realm: bytes | None = None
    if sp < 0:
        return DigestCredentials(header, scheme, None, None)
    n = len(v)
    i = sp + 1
    while i < n:
        eq = v.find(b"=", i)
        comma = v.find(b",", i)
        if eq < 0 or 0 <= comma < eq:
            # not a name=value param (token68 or junk): skip to the next comma
            if comma < 0:
                break
            i = comma + 1
            continue
        name = v[i:eq].strip(b" ").lower()
        j = eq + 1
        while j < n and v[j] == 32:
            j += 1
        if j < n and v[j] == 34:  # quoted-string
            k = _skip_quoted(v, j, n)
            val = unquote(v[j:k])
        else:
            k = v.find(b",", j)
            if k < 0:
                k = n
            val = v[j:k].rstrip(b" ")
        if name == b"username":
            username = val
        elif name == b"realm":
            realm = val
        comma = v.find(b",", k)
        if comma < 0:
            if v[k:].strip(b" "):
                raise SipParseError("junk after auth-param")
            break
        if v[k:comma].strip(b" "):
            raise SipParseError("junk after auth-param")
        i = comma + 1
    return DigestCredentials(header, scheme, username, realm)
