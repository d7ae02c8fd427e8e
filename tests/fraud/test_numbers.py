"""Dialled numbers: normalising the user part and classifying it with libphonenumber."""

from __future__ import annotations

import phonenumbers
import pytest

from sipguard.engine.fraud.numbers import (
    CACHE_SIZE,
    Destination,
    classify_user,
    destination,
    dialled_user,
    is_emergency,
)
from sipguard.policy import NumberType
from tests.fraud.messages import Call, parse_request

SAT = NumberType.SATELLITE


def test_iridium_is_satellite_and_non_geographic() -> None:
    dest = destination(Call("c", to="tel:+881612345678").invite(), "NL")
    assert dest == Destination("+881612345678", None, SAT, True)
    # libphonenumber files it under the non-geographic region "001" (as a mobile number).
    number = phonenumbers.parse("+881612345678")
    assert phonenumbers.region_code_for_number(number) == "001"
    assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE


def test_outside_line_then_dutch_premium_rate() -> None:
    req = Call("c", to="sip:00906123456@pbx.example.net;user=phone").invite()
    dest = destination(req, "NL", "0")
    assert dest == Destination("+31906123456", "NL", NumberType.PREMIUM_RATE, False)


def test_uk_0871_is_what_libphonenumber_says() -> None:
    """0871 is a "service number"; libphonenumber files it as premium rate (the policy denies
    premium_rate and shared_cost alike)."""
    req = Call("c", to="sip:+448712345678@pbx.example.net;user=phone").invite()
    dest = destination(req, "NL", "0")
    expected = phonenumbers.number_type(phonenumbers.parse("+448712345678"))
    assert expected == phonenumbers.PhoneNumberType.PREMIUM_RATE
    assert dest == Destination("+448712345678", "GB", NumberType.PREMIUM_RATE, True)


def test_an_ordinary_national_call() -> None:
    dest = classify_user(b"0201234567", "NL")
    assert dest == Destination("+31201234567", "NL", NumberType.FIXED_LINE, False)
    # With the outside line in front, and with the outside-line prefix configured but not dialled.
    assert classify_user(b"00201234567", "NL", "0") == dest
    assert classify_user(b"0201234567", "NL", "0") == dest


@pytest.mark.parametrize(
    ("user", "home", "prefix", "e164", "country"),
    [
        (b"0031201234567", "NL", "", "+31201234567", "NL"),  # the home IDD, own country
        (b"000441234567890", "BE", "0", "+441234567890", "GB"),  # outside line + IDD 00
        (b"0049301234567", "DE", "", "+49301234567", "DE"),
        (b"90035312345678", "GB", "9", "+35312345678", "IE"),
        (b"9011448712345678", "US", "9", "+448712345678", "GB"),  # US IDD is 011
        (b"011448712345678", "US", "", "+448712345678", "GB"),
        (b"912125550123", "US", "9", "+12125550123", "US"),
        (b"92125550123", "US", "9", "+12125550123", "US"),
        (b"0011448712345678", "AU", "", "+448712345678", "GB"),  # AU's IDD 0011 (a pattern)
    ],
)
def test_international_prefix_comes_from_the_metadata(
    user: bytes, home: str, prefix: str, e164: str, country: str
) -> None:
    dest = classify_user(user, home, prefix)
    assert dest is not None
    assert (dest.e164, dest.country) == (e164, country)
    assert dest.international is (country != home)


def test_the_us_idd_is_not_hard_coded_as_00() -> None:
    # In the US, 00 is not an international prefix (operator): 0044... is no call to GB.
    dest = classify_user(b"00448712345678", "US")
    assert dest is None or dest.country != "GB"


@pytest.mark.parametrize(
    "user",
    [b"+31-20-123.45.67", b"+31(20)1234567", b"%2B31201234567", b"+31%2020%201234567",
     b"+31201234567;isub=12", b"+31201234567;phone-context=example.net"],
)  # fmt: skip
def test_visual_separators_escapes_and_parameters(user: bytes) -> None:
    dest = classify_user(user, "NL")
    assert dest is not None
    assert dest.e164 == "+31201234567"


@pytest.mark.parametrize("user", [b"alice", b"*72", b"#31#0612345678", b"1001a", b"+", b""])
def test_non_numbers_are_not_phone_calls(user: bytes) -> None:
    assert classify_user(user, "NL", "0") is None


def test_national_numbers_need_a_home_country() -> None:
    assert classify_user(b"0201234567", None) is None
    dest = classify_user(b"+31201234567", None)
    assert dest is not None
    assert dest.international  # without a home country every number is international


def test_satellite_and_international_networks_by_prefix() -> None:
    cases = {
        b"+870772123456": SAT,  # Inmarsat
        b"+8712345678": SAT,  # a former Inmarsat ocean region: unknown to libphonenumber
        b"+881612345678": SAT,  # Iridium
        b"+88216123456": SAT,  # Thuraya, inside +882
        b"+883510012345": NumberType.INTERNATIONAL_NETWORK,
        b"+882123456789": NumberType.INTERNATIONAL_NETWORK,
    }
    for user, kind in cases.items():
        dest = classify_user(user, "NL")
        assert dest is not None, user
        assert (dest.number_type, dest.country, dest.international) == (kind, None, True), user


def test_unknown_country_codes_are_still_destinations() -> None:
    dest = classify_user(b"+9991234567", "NL")
    assert dest == Destination("+9991234567", None, NumberType.UNKNOWN, True)


def test_countries_are_regions_not_calling_codes() -> None:
    guernsey = classify_user(b"+447781123456", "GB")
    jamaica = classify_user(b"+18765550123", "US")
    assert guernsey is not None
    assert jamaica is not None
    assert (guernsey.country, guernsey.international) == ("GG", True)
    assert (jamaica.country, jamaica.international) == ("JM", True)


def test_other_number_types() -> None:
    expected = {
        b"0800 1234": NumberType.TOLL_FREE,
        b"0612345678": NumberType.MOBILE,
        b"0851234567": NumberType.VOIP,
    }
    for user, kind in expected.items():
        dest = classify_user(user.replace(b" ", b""), "NL")
        assert dest is not None
        assert dest.number_type is kind, user


def test_dialled_user_prefers_the_request_uri_and_falls_back_to_to() -> None:
    req = Call("c", to="sip:+31201234567@pbx.example.net").invite()
    assert dialled_user(req) == b"+31201234567"
    no_user = parse_request(
        Call("c", to="sip:+448712345678@pbx.example.net")
        .invite_bytes()
        .replace(b"INVITE sip:+448712345678@pbx.example.net", b"INVITE sip:pbx.example.net")
    )
    assert dialled_user(no_user) == b"+448712345678"
    alice = Call("c", to="sip:alice@pbx.example.net").invite()
    assert dialled_user(alice) == b"alice"
    assert destination(alice, "NL") is None


def test_emergency_numbers_with_and_without_the_outside_line() -> None:
    assert is_emergency(b"112", "NL", "0")
    assert is_emergency(b"0112", "NL", "0")
    assert is_emergency(b"911", "US", "9")
    assert is_emergency(b"9911", "US", "9")
    assert is_emergency(b"999", "GB", "9")
    assert not is_emergency(b"1120", "NL", "0")
    assert not is_emergency(b"+112", "NL")
    assert not is_emergency(b"112", None)


def test_the_cache_is_bounded() -> None:
    classify_user.cache_clear()
    for i in range(CACHE_SIZE + 100):
        classify_user(b"+3120%07d" % i, "NL")
    assert classify_user.cache_info().currsize == CACHE_SIZE
