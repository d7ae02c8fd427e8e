"""Dialled numbers: the user part of a Request-URI or To URI becomes a classified `Destination`.

What a phone or a PBX writes as the number, and how it is read:

* `tel:+881612345678`, `sip:+448712345678@host;user=phone`: global numbers, read as they are.
* `sip:00906123456@host;user=phone` with `outside_line_prefix: "0"` and `home_country: NL`: the
  outside-line digits are removed once (`0906123456`), then the number is read as dialled in the
  home country: a national number (`0906...` -> +31 906...) or, when it starts with the home
  country's international prefix (`00` in NL/BE/DE/GB, `011` in the US: the pattern comes from
  libphonenumber's metadata for the region), a global one.
* Visual separators (`-`, `.`, `(`, `)`, spaces), `%`-escapes and `;`-parameters of the user part
  (`;isub=`, `;phone-context=`, `;ext=`) are ignored. The `phone-context` is not interpreted: the
  number is read as dialled in the home country.
* Users that are not numbers (`sip:alice@...`, feature codes with `*` or `#`) are not phone calls:
  `destination()` returns None. So does a national-format number when there is no home country
  (only `+` numbers can be read without one), and a national number libphonenumber cannot parse.
* Emergency numbers of the home country (`is_emergency`) are classified like any short number, but
  the guard never refuses them.
* A global number with a country code libphonenumber does not know (`+871...`, a former Inmarsat
  code) is still a `Destination`: no country, type `unknown` (or `satellite` by its prefix),
  international.

Classification: `phonenumbers.number_type`, except that the country calling codes of satellite
services are `satellite` (+870 Inmarsat, +871..+874 the former Inmarsat ocean regions, +881 GMSS:
Iridium, Globalstar, ..., and +882 16 Thuraya) and the other +882/+883 numbers are
`international_network`, whatever libphonenumber says (it files +881 6 under mobile). The country is
libphonenumber's region for the number (so +44 7781 is GG, Guernsey, and +1 876 is JM, not US),
None for non-geographic numbers (libphonenumber's region "001"). `international` is true when the
country is not the home country (a non-geographic number is always international; without a home
country every number is).

Pure and cached: `classify_user` keeps the last `CACHE_SIZE` results (a flood of distinct numbers
only costs misses).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from sipguard.core.sip import SipParseError, SipRequest, SipUri, TelUri, parse_uri
from sipguard.policy.model import NumberType

__all__ = [
    "CACHE_SIZE",
    "INTERNATIONAL_NETWORK_PREFIXES",
    "SATELLITE_PREFIXES",
    "Destination",
    "classify_user",
    "destination",
    "dialled_user",
    "is_emergency",
]

#: Distinct (user, home, outside line) results remembered.
CACHE_SIZE = 4096
#: Longest digit string read as a number (E.164 allows 15 digits; prefixes add a few).
MAX_DIGITS = 32
#: E.164 prefixes (without `+`) of satellite services, checked before libphonenumber's type.
SATELLITE_PREFIXES = ("870", "871", "872", "873", "874", "881", "88216")
#: International networks (ITU-T E.164 shared codes), after the satellite prefixes.
INTERNATIONAL_NETWORK_PREFIXES = ("882", "883")

_NON_GEO = frozenset({"001", "ZZ"})
_SEPARATORS = b" -.()"
_DIGITS = re.compile(rb"\+?[0-9]+")

_TYPES: dict[int, NumberType] = {
    PhoneNumberType.FIXED_LINE: NumberType.FIXED_LINE,
    PhoneNumberType.MOBILE: NumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: NumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.TOLL_FREE: NumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE: NumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST: NumberType.SHARED_COST,
    PhoneNumberType.VOIP: NumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER: NumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER: NumberType.PAGER,
    PhoneNumberType.UAN: NumberType.UAN,
    PhoneNumberType.VOICEMAIL: NumberType.VOICEMAIL,
    PhoneNumberType.UNKNOWN: NumberType.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a call goes. `e164` is `+` and digits; `country` an ISO 3166-1 alpha-2 code (or a
    libphonenumber region such as GG, AC, TA), None for non-geographic numbers."""

    e164: str
    country: str | None
    number_type: NumberType
    international: bool

    def where(self) -> str:
        """`GB premium_rate` / `non-geographic satellite`, for event details."""
        return f"{self.country or 'non-geographic'} {self.number_type.value}"


def dialled_user(req: SipRequest) -> bytes | None:
    """The raw user part the call is for: the Request-URI's (a proxy routes on it), else the To
    URI's when the Request-URI has no user (`sip:pbx.example.net` with the number in To)."""
    user = _uri_user(req.uri)
    if user is None:
        try:
            to = req.to_addr().uri
        except SipParseError:
            return None
        user = _uri_user(to)
    return user


def destination(req: SipRequest, home: str | None, outside_line: str = "") -> Destination | None:
    """The classified destination of an INVITE, None when it is not a phone number."""
    user = dialled_user(req)
    return None if user is None else classify_user(user, home, outside_line)


@functools.lru_cache(maxsize=CACHE_SIZE)
def classify_user(user: bytes, home: str | None, outside_line: str = "") -> Destination | None:
    """Classify a dialled user part (see the module docstring); None when it is no number."""
    digits = _digits(user)
    if digits is None:
        return None
    if digits.startswith("+"):
        return _global(digits[1:], home)
    if outside_line and digits.startswith(outside_line):
        digits = digits[len(outside_line) :]
    if not digits or home is None:
        return None
    idd = _international_prefix(home)
    if idd is not None:
        m = idd.match(digits)
        if m is not None and m.end() < len(digits):
            return _global(digits[m.end() :], home)
    try:
        number = phonenumbers.parse(digits, home)
    except NumberParseException:
        return None
    return _classified(number, home)


@functools.lru_cache(maxsize=CACHE_SIZE)
def is_emergency(user: bytes, home: str | None, outside_line: str = "") -> bool:
    """An emergency number of the home country (112, 911, 999, ...: libphonenumber's short-number
    data), dialled with or without the outside-line prefix. Such calls are never refused."""
    if home is None:
        return False
    digits = _digits(user)
    if digits is None or digits.startswith("+"):
        return False
    if phonenumbers.is_emergency_number(digits, home):
        return True
    if outside_line and digits.startswith(outside_line):
        rest = digits[len(outside_line) :]
        return bool(rest) and phonenumbers.is_emergency_number(rest, home)
    return False


def _uri_user(uri: bytes) -> bytes | None:
    try:
        parsed = parse_uri(uri)
    except SipParseError:
        return None
    if isinstance(parsed, SipUri):
        return parsed.user
    if isinstance(parsed, TelUri):
        return parsed.number
    return None


def _digits(user: bytes) -> str | None:
    """`+`/digits of a user part without separators, escapes and parameters; None if not a
    number."""
    if b"%" in user:
        user = unquote_to_bytes(user)
    user = user.split(b";", 1)[0].translate(None, _SEPARATORS)
    if not _DIGITS.fullmatch(user) or len(user) > MAX_DIGITS:
        return None
    return user.decode("ascii")


@functools.lru_cache(maxsize=256)
def _international_prefix(region: str) -> re.Pattern[str] | None:
    """The region's international (IDD) prefix pattern from libphonenumber's metadata."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None or not meta.international_prefix:
        return None
    return re.compile(f"(?:{meta.international_prefix})")


def _global(digits: str, home: str | None) -> Destination | None:
    if not digits:
        return None
    try:
        number = phonenumbers.parse("+" + digits)
    except NumberParseException:
        # An unknown country code (or a number too long or short): nothing to read a country
        # from, but still a number someone can route. No country: `allow` lists refuse it.
        return Destination("+" + digits, None, _by_prefix(digits) or NumberType.UNKNOWN, True)
    return _classified(number, home)


def _classified(number: phonenumbers.PhoneNumber, home: str | None) -> Destination:
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    cc = number.country_code or 0
    region = phonenumbers.region_code_for_number(number) or (
        phonenumbers.region_code_for_country_code(cc)
    )
    country = None if region in _NON_GEO else region
    kind = _by_prefix(e164[1:]) or _TYPES.get(phonenumbers.number_type(number), NumberType.UNKNOWN)
    international = country is None or country != home
    return Destination(e164, country, kind, international)


def _by_prefix(digits: str) -> NumberType | None:
    if digits.startswith(SATELLITE_PREFIXES):
        return NumberType.SATELLITE
    if digits.startswith(INTERNATIONAL_NETWORK_PREFIXES):
        return NumberType.INTERNATIONAL_NETWORK
    return None
