"""The country-code list and the number-type names, cross-checked against the data they mirror."""

from __future__ import annotations

import re
from pathlib import Path

import phonenumbers
import pytest

from sipguard.policy.countries import (
    COUNTRY_CODES,
    EXTRA_CODES,
    ISO_3166_1,
    country_hint,
    is_country_code,
)
from sipguard.policy.model import NumberType

TZ_ISO3166 = Path("/usr/share/zoneinfo/iso3166.tab")


def test_iso_list_has_the_249_assigned_codes() -> None:
    assert len(ISO_3166_1) == 249
    assert all(re.fullmatch(r"[A-Z]{2}", cc) for cc in COUNTRY_CODES)
    assert {"XK", "EU", "AP", "AC", "TA"} == EXTRA_CODES
    assert not ISO_3166_1 & EXTRA_CODES
    assert COUNTRY_CODES == ISO_3166_1 | EXTRA_CODES
    for cc in ("NO", "NL", "BE", "LU", "GB", "US", "SS", "CW", "SX", "BQ"):
        assert is_country_code(cc), cc
    for bad in ("UK", "no", "Nl", "USA", "ZZ", "", "AN", "YU", "CS"):
        assert not is_country_code(bad), bad


def test_iso_list_equals_tzdata_iso3166_tab() -> None:
    if not TZ_ISO3166.is_file():
        pytest.skip("tzdata's iso3166.tab is not installed")
    lines = TZ_ISO3166.read_text(encoding="utf-8").splitlines()
    codes = {line.split("\t", 1)[0] for line in lines if line and not line.startswith("#")}
    assert codes == ISO_3166_1


def test_every_phonenumbers_region_is_accepted() -> None:
    regions = set(phonenumbers.SUPPORTED_REGIONS)
    assert regions - COUNTRY_CODES == set()


def test_country_hints() -> None:
    assert country_hint("nl") == "NL"
    assert country_hint("UK") == "GB"
    assert country_hint("uk") == "GB"
    assert country_hint("EL") == "GR"
    assert country_hint("usa") is None
    assert country_hint("Netherlands") is None


def test_number_types_mirror_phonenumbers() -> None:
    names = {
        name.lower()
        for name in vars(phonenumbers.PhoneNumberType)
        if name.isupper() and isinstance(getattr(phonenumbers.PhoneNumberType, name), int)
    }
    ours = {t.value for t in NumberType}
    assert ours - names == {"satellite", "international_network"}
    assert names - ours == set()
