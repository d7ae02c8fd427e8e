"""MaxMind DB files: the tests write real .mmdb files (mmdb-writer) and read them through geoip2.

Documentation ranges (RFC 5737, RFC 3849) carry the test data; `MmdbGeo` answers for them, while
the resolver treats them as non-routable, so resolver tests also use 193.0.0.0/21 with made-up
countries (this is a test file, not real data).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

from sipguard.io.geoip import GeoDatabaseError, GeoResolver, MmdbGeo, describe_ips, open_geo
from sipguard.policy.model import GeoSpec

TODAY = datetime.date(2026, 11, 29)
BUILT = datetime.datetime(2026, 10, 1, 12, 0, tzinfo=datetime.UTC)  # 59 days before TODAY


class Writer(MMDBWriter):
    """mmdb-writer stamps `build_epoch` with the clock; tests choose it."""

    def __init__(self, database_type: str, built: datetime.datetime, ip_version: int = 6) -> None:
        super().__init__(
            ip_version=ip_version,
            ipv4_compatible=ip_version == 6,
            database_type=database_type,
            languages=["en"],
            description="sipguard test data",
        )
        self._epoch = int(built.timestamp())

    def _build_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = super()._build_meta()
        meta["build_epoch"] = self._epoch
        return meta


def country(code: str) -> dict[str, Any]:
    return {"iso_code": code, "geoname_id": 1, "names": {"en": code}}


def write(
    path: Path,
    database_type: str,
    records: dict[str, dict[str, Any]],
    *,
    built: datetime.datetime = BUILT,
    ip_version: int = 6,
) -> Path:
    writer = Writer(database_type, built, ip_version)
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


COUNTRY_RECORDS: dict[str, dict[str, Any]] = {
    "203.0.113.0/24": {"continent": {"code": "EU"}, "country": country("FR")},
    "198.51.100.0/24": {"country": country("BR"), "registered_country": country("BR")},
    "192.0.2.0/24": {"registered_country": country("IT")},  # no `country`: the registry's is used
    "2001:db8:1::/48": {"country": country("DE")},
    "193.0.0.0/21": {"country": country("CH")},
}
CITY_RECORDS: dict[str, dict[str, Any]] = {
    "203.0.113.0/24": {
        "city": {"geoname_id": 2988507, "names": {"en": "Paris"}},
        "country": country("FR"),
        "location": {"latitude": 48.86, "longitude": 2.35, "time_zone": "Europe/Paris"},
        "subdivisions": [{"iso_code": "IDF", "names": {"en": "Ile-de-France"}}],
    },
    "198.51.100.0/24": {"city": {"names": {"en": "Recife"}}, "country": country("BR")},
    "2001:db8:2::/48": {"country": country("JP")},
}


@pytest.fixture
def country_db(tmp_path: Path) -> Path:
    return write(tmp_path / "GeoLite2-Country.mmdb", "GeoLite2-Country", COUNTRY_RECORDS)


@pytest.fixture
def city_db(tmp_path: Path) -> Path:
    return write(tmp_path / "GeoLite2-City.mmdb", "GeoLite2-City", CITY_RECORDS)


def test_country_database(country_db: Path) -> None:
    db = MmdbGeo(str(country_db))
    try:
        assert db.source == "mmdb"
        assert db.database_type == "GeoLite2-Country"
        assert db.lookup("203.0.113.77") == "FR"
        assert db.lookup("198.51.100.1") == "BR"
        assert db.lookup("192.0.2.1") == "IT"
        assert db.lookup("2001:db8:1:ffff::1") == "DE"
        assert db.lookup("2001:db8:2::1") is None
        assert db.lookup("8.8.8.8") is None
        assert db.errors == 0
    finally:
        db.close()


def test_city_database(city_db: Path) -> None:
    db = MmdbGeo(str(city_db))
    try:
        assert db.database_type == "GeoLite2-City"
        assert db.lookup("203.0.113.1") == "FR"
        assert db.lookup("198.51.100.200") == "BR"
        assert db.lookup("2001:db8:2:1::5") == "JP"
        assert db.lookup("2001:db8:1::5") is None
    finally:
        db.close()


def test_flat_ipinfo_style_database(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ipinfo_lite.mmdb",
        "ipinfo bundle_location_lite.mmdb",
        {
            "203.0.113.0/24": {"country": "France", "country_code": "FR", "asn": "AS64500"},
            "2001:db8:3::/48": {"country": "Brazil", "country_code": "BR"},
        },
    )
    db = MmdbGeo(str(path))
    try:
        assert db.lookup("203.0.113.9") == "FR"
        assert db.lookup("2001:db8:3::9") == "BR"
        assert db.lookup("198.51.100.1") is None
        assert db.lookup("bogus") is None
    finally:
        db.close()


def test_lookups_never_raise(country_db: Path, tmp_path: Path) -> None:
    v4_only = write(tmp_path / "v4.mmdb", "GeoLite2-Country", {"203.0.113.0/24": {}}, ip_version=4)
    for path in (country_db, v4_only):
        db = MmdbGeo(str(path))
        try:
            for junk in ("bogus", "", "1.2.3.256", "::ffff:", "2001:db8:1::1%eth0x"):
                assert db.lookup(junk) is None
        finally:
            db.close()
    db = MmdbGeo(str(v4_only))
    try:
        assert db.lookup("203.0.113.1") is None  # a record without a country
        assert db.lookup("2001:db8:1::1") is None  # IPv6 in an IPv4-only database
        assert db.errors == 0
    finally:
        db.close()


def test_build_date_and_age(country_db: Path) -> None:
    db = MmdbGeo(str(country_db))
    try:
        assert db.built == datetime.date(2026, 10, 1)
        assert db.age_days(TODAY) == 59
        assert db.is_stale(TODAY, 45)
        assert not db.is_stale(TODAY, 60)
        assert not db.is_stale(TODAY, 0)
        assert "GeoLite2-Country" in db.description
        assert str(country_db) in db.description
    finally:
        db.close()


def test_swapping_the_file_and_reopening_picks_up_new_data(tmp_path: Path) -> None:
    live = write(
        tmp_path / "geo.mmdb", "GeoLite2-Country", {"203.0.113.0/24": {"country": country("FR")}}
    )
    old = MmdbGeo(str(live))
    assert old.lookup("203.0.113.1") == "FR"

    # The way geoipupdate does it: a complete new file, renamed over the old one.
    later = BUILT + datetime.timedelta(days=40)
    fresh = write(
        tmp_path / "geo.mmdb.new",
        "GeoLite2-Country",
        {
            "203.0.113.0/24": {"country": country("ES")},
            "198.51.100.0/24": {"country": country("PT")},
        },
        built=later,
    )
    os.replace(fresh, live)
    try:
        assert old.lookup("203.0.113.1") == "FR"  # the open reader keeps the old file's data
        new = MmdbGeo(str(live))
        try:
            assert new.lookup("203.0.113.1") == "ES"
            assert new.lookup("198.51.100.1") == "PT"
            assert new.built == later.date()
            assert new.age_days(TODAY) == 19
        finally:
            new.close()
    finally:
        old.close()


def test_open_geo_and_resolver_with_mmdb(country_db: Path) -> None:
    resolver = GeoResolver.open(GeoSpec(database=str(country_db)))
    try:
        assert isinstance(resolver.database, MmdbGeo)
        assert resolver.explain("193.0.0.1") == ("CH", "mmdb")
        assert resolver.explain("203.0.113.1") == (None, "private")  # documentation range
        assert resolver.explain("::ffff:193.0.1.1") == ("CH", "mmdb")
        assert resolver.explain("8.8.8.8") == (None, "none")
        assert resolver.lookup("193.0.0.1") == "CH"
        assert resolver.is_stale(TODAY)  # 59 days > the default 45
    finally:
        resolver.close()


def test_describe_ips_with_mmdb(city_db: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "c.mmdb", "GeoLite2-Country", COUNTRY_RECORDS)
    rows = describe_ips(GeoSpec(database=str(path), max_age_days=30), ["193.0.3.3", "x"], TODAY)
    assert (rows[0].country, rows[0].source, rows[0].age_days, rows[0].stale) == (
        "CH",
        "mmdb",
        59,
        True,
    )
    assert rows[0].built == datetime.date(2026, 10, 1)
    assert rows[0].database == f"GeoLite2-Country {path}"
    assert (rows[1].source, rows[1].country) == ("invalid", None)
    assert rows[1].error is not None


def test_a_database_without_countries_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "asn.mmdb",
        "GeoLite2-ASN",
        {"203.0.113.0/24": {"autonomous_system_number": 64500}},
    )
    with pytest.raises(GeoDatabaseError, match="no countries"):
        MmdbGeo(str(path))


def test_missing_or_broken_file_is_a_geo_database_error(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match="cannot open"):
        open_geo(GeoSpec(database=str(tmp_path / "absent.mmdb")))
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"this is not a MaxMind DB" * 100)
    with pytest.raises(GeoDatabaseError, match="cannot open"):
        open_geo(GeoSpec(database=str(junk)))
