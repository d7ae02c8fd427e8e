"""The builtin database: iptocc's RIR allocation data, with stable, well-known allocations.

Each address below is registry infrastructure or a long-standing allocation that the registries'
delegated-extended files have listed with the same country for many years; a new iptocc release
should not move them.
"""

from __future__ import annotations

import datetime
import importlib.metadata
from ipaddress import ip_network

import pytest

from sipguard.io.geoip import BuiltinGeo, GeoResolver, describe_ips, open_geo
from sipguard.policy.model import GeoSpec

TODAY = datetime.date(2026, 11, 29)


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("193.0.0.1", "NL"),  # 193.0.0.0/21 RIPE NCC, Amsterdam
        ("193.0.7.255", "NL"),
        ("2001:67c:2e8::1", "NL"),  # 2001:67c:2e8::/48 RIPE NCC
        ("8.8.8.8", "US"),  # Google, ARIN
        ("2001:4860:4860::8888", "US"),
        (
            "1.1.1.1",
            "AU",
        ),  # 1.1.1.0/24 is registered to APNIC Research (AU), not to Cloudflare (US)
        ("202.12.28.1", "AU"),  # APNIC's own block
        ("1.0.16.1", "JP"),
    ],
)
def test_stable_allocations(ip: str, country: str) -> None:
    assert BuiltinGeo().lookup(ip) == country


@pytest.mark.parametrize("ip", ["bogus", "", "10.0.0.1", "240.0.0.1", "::ffff:8.8.8.8"])
def test_unknown_to_the_raw_data(ip: str) -> None:
    # The raw data knows neither private space nor the mapped spelling; the resolver handles both.
    assert BuiltinGeo().lookup(ip) is None


def test_data_date_is_known_and_plausible() -> None:
    db = BuiltinGeo()
    assert db.source == "builtin"
    assert db.version == importlib.metadata.version("iptocc")
    assert db.built is not None
    assert datetime.date(2024, 1, 1) <= db.built
    assert db.built.isoformat() in db.description
    assert db.age_days(db.built + datetime.timedelta(days=10)) == 10
    assert not db.is_stale(db.built + datetime.timedelta(days=45), 45)
    assert db.is_stale(db.built + datetime.timedelta(days=46), 45)


def test_open_geo_builtin() -> None:
    assert isinstance(open_geo(GeoSpec()), BuiltinGeo)


def test_resolver_names_the_source_that_answered() -> None:
    spec = GeoSpec(overrides=((ip_network("127.0.0.0/8"), "SE"),))
    resolver = GeoResolver(spec, BuiltinGeo())
    assert resolver.explain("193.0.0.1") == ("NL", "builtin")
    assert resolver.explain("::ffff:8.8.8.8") == ("US", "builtin")
    assert resolver.explain("127.0.0.1") == ("SE", "override")
    assert resolver.explain("192.168.0.1") == (None, "private")
    assert resolver.explain("bogus") == (None, "invalid")
    assert resolver.lookup("::ffff:193.0.0.1") == "NL"
    assert resolver.lookup("::ffff:193.0.0.1") == "NL"
    assert (resolver.cache.hits, resolver.cache.misses) == (1, 1)


def test_describe_ips_rows() -> None:
    spec = GeoSpec(overrides=((ip_network("198.51.100.0/24"), "NL"),), max_age_days=0)
    rows = describe_ips(spec, ["8.8.8.8", "198.51.100.9", "10.0.0.1", "not-an-ip"], TODAY)
    assert [(r.ip, r.country, r.source) for r in rows] == [
        ("8.8.8.8", "US", "builtin"),
        ("198.51.100.9", "NL", "override"),
        ("10.0.0.1", None, "private"),
        ("not-an-ip", None, "invalid"),
    ]
    assert [r.error for r in rows[:3]] == [None, None, None]
    assert rows[3].error is not None
    assert "not-an-ip" in rows[3].error
    built = BuiltinGeo().built
    assert built is not None
    for row in rows:
        assert row.database.startswith("iptocc ")
        assert row.built == built
        assert row.age_days == max(0, (TODAY - built).days)
        assert row.stale is False  # max_age_days 0: never stale


def test_stale_warning() -> None:
    db = BuiltinGeo()
    assert db.built is not None
    resolver = GeoResolver(GeoSpec(max_age_days=30), db)
    assert resolver.stale_warning(db.built + datetime.timedelta(days=30)) is None
    warning = resolver.stale_warning(db.built + datetime.timedelta(days=31))
    assert warning is not None
    assert "31 days old" in warning
