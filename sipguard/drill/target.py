"""Where the drill may send: the target and the attackers' source addresses (pure).

The drill sends to one `HOST:PORT` only. It defaults to the policy's first UDP listen address (a
wildcard listener is reached on loopback). A target outside loopback is refused unless the admin
names that same target again with `--allow-target`; it is then one of this host's own addresses
(the drill reads this host's control socket and store). Host names are refused: a DNS answer
could point anywhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from sipguard.policy.model import Network, Policy, Transport

__all__ = [
    "MAX_SOURCES",
    "DrillError",
    "Target",
    "TargetRefused",
    "parse_target",
    "pick_sources",
    "resolve_target",
]

#: The drill's attackers come from 127.0.0.FIRST_SOURCE upward (127.0.0.1 is sipguard's own).
FIRST_SOURCE = 101
MAX_SOURCES = 150


class DrillError(Exception):
    """The drill cannot run (no policy target, no sipguard listening, bad option): exit 2."""


class TargetRefused(DrillError):
    """A target outside loopback that the admin did not name explicitly."""


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.host).version

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_target(text: str) -> Target:
    """`HOST:PORT` or `[IPv6]:PORT` with an IP literal host; DrillError otherwise."""
    raw = text.strip()
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        port_text = rest[1:] if sep and rest.startswith(":") else ""
    else:
        host, _, port_text = raw.rpartition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise DrillError(f"target {text!r}: HOST must be an IP address (no names)") from None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise DrillError(f"target {text!r}: give HOST:PORT with a port 1-65535")
    if address.is_unspecified or address.is_multicast:
        raise DrillError(f"target {text!r}: not a unicast address")
    return Target(str(address), int(port_text))


def resolve_target(policy: Policy, target: str | None, allow: str | None = None) -> Target:
    """The target: `target`, else the policy's first UDP listen address. A target outside
    loopback needs `allow` naming the same target, else TargetRefused."""
    chosen = _from_policy(policy) if target is None else parse_target(target)
    if chosen.is_loopback:
        return chosen
    if allow is None or parse_target(allow) != chosen:
        raise TargetRefused(
            f"target {chosen} is outside loopback: the drill sends attacks only where you say so; "
            f"repeat it as --allow-target {chosen} to drill this host's public address"
        )
    return chosen


def _from_policy(policy: Policy) -> Target:
    for endpoint in policy.listen:
        if endpoint.transport is not Transport.UDP:
            continue
        if endpoint.port == 0:
            raise DrillError(
                f"listen {endpoint.url} has an ephemeral port: name the target with --target"
            )
        address = ipaddress.ip_address(endpoint.host)
        if address.is_unspecified:  # 0.0.0.0 / ::: the same sipguard answers on loopback
            return Target("127.0.0.1" if address.version == 4 else "::1", endpoint.port)
        return Target(str(address), endpoint.port)
    raise DrillError("the policy has no udp:// listen address (the drill speaks UDP): use --target")


def pick_sources(
    count: int, avoid: Iterable[Network], *, reserved: Iterable[str] = ()
) -> list[str]:
    """`count` addresses 127.0.0.101 upward that are in none of `avoid` (trusted networks,
    geo overrides) and not `reserved`; DrillError when loopback has too few."""
    nets = tuple(avoid)
    taken = set(reserved)
    found: list[str] = []
    for last in range(FIRST_SOURCE, FIRST_SOURCE + MAX_SOURCES):
        ip = f"127.0.0.{last}"
        address = ipaddress.ip_address(ip)
        if ip in taken or any(address in net for net in nets):
            continue
        found.append(ip)
        if len(found) == count:
            return found
    raise DrillError(
        f"fewer than {count} addresses in 127.0.0.{FIRST_SOURCE}-"
        f"{FIRST_SOURCE + MAX_SOURCES - 1} are untrusted and without a geo override: the "
        "drill needs untrusted loopback sources (trusted sources are never banned)"
    )
