"""Contact aliases: a client's Contact URI rewritten to point at sipguard, carrying where the
client really is.

A phone behind NAT registers `sip:alice@192.168.1.20:5060`. The PBX can't reach that, so sipguard
gives the
PBX `sip:alice@GUARD-INSIDE:PORT;sgalias=TOKEN` instead, where TOKEN holds the client's real source
(transport,
IP, port) and its original URI. When the PBX later sends a request to that URI, sipguard decodes
TOKEN, puts the
original URI back as Request-URI and sends it to the real source. The encoding is deterministic, so
a phone that
re-registers keeps one binding at the PBX instead of piling up new ones.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass

from sipguard.policy.model import Transport

ALIAS_PARAM = b"sgalias"
_TRANSPORT_CODES = {Transport.UDP: b"u", Transport.TCP: b"t"}
_CODE_TRANSPORTS = {v: k for k, v in _TRANSPORT_CODES.items()}


@dataclass(frozen=True, slots=True)
class AliasTarget:
    transport: Transport
    ip: str
    port: int
    uri: bytes  # the client's original Contact URI


def encode_alias(transport: Transport, ip: str, port: int, uri: bytes) -> bytes:
    raw = b"|".join((_TRANSPORT_CODES[transport], ip.encode("ascii"), b"%d" % port, uri))
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def decode_alias(token: bytes) -> AliasTarget | None:
    """The target a token names, or None when it is not one of ours (never raises on junk)."""
    try:
        raw = base64.urlsafe_b64decode(token + b"=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    parts = raw.split(b"|", 3)
    if len(parts) != 4 or parts[0] not in _CODE_TRANSPORTS or not parts[2].isdigit():
        return None
    try:
        ip = str(ipaddress.ip_address(parts[1].decode("ascii")))
    except (UnicodeDecodeError, ValueError):
        return None
    port = int(parts[2])
    if not 0 < port < 65536 or not parts[3]:
        return None
    return AliasTarget(_CODE_TRANSPORTS[parts[0]], ip, port, parts[3])
