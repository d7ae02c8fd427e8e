"""Firewall decision costs and memory, on the pure engine (no sockets): seeded, bounded, in-process.

    python -m bench firewall            # or: python -m bench.firewall [--sources N] [--bans N]

Measures (1) a packet from a banned source, which must be dropped before parsing, (2) an allowed
REGISTER through the whole pipeline (ban check, trusted, parse + validate, country, rules, limits,
routing and rewriting), (3) resident memory with N distinct sources tracked by the rate limiter and
M active bans. Goals (issue 4): a banned packet < 2 us of Python time; 1,000,000 sources < 500 MB.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import timeit
from typing import Any

from sipguard.engine.compile import compile_policy
from sipguard.engine.context import Packet, Side
from sipguard.engine.engine import Engine
from sipguard.engine.proxy import Address, Router
from sipguard.policy import load_policy_text
from sipguard.policy.model import Transport

POLICY = """
upstream: udp://10.0.0.5:5060
rules:
  - {name: scanners, match: {user_agent: [friendly-scanner, sipvicious, sipcli]}, action: ban, ban:
  1h}
  - {name: no-cn, match: {country: [CN]}, action: drop}
limits:
  REGISTER: {rate: 20/min, burst: 20, ban_after: 5}
  INVITE: {rate: 30/min, burst: 10}
  other: {rate: 120/min, burst: 60}
"""
REGISTER = (
    b"REGISTER sip:pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:100@pbx.example.com>;tag=1928301774\r\n"
    b"To: <sip:100@pbx.example.com>\r\nCall-ID: a84b4c76e66710@192.168.1.20\r\nCSeq: 2 REGISTER\r\n"
    b"Contact: <sip:100@192.168.1.20:5060>\r\nUser-Agent: Yealink SIP-T46S 66.86.0.15\r\n"
    b'Authorization: Digest username="100", realm="pbx", nonce="abc", uri="sip:pbx.example.com", '
    b'response="0123456789abcdef0123456789abcdef"\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n'
)


def make_engine() -> Engine:
    router = Router(
        [Address(Transport.UDP, "198.18.0.1", 5060)],
        Address(Transport.UDP, "10.0.0.1", 5070),
        Address(Transport.UDP, "10.0.0.5", 5060),
    )
    return Engine(router, compile_policy(load_policy_text(POLICY)), geo=lambda ip: "NL")


def per_call_us(stmt: Any, number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e6


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(sources: int = 1_000_000, bans: int = 100_000) -> dict[str, Any]:
    engine = make_engine()
    engine.ban("203.0.113.66", 0.0, 86400.0, "bench", "bench")
    banned = Packet("203.0.113.66", 5060, Transport.UDP, Side.OUTSIDE, 1.0)
    banned_us = per_call_us(lambda: engine.handle(REGISTER, banned), 200_000)
    allowed = Packet("198.51.100.7", 5060, Transport.UDP, Side.OUTSIDE, 1.0)
    counter = iter(range(10**9))

    def one_allowed() -> None:  # a fresh clock each time so the bucket always has a token
        allowed.now = 1.0 + next(counter) * 10.0
        engine.handle(REGISTER, allowed)

    allowed_us = per_call_us(one_allowed, 20_000)
    gc.collect()
    fresh = make_engine()
    before = rss_mb()
    packet = Packet("", 5060, Transport.UDP, Side.OUTSIDE, 1.0)
    for n in range(sources):  # distinct sources, each seen once: the rate limiter tracks them all
        packet.ip = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" if n < 1 << 24 else str(n)
        fresh.handle(REGISTER, packet)
    tracked = fresh.tracked_sources()
    after_sources = rss_mb()
    for n in range(bans):
        fresh.ban(
            f"172.{16 + (n >> 16 & 15)}.{n >> 8 & 255}.{n & 255}", 1.0, 86400.0, "bench", "bench"
        )
    after_bans = rss_mb()
    result = {
        "banned_packet_us": round(banned_us, 3),
        "allowed_register_us": round(allowed_us, 2),
        "allowed_per_second": round(1e6 / allowed_us),
        "sources": sources,
        "tracked_sources": tracked,
        "rss_sources_mb": round(after_sources - before, 1),
        "bans": len(fresh.active_bans(2.0)),
        "rss_bans_mb": round(after_bans - after_sources, 1),
        "python": sys.version.split()[0],
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sources", type=int, default=1_000_000)
    parser.add_argument("--bans", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(main(args.sources, args.bans), indent=2))
