"""HTTP digest authentication for SIP (RFC 2617 MD5, RFC 7616 field names): both sides.

For sipguard's simulated user agents: the drill's password guesser, the demo's phones (answers)
and the demo's toy PBX (challenge and check). The proxy itself never computes a digest: it only
reads who logs in (`auth.py`) and what the PBX answers. MD5 is what the protocol asks for (every
PBX and phone speaks it), not a choice made here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = [
    "DigestChallenge",
    "DigestResponse",
    "authorization",
    "challenge",
    "expected_response",
    "parse_challenge",
    "parse_digest",
    "verify",
]

# one auth-param: name = token | quoted-string, then a comma or the end
_PARAM = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|$)')
_MAX_VALUE = 512  # characters of any one parameter: the digest of an attacker is not our problem


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def parse_digest(value: bytes | str) -> dict[str, str] | None:
    """The parameters of `Digest k=v, ...` (names lower-cased, quotes removed); None when the
    scheme is not Digest or the list does not parse."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    scheme, _, rest = text.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            return None
        name, raw = m.group(1).lower(), m.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if len(raw) > _MAX_VALUE:
            return None
        params.setdefault(name, raw)
        pos = m.end()
    return params


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """What a `WWW-Authenticate: Digest ...` offers."""

    realm: str
    nonce: str
    qop: str | None = None  # "auth" when offered
    opaque: str | None = None
    stale: bool = False


@dataclass(frozen=True, slots=True)
class DigestResponse:
    """The fields of an `Authorization: Digest ...` that the check needs."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    algorithm: str = "MD5"

    @classmethod
    def parse(cls, value: bytes) -> DigestResponse | None:
        p = parse_digest(value)
        if p is None:
            return None
        try:
            return cls(
                username=p["username"],
                realm=p["realm"],
                nonce=p["nonce"],
                uri=p["uri"],
                response=p["response"].lower(),
                qop=p.get("qop"),
                nc=p.get("nc"),
                cnonce=p.get("cnonce"),
                algorithm=p.get("algorithm", "MD5"),
            )
        except KeyError:
            return None


def challenge(realm: str, nonce: str, *, stale: bool = False) -> bytes:
    """The value of a `WWW-Authenticate` header: MD5, qop=auth offered."""
    text = f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'
    if stale:
        text += ", stale=true"
    return text.encode("ascii")


def parse_challenge(value: bytes) -> DigestChallenge | None:
    p = parse_digest(value)
    if p is None or "realm" not in p or "nonce" not in p:
        return None
    qops = {q.strip() for q in p.get("qop", "").split(",") if q.strip()}
    return DigestChallenge(
        realm=p["realm"],
        nonce=p["nonce"],
        qop="auth" if "auth" in qops else None,
        opaque=p.get("opaque"),
        stale=p.get("stale", "").lower() == "true",
    )


def expected_response(
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """RFC 2617 section 3.2.2.1 `request-digest` with MD5 (with qop=auth, or RFC 2069 style)."""
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def verify(answer: DigestResponse, password: str, method: str) -> bool:
    """Whether `answer` proves knowledge of `password` (constant-time compare)."""
    if answer.algorithm.upper() != "MD5":
        return False
    if answer.qop is not None and (answer.qop != "auth" or not answer.nc or not answer.cnonce):
        return False
    want = expected_response(
        username=answer.username,
        realm=answer.realm,
        password=password,
        method=method,
        uri=answer.uri,
        nonce=answer.nonce,
        qop=answer.qop,
        nc=answer.nc,
        cnonce=answer.cnonce,
    )
    return hmac.compare_digest(want, answer.response)


def authorization(
    offer: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
) -> bytes:
    """The value of an `Authorization` header answering `offer` (what a phone sends)."""
    count = f"{nc:08x}"
    response = expected_response(
        username=username,
        realm=offer.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=offer.nonce,
        qop=offer.qop,
        nc=count if offer.qop else None,
        cnonce=cnonce if offer.qop else None,
    )
    parts = [
        f'username="{username}"',
        f'realm="{offer.realm}"',
        f'nonce="{offer.nonce}"',
        f'uri="{uri}"',
        f'response="{response}"',
        "algorithm=MD5",
    ]
    if offer.qop:
        parts += [f"qop={offer.qop}", f"nc={count}", f'cnonce="{cnonce}"']
    if offer.opaque is not None:
        parts.append(f'opaque="{offer.opaque}"')
    return ("Digest " + ", ".join(parts)).encode("utf-8")
