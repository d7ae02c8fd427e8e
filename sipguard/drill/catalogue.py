"""The attacks the drill runs, in order: an id, a title, and the policy section that stops it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "ATTACKS",
    "BROWSER_UA",
    "DEFAULT_ACCOUNT",
    "MAX_PACKETS",
    "PHONE_UA",
    "SCANNER_UA",
    "AttackSpec",
    "by_id",
]

#: No attack sends more datagrams than this (requests, ACKs and retries together).
MAX_PACKETS: Final = 500
#: The account the brute force guesses passwords for when the admin names none: made up, so no
#: real phone is ever locked out by a drill (`--account` names a real test account).
DEFAULT_ACCOUNT: Final = "sipguard-drill"
SCANNER_UA: Final = "friendly-scanner"
BROWSER_UA: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)
PHONE_UA: Final = "Yealink SIP-T46S 66.86.0.15"


@dataclass(frozen=True, slots=True)
class AttackSpec:
    id: str
    title: str
    section: str  # the policy section that should stop it (the rule name is filled in later)


ATTACKS: Final = (
    AttackSpec("scanner-ua", "scanner with a scanner User-Agent", "rules (user_agent)"),
    AttackSpec("scanner-disguised", "scanner with a browser User-Agent", "enumeration"),
    AttackSpec("enumeration", "extension enumeration (REGISTER sweep)", "enumeration"),
    AttackSpec("brute-force", "password brute force on a test account", "auth"),
    AttackSpec("register-flood", "REGISTER flood", "limits.REGISTER"),
    AttackSpec("invite-flood", "INVITE flood", "limits.INVITE"),
    AttackSpec("fraud-premium", "toll fraud: premium-rate number", "fraud.destinations"),
    AttackSpec("fraud-satellite", "toll fraud: satellite number", "fraud.destinations"),
    AttackSpec("fraud-country", "toll fraud: a country not allowed", "fraud.destinations"),
    AttackSpec("night-call", "international call in quiet hours", "fraud.quiet_hours"),
    AttackSpec("denied-country", "source in a refused country", "rules (country)"),
    AttackSpec("malformed-burst", "malformed-message burst", "parser"),
)


def by_id(attack: str) -> AttackSpec:
    for spec in ATTACKS:
        if spec.id == attack:
            return spec
    raise KeyError(attack)
