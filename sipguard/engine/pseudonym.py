"""Phone numbers in stored records, replaced by keyed pseudonyms (`records.pseudonymise_numbers`).

A number becomes what is left of it once the subscriber is gone, plus a short keyed hash:

    call to +881631234567: satellite ...     ->  call to +881…#3fa9c2d1: satellite ...
    account '0031612345678'                  ->  account '0031…#0b7e44a2'
    account '0612345678'                     ->  account '0…#91c0d3f7'

The country calling code stays (a reviewer still sees "calls to satellite numbers", +881), the
hash is HMAC-SHA256 under a secret key, cut to 8 hex digits, over the digits after the
international prefix, so the same number always gets the same pseudonym (+31612345678 and
0031612345678 too) and two events naming one number can be told apart from two naming two
numbers, but the number cannot be read back or guessed without the key (the phone number space is
small enough to try every number: that is why the hash is keyed, and why the key must not travel
with the store).

What counts as a number (all else is left exactly as it was):

* `+` followed by 6 or more digits (E.164, as the fraud findings write destinations);
* `00` followed by 6 or more digits, the first not 0 (the international prefix);
* any other run of 7 or more digits (national numbers, numeric accounts). Shorter runs stay:
  extensions (`101`, `2001`), counts, ports, hours.

Two things that look like numbers are kept: a pseudonym already made (the transform is
idempotent) and the epoch time of `banned until 1712345678` in ban events. Over-matching (a long
build number in a User-Agent) costs a little readability; under-matching would leak a number.

Pure: no I/O, no clock. The key comes from the caller (`sipguard.services.records`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from collections.abc import Iterable

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from sipguard.engine.effects import BanIssued, Effect, SecurityEvent

__all__ = ["HASH_DIGITS", "MIN_KEY_BYTES", "Pseudonymiser", "country_calling_code"]

HASH_DIGITS = 8  # hex digits of the keyed hash kept in a pseudonym (32 bits)
MIN_KEY_BYTES = 16
ELLIPSIS = "\u2026"
_CACHE_SIZE = 10_000  # numbers remembered (a dict cleared when full: bounded, cheap)

# events sipguard writes about itself: hashes and versions, never a phone number
_NO_NUMBERS = frozenset({"policy_reload", "geo_stale"})

_CODES = frozenset(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)

_TOKEN = re.compile(
    rf"(?P<keep>until [0-9]+|(?<![0-9])(?:\+|00)?[0-9]{{0,3}}{ELLIPSIS}#[0-9a-f]{{{HASH_DIGITS}}})"
    r"|(?<![0-9])(?:"
    r"\+(?P<plus>[0-9]{6,})"
    r"|00(?P<intl>[1-9][0-9]{5,})"
    r"|(?P<bare>[0-9]{7,})"
    r")(?![0-9])"
)


def country_calling_code(digits: str) -> str:
    """The ITU country calling code `digits` (an international number without its prefix) starts
    with, or "" when none is assigned. The codes are prefix-free, so at most one matches."""
    for size in (1, 2, 3):
        if digits[:size] in _CODES:
            return digits[:size]
    return ""


class Pseudonymiser:
    """Replaces the phone numbers in text, events and bans with keyed pseudonyms."""

    __slots__ = ("_cache", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a pseudonym key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._cache: dict[str, str] = {}

    def text(self, text: str) -> str:
        """`text` with every number in it replaced (see the module doc for what a number is)."""
        if not any(c.isdigit() for c in text):
            return text
        return _TOKEN.sub(self._replace, text)

    def event(self, event: SecurityEvent) -> SecurityEvent:
        if event.kind in _NO_NUMBERS:
            return event
        account = None if event.account is None else self.text(event.account)
        detail = self.text(event.detail)
        if account == event.account and detail == event.detail:
            return event
        return dataclasses.replace(event, account=account, detail=detail)

    def ban(self, ban: BanIssued) -> BanIssued:
        evidence = self.text(ban.evidence)
        return ban if evidence == ban.evidence else dataclasses.replace(ban, evidence=evidence)

    def effects(self, batch: Iterable[Effect]) -> list[Effect]:
        """The batch with events and ban evidence pseudonymised; everything else as it was (the
        login history keeps its account names: the unusual-login check reads them back)."""
        out: list[Effect] = []
        for effect in batch:
            if isinstance(effect, SecurityEvent):
                effect = self.event(effect)
            elif isinstance(effect, BanIssued):
                effect = self.ban(effect)
            out.append(effect)
        return out

    def _replace(self, match: re.Match[str]) -> str:
        if match.group("keep") is not None:
            return match.group(0)
        plus, intl = match.group("plus"), match.group("intl")
        if plus is not None or intl is not None:
            digits = plus if plus is not None else intl
            shown = ("+" if plus is not None else "00") + country_calling_code(digits)
        else:
            digits = match.group("bare")
            shown = "0" if digits.startswith("0") else ""
        return f"{shown}{ELLIPSIS}#{self._hash(digits)}"

    def _hash(self, digits: str) -> str:
        cached = self._cache.get(digits)
        if cached is None:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            mac = hmac.new(self._key, digits.encode("ascii"), hashlib.sha256)
            cached = self._cache[digits] = mac.hexdigest()[:HASH_DIGITS]
        return cached
