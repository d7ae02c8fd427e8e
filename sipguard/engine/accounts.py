"""Whose message is it: the account names that rules, detectors and events speak of."""

from __future__ import annotations

from sipguard.core.sip import Method, SipParseError, SipRequest, SipUri, parse_uri

MAX_ACCOUNT = 64  # characters of an attacker-chosen name that reach tables and events


def uri_user(raw_uri: bytes) -> bytes | None:
    """The user part of a SIP/SIPS URI (None for other schemes or a broken URI)."""
    try:
        uri = parse_uri(raw_uri)
    except SipParseError:
        return None
    return uri.user if isinstance(uri, SipUri) else None


def account_name(user: bytes) -> str:
    return user[:MAX_ACCOUNT].decode("utf-8", "backslashreplace")


def account_of(req: SipRequest) -> str | None:
    """The digest username, else the To user of a REGISTER, else the From user."""
    credentials = req.credentials()
    if credentials is not None and credentials.username:
        return account_name(credentials.username)
    target = req.to_addr() if req.method is Method.REGISTER else req.from_addr()
    user = uri_user(target.uri)
    return account_name(user) if user else None
