"""Source country: admin overrides, then non-routable addresses, then a database; cached.

Pure: the database is any `GeoLookup` (the adapters in `sipguard.io.geoip` read the files, in a
thread, at startup or on reload). The engine asks `GeoCache.lookup` once per message; a repeat
source costs a dict lookup. Nothing here raises on junk input: text that does not parse as an
address has no country.

The composition (`CountryOf.explain`):

1. `geo.overrides` (the longest matching prefix wins), so drills and tests can give loopback or
   private sources a country;
2. addresses that are not globally routable (private, loopback, link-local, shared/CGNAT,
   documentation, benchmarking, reserved, multicast) have no country, whatever a database says;
3. the database.

IPv4-mapped IPv6 (`::ffff:a.b.c.d`, how a dual-stack socket reports IPv4 peers) is the IPv4
address in every step.
"""

from __future__ import annotations

import datetime
import enum
import re
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from sipguard.core.netset import parse_ip

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "CountryOf",
    "GeoCache",
    "GeoLookup",
    "Origin",
    "OverrideTable",
    "age_days",
    "cached_country_of",
    "is_special",
    "is_stale",
]

#: IP address text -> ISO 3166-1 alpha-2 code (upper case), or None when unknown. Never raises.
GeoLookup = Callable[[str], str | None]

#: Distinct source addresses remembered (FIFO). Sized like the other per-IP tables (core.netset): a
#: spoofed flood of new addresses costs a recomputation per message, never memory. About 8 MiB full.
DEFAULT_CACHE_SIZE = 65_536

_Net = IPv4Network | IPv6Network
_Addr = IPv4Address | IPv6Address


class Origin(enum.Enum):
    """Which step answered (`sipguard geo` shows it; the database step is named by its source)."""

    OVERRIDE = "override"  # geo.overrides
    PRIVATE = "private"  # not globally routable: never has a country unless overridden
    DATABASE = "database"  # the database knew it
    NONE = "none"  # the database does not know it
    INVALID = "invalid"  # not an IP address


# --------------------------------------------------------------------------- non-routable addresses

# IANA IPv4 Special-Purpose Address Registry (RFC 6890 and updates): the blocks that are not
# globally reachable, plus multicast. A packet from one of these is spoofed, local or misrouted; no
# RIR or commercial database gives them a meaningful country.
_SPECIAL_V4 = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private (RFC 1918)
    "100.64.0.0/10",  # shared address space, carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation TEST-NET-1 (RFC 5737)
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking (RFC 2544)
    "198.51.100.0/24",  # TEST-NET-2
    "203.0.113.0/24",  # TEST-NET-3
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
)
# IPv6: everything outside global unicast 2000::/3 (unspecified, loopback, NAT64 64:ff9b::/96,
# discard 100::/64, SRv6 5f00::/16, ULA fc00::/7, link-local fe80::/10, site-local fec0::/10,
# multicast ff00::/8) plus the special blocks inside it.
_SPECIAL_V6 = (
    "::/3",  # 0000::-1fff:...
    "4000::/2",  # 4000::-7fff:...
    "8000::/1",  # 8000::-ffff:...
    "2001::/23",  # IETF protocol assignments (Teredo, ORCHID, benchmarking 2001:2::/48, ...)
    "2001:db8::/32",  # documentation (RFC 3849)
    "3fff::/20",  # documentation (RFC 9637)
)


def _intervals(cidrs: Iterable[str]) -> tuple[list[int], list[int]]:
    """Sorted, merged [start, end] integer intervals of the networks: (starts, ends)."""
    nets = [ip_network(c) for c in cidrs]
    spans = sorted((int(n.network_address), int(n.broadcast_address)) for n in nets)
    starts: list[int] = []
    ends: list[int] = []
    for lo, hi in spans:
        if ends and lo <= ends[-1] + 1:
            ends[-1] = max(ends[-1], hi)
        else:
            starts.append(lo)
            ends.append(hi)
    return starts, ends


_V4_STARTS, _V4_ENDS = _intervals(_SPECIAL_V4)
_V6_STARTS, _V6_ENDS = _intervals(_SPECIAL_V6)


def is_special(address: _Addr) -> bool:
    """True for an address that is not globally routable unicast (private, loopback, link-local,
    CGNAT, documentation, benchmarking, reserved, multicast). Pass IPv4-mapped IPv6 already
    unmapped (`core.netset.parse_ip` does)."""
    return _special(address.version, int(address))


def _special(version: int, n: int) -> bool:
    starts, ends = (_V4_STARTS, _V4_ENDS) if version == 4 else (_V6_STARTS, _V6_ENDS)
    i = bisect_right(starts, n) - 1
    return i >= 0 and n <= ends[i]


# Dotted-quad IPv4 as `ipaddress` accepts it (ASCII digits, no leading zeros, 0-255): matching it
# is about twice as fast as building an `IPv4Address`, and IPv4 is most sources.
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(r"\.".join([_OCTET] * 4))
_MAPPED_PREFIXES = frozenset({"::ffff:", "::FFFF:"})


def _address(ip: str) -> tuple[int, int] | None:
    """(version, integer) of address text; IPv4-mapped IPv6 is the IPv4 address. None for junk."""
    # A dual-stack socket reports every IPv4 peer as `::ffff:a.b.c.d`: the common case, kept fast.
    quad = ip[7:] if ip[:7] in _MAPPED_PREFIXES else ip
    match = _DOTTED_QUAD.fullmatch(quad)
    if match is not None:
        a, b, c, d = match.groups()
        return 4, (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
    if ":" not in ip:
        return None
    address = parse_ip(ip)
    return None if address is None else (address.version, int(address))


# ---------------------------------------------------------------------------------------- overrides


class OverrideTable:
    """`geo.overrides`: network -> country, the longest matching prefix first.

    One dict per prefix length, keyed by the network's top bits, so a lookup is one shift and one
    dict probe per distinct prefix length (a handful). An IPv6 override inside `::ffff:0:0/96` is
    the IPv4 network it maps. The same network given twice: the later entry wins (the policy loader
    already rejects duplicates)."""

    __slots__ = ("_size", "_v4", "_v6")

    def __init__(self, overrides: Iterable[tuple[_Net, str]] = ()) -> None:
        v4: dict[int, dict[int, str]] = {}
        v6: dict[int, dict[int, str]] = {}
        for network, country in overrides:
            net = _unmap_network(network)
            bits, table = (32, v4) if net.version == 4 else (128, v6)
            shift = bits - net.prefixlen
            table.setdefault(shift, {})[int(net.network_address) >> shift] = country.upper()
        # Smallest shift = longest prefix: tried first.
        self._v4 = tuple(sorted(v4.items()))
        self._v6 = tuple(sorted(v6.items()))
        self._size = sum(len(t) for _, t in self._v4) + sum(len(t) for _, t in self._v6)

    def __len__(self) -> int:
        return self._size

    def lookup(self, address: _Addr) -> str | None:
        """The country of the most specific override containing `address` (IPv4-mapped IPv6 must
        already be unmapped: `core.netset.parse_ip` does), or None."""
        return self._lookup(address.version, int(address))

    def _lookup(self, version: int, n: int) -> str | None:
        for shift, table in self._v4 if version == 4 else self._v6:
            country = table.get(n >> shift)
            if country is not None:
                return country
        return None


def _unmap_network(network: _Net) -> _Net:
    if isinstance(network, IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return IPv4Network((mapped, network.prefixlen - 96))
    return network


# -------------------------------------------------------------------------------------- composition


class CountryOf:
    """The uncached composition: overrides, then non-routable -> None, then the database.

    `database` gets the address text as the source gave it, except that IPv4-mapped IPv6 is passed
    as the dotted IPv4 address; it must return None (never raise) for an address it does not
    know."""

    __slots__ = ("_database", "_overrides")

    def __init__(self, database: GeoLookup, overrides: OverrideTable | None = None) -> None:
        self._database = database
        self._overrides = overrides if overrides else None

    def __call__(self, ip: str) -> str | None:
        return self.explain(ip)[0]

    def explain(self, ip: str) -> tuple[str | None, Origin]:
        """(country or None, the step that decided)."""
        parsed = _address(ip)
        if parsed is None:
            return None, Origin.INVALID
        version, n = parsed
        if self._overrides is not None:
            country = self._overrides._lookup(version, n)
            if country is not None:
                return country, Origin.OVERRIDE
        if _special(version, n):
            return None, Origin.PRIVATE
        if version == 4 and ":" in ip:  # IPv4-mapped: the database gets the IPv4 address
            tail = ip.rpartition(":")[2]
            ip = tail if "." in tail else str(IPv4Address(n))
        country = self._database(ip)
        return (country, Origin.DATABASE) if country is not None else (None, Origin.NONE)


class GeoCache:
    """A bounded per-address cache in front of a `GeoLookup` (normally a `CountryOf`).

    Keyed by the address text as the socket reported it. FIFO eviction (an `OrderedDict`, O(1);
    popping the oldest key of a plain dict degrades to a scan of deleted slots under churn): under
    a spoofed flood the table stays at `cap` entries and every new address is one uncached lookup.
    Call `clear()` when the policy (overrides) or the database changes, or build a new cache.
    `hits`, `misses` and `evictions` only grow (exported as counters); `clear()` keeps them."""

    __slots__ = ("_lookup", "_map", "cap", "evictions", "hits", "misses")

    def __init__(self, lookup: GeoLookup, *, cap: int = DEFAULT_CACHE_SIZE) -> None:
        if cap < 1:
            raise ValueError(f"cache size must be at least 1, got {cap}")
        self._lookup = lookup
        # Unknown is stored as "" so that a miss (None from .get) needs no sentinel.
        self._map: OrderedDict[str, str] = OrderedDict()
        self.cap = cap
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def lookup(self, ip: str) -> str | None:
        """The hot path. Hand the engine this bound method (about 120 ns a hit), not the instance:
        calling an instance goes through `__call__` and costs some 60 ns more."""
        found = self._map.get(ip)
        if found is not None:
            self.hits += 1
            return found or None
        self.misses += 1
        country = self._lookup(ip)
        if len(self._map) >= self.cap:
            self._map.popitem(last=False)
            self.evictions += 1
        self._map[ip] = country or ""
        return country

    __call__ = lookup

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, ip: str) -> bool:
        return ip in self._map

    def clear(self) -> None:
        self._map.clear()


def cached_country_of(
    database: GeoLookup,
    overrides: Iterable[tuple[_Net, str]] = (),
    *,
    cap: int = DEFAULT_CACHE_SIZE,
) -> GeoCache:
    """The engine's `GeoLookup`: `GeoCache(CountryOf(database, OverrideTable(overrides)))`."""
    return GeoCache(CountryOf(database, OverrideTable(overrides)), cap=cap)


# -------------------------------------------------------------------------------------------- age


def age_days(built: datetime.date | None, today: datetime.date) -> int | None:
    """Whole days from `built` to `today` (never negative: a build date in the future is age 0), or
    None when the build date is not known."""
    if built is None:
        return None
    return max(0, (today - built).days)


def is_stale(built: datetime.date | None, today: datetime.date, max_age_days: int) -> bool:
    """True when the data is older than `max_age_days` (`geo.max_age_days`; 0 = never stale).
    Unknown age is not stale: `sipguard geo` shows the date as unknown instead."""
    age = age_days(built, today)
    return max_age_days > 0 and age is not None and age > max_age_days
