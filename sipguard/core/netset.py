"""IP address facts the hot path asks again and again, answered once per address and cached
(bounded)."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Distinct source addresses remembered per cache; past that the oldest answer is forgotten (FIFO),
# so a
# spoofed flood costs recomputation, never memory.
CACHE_SIZE = 65_536


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into IPv4 (RFC 5118 4.9)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class NetworkSet:
    """Membership of an address in a fixed set of networks, cached per address text."""

    __slots__ = ("_cache", "_networks")

    def __init__(self, networks: Iterable[Network]) -> None:
        self._networks = tuple(networks)
        self._cache: OrderedDict[str, bool] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, ip: str) -> bool:
        found = self._cache.get(ip)
        if found is None:
            address = parse_ip(ip)
            found = address is not None and any(address in net for net in self._networks)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.popitem(last=False)
            self._cache[ip] = found
        return found


class SourceKeys:
    """The key a source is counted and banned under: the IPv4 address, or its IPv6 /prefix network.

    One attacker owns a whole IPv6 /64 (it can pick a new address per packet), so per-address keys
    would
    be useless there (DESIGN.md section 3)."""

    __slots__ = ("_cache", "_prefix")

    def __init__(self, ipv6_prefix: int) -> None:
        self._prefix = ipv6_prefix
        self._cache: OrderedDict[str, str] = OrderedDict()

    def __call__(self, ip: str) -> str:
        if ":" not in ip:
            return ip
        key = self._cache.get(ip)
        if key is None:
            address = parse_ip(ip)
            if address is None:
                key = ip
            elif address.version == 4:
                key = str(address)
            else:
                key = str(ipaddress.IPv6Network((address, self._prefix), strict=False))
            if len(self._cache) >= CACHE_SIZE:
                self._cache.popitem(last=False)
            self._cache[ip] = key
        return key
