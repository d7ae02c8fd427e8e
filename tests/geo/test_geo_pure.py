"""engine/geo.py: overrides, non-routable addresses, the composition and the bounded cache."""

from __future__ import annotations

import datetime
from ipaddress import IPv4Address, IPv6Address, ip_network

import pytest

from sipguard.engine.geo import (
    CountryOf,
    GeoCache,
    GeoLookup,
    Origin,
    OverrideTable,
    age_days,
    cached_country_of,
    is_special,
    is_stale,
)


class FakeDatabase:
    """GB for most, None for 5.5.x.x, XX for 203.0.113.x (hidden as special); records calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, ip: str) -> str | None:
        self.calls.append(ip)
        if ip.startswith("5.5."):
            return None  # "not in the data"
        return "XX" if ip.startswith("203.0.113.") else "GB"


def table(*pairs: tuple[str, str]) -> OverrideTable:
    return OverrideTable((ip_network(net), cc) for net, cc in pairs)


# ---------------------------------------------------------------------------------------- overrides


def test_override_most_specific_prefix_wins_in_any_order() -> None:
    pairs = [("198.51.100.0/24", "NL"), ("198.51.100.128/25", "BE"), ("198.51.100.200/32", "LU")]
    for order in (pairs, pairs[::-1]):
        t = table(*order)
        assert t.lookup(IPv4Address("198.51.100.1")) == "NL"
        assert t.lookup(IPv4Address("198.51.100.129")) == "BE"
        assert t.lookup(IPv4Address("198.51.100.200")) == "LU"
        assert t.lookup(IPv4Address("198.51.101.1")) is None
        assert len(t) == 3


def test_override_ipv6_and_default_route() -> None:
    t = table(("2001:db8::/32", "DE"), ("2001:db8:2::/48", "NO"), ("0.0.0.0/0", "ZZ"))
    assert t.lookup(IPv6Address("2001:db8:2::7")) == "NO"
    assert t.lookup(IPv6Address("2001:db8:3::7")) == "DE"
    assert t.lookup(IPv6Address("2001:db9::1")) is None  # the IPv4 default does not cover IPv6
    assert t.lookup(IPv4Address("8.8.8.8")) == "ZZ"


def test_override_country_is_upper_cased() -> None:
    assert table(("10.0.0.0/8", "nl")).lookup(IPv4Address("10.1.1.1")) == "NL"


def test_override_given_as_ipv4_mapped_network_covers_ipv4() -> None:
    t = table(("::ffff:192.0.2.0/120", "FR"))
    assert t.lookup(IPv4Address("192.0.2.9")) == "FR"


def test_empty_override_table_is_falsy() -> None:
    assert not OverrideTable()
    assert len(OverrideTable()) == 0


# ------------------------------------------------------------------------------ special addresses


@pytest.mark.parametrize(
    "ip",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.20",
        "127.0.0.1",
        "169.254.1.1",
        "100.64.0.1",  # CGNAT
        "0.0.0.0",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "198.18.0.1",
        "224.0.0.1",  # multicast
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "2001:db8::1",
        "64:ff9b::808:808",
        "2001::1",  # Teredo
        "3fff::1",
    ],
)
def test_special_addresses(ip: str) -> None:
    address = IPv6Address(ip) if ":" in ip else IPv4Address(ip)
    assert is_special(address)


@pytest.mark.parametrize(
    "ip", ["8.8.8.8", "1.1.1.1", "193.0.0.1", "100.128.0.1", "2001:67c:2e8::1", "2a00:1450::1"]
)
def test_global_addresses_are_not_special(ip: str) -> None:
    address = IPv6Address(ip) if ":" in ip else IPv4Address(ip)
    assert not is_special(address)


# ------------------------------------------------------------------------------------- composition


def test_composition_order_override_then_private_then_database() -> None:
    db = FakeDatabase()
    of = CountryOf(db, table(("127.0.0.0/8", "SE"), ("8.8.8.0/24", "CH")))
    assert of.explain("127.0.0.1") == ("SE", Origin.OVERRIDE)  # overridden loopback has a country
    assert of.explain("8.8.8.8") == ("CH", Origin.OVERRIDE)  # the override beats the database
    assert of.explain("10.0.0.1") == (None, Origin.PRIVATE)
    assert of.explain("203.0.113.5") == (None, Origin.PRIVATE)  # the database is not asked
    assert of.explain("9.9.9.9") == ("GB", Origin.DATABASE)
    assert of.explain("5.5.5.5") == (None, Origin.NONE)
    assert db.calls == ["9.9.9.9", "5.5.5.5"]


def test_ipv4_mapped_is_the_ipv4_address_everywhere() -> None:
    db = FakeDatabase()
    of = CountryOf(db, table(("198.51.100.0/24", "NL")))
    assert of.explain("::ffff:198.51.100.7") == ("NL", Origin.OVERRIDE)
    assert of.explain("::ffff:10.0.0.1") == (None, Origin.PRIVATE)
    assert of.explain("::FFFF:9.9.9.9") == ("GB", Origin.DATABASE)
    assert of.explain("::ffff:909:909") == ("GB", Origin.DATABASE)  # hex spelling
    assert of.explain("0:0:0:0:0:ffff:9.9.9.10") == ("GB", Origin.DATABASE)
    assert db.calls == ["9.9.9.9", "9.9.9.9", "9.9.9.10"]  # the database sees plain IPv4


@pytest.mark.parametrize(
    "junk",
    ["", "bogus", "1.2.3", "1.2.3.4.5", "1.2.3.256", "01.2.3.4", " 1.2.3.4", "\uff11.2.3.4", ":::"],
)
def test_junk_is_invalid_and_never_reaches_the_database(junk: str) -> None:
    db = FakeDatabase()
    assert CountryOf(db).explain(junk) == (None, Origin.INVALID)
    assert CountryOf(db)(junk) is None
    assert db.calls == []


def test_ipv6_goes_to_the_database_as_given() -> None:
    db = FakeDatabase()
    assert CountryOf(db)("2a00:1450::1") == "GB"
    assert db.calls == ["2a00:1450::1"]


# ------------------------------------------------------------------------------------------- cache


def test_cache_hit_does_not_call_the_lookup() -> None:
    db = FakeDatabase()
    cache = GeoCache(CountryOf(db))
    assert cache.lookup("9.9.9.9") == "GB"
    assert cache.lookup("9.9.9.9") == "GB"
    assert cache("9.9.9.9") == "GB"
    assert db.calls == ["9.9.9.9"]
    assert (cache.hits, cache.misses) == (2, 1)


def test_cache_remembers_unknown_too() -> None:
    db = FakeDatabase()
    cache = GeoCache(CountryOf(db))
    assert cache.lookup("5.5.5.5") is None
    assert cache.lookup("5.5.5.5") is None
    assert cache.lookup("10.0.0.1") is None
    assert cache.lookup("10.0.0.1") is None
    assert db.calls == ["5.5.5.5"]
    assert (cache.hits, cache.misses) == (2, 2)


def test_cache_is_bounded_and_evicts_oldest_first() -> None:
    db = FakeDatabase()
    cache = GeoCache(CountryOf(db), cap=3)
    for ip in ("9.0.0.1", "9.0.0.2", "9.0.0.3", "9.0.0.4"):
        cache.lookup(ip)
    assert len(cache) == 3
    assert cache.evictions == 1
    assert "9.0.0.1" not in cache
    assert "9.0.0.4" in cache
    cache.lookup("9.0.0.2")  # a hit does not refresh (FIFO)
    cache.lookup("9.0.0.5")
    assert "9.0.0.2" not in cache
    assert len(cache) == 3


def test_cache_stays_bounded_under_a_flood_of_new_sources() -> None:
    cache = GeoCache(CountryOf(FakeDatabase()), cap=1000)
    for i in range(20_000):
        cache.lookup(f"9.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(cache) == 1000
    assert cache.misses == 20_000
    assert cache.evictions == 19_000


def test_cache_clear_forgets_answers_and_keeps_counters() -> None:
    db = FakeDatabase()
    cache = GeoCache(CountryOf(db))
    cache.lookup("9.9.9.9")
    cache.lookup("9.9.9.9")
    cache.clear()
    assert len(cache) == 0
    cache.lookup("9.9.9.9")
    assert db.calls == ["9.9.9.9", "9.9.9.9"]
    assert (cache.hits, cache.misses) == (1, 2)


def test_cache_rejects_a_zero_size() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GeoCache(FakeDatabase(), cap=0)


def test_cached_country_of_is_a_geo_lookup() -> None:
    geo: GeoLookup = cached_country_of(FakeDatabase(), [(ip_network("127.0.0.0/8"), "NL")], cap=8)
    assert geo("127.0.0.1") == "NL"
    assert geo("::1") is None
    assert geo("8.8.4.4") == "GB"


# --------------------------------------------------------------------------------------------- age


def test_age_and_staleness() -> None:
    built = datetime.date(2026, 1, 1)
    assert age_days(built, datetime.date(2026, 1, 31)) == 30
    assert age_days(built, datetime.date(2025, 12, 1)) == 0  # built "in the future": clock skew
    assert age_days(None, datetime.date(2026, 1, 31)) is None
    assert not is_stale(built, datetime.date(2026, 2, 15), 45)  # 45 days: not older than 45
    assert is_stale(built, datetime.date(2026, 2, 16), 45)
    assert not is_stale(built, datetime.date(2030, 1, 1), 0)  # 0 = never warn
    assert not is_stale(None, datetime.date(2030, 1, 1), 45)  # unknown age: not stale
