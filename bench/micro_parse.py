"""Micro-benchmark: parse_message + the accessors a firewall reads, per message kind.

Seeded and dependency-free (wsproto's bench style): a pool of messages per kind is generated
from a fixed random seed (so identifiers differ between messages, nothing is cached across
them), then timeit measures parse + accessors over the pool; the best of N repeats is reported
in microseconds per message.

Columns: `parse` is parse_message alone; `parse+read` adds the accessors a firewall reads;
`strict` is parse_message(strict=True), what the proxy runs on every message (it also parses
every Via, From, To, Contact, Route, Record-Route and the Request-URI); `strict cold` is the same
with parse_uri's cache emptied before each pass over the pool, i.e. every URI seen for the first
time (an enumeration scan brings new ones with every message).

    .venv/bin/python -m bench.micro_parse
"""

from __future__ import annotations

import random
import sys
import timeit
from collections.abc import Callable

from sipguard.core.sip import SipRequest, SipResponse, parse_message, parse_uri

SEED = 20240229
POOL = 64  # distinct messages per kind
NUMBER = 200  # passes over the pool per repeat
REPEAT = 7


def _token(rng: random.Random, n: int) -> bytes:
    return bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def make_register(rng: random.Random) -> bytes:
    """A ~300-octet REGISTER with digest credentials (what a brute-forcer sends)."""
    ip = b"198.51.100.%d" % rng.randrange(1, 255)
    user = b"%d" % rng.randrange(100, 999)
    return (
        b"REGISTER sip:pbx SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP %s:5060;branch=z9hG4bK%s;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:%s@pbx>;tag=%s\r\n"
        b"To: <sip:%s@pbx>\r\n"
        b"Call-ID: %s\r\n"
        b"CSeq: %d REGISTER\r\n"
        b'Authorization: Digest username="%s", realm="pbx", nonce="%s", '
        b'uri="sip:pbx", response="%s"\r\n'
        b"l: 0\r\n"
        b"\r\n"
    ) % (
        ip,
        _token(rng, 8),
        user,
        _token(rng, 6),
        user,
        _token(rng, 10),
        rng.randrange(1, 1000),
        user,
        _token(rng, 8),
        _token(rng, 8),
    )


def make_invite(rng: random.Random) -> bytes:
    """A ~800-octet INVITE with SDP from a softphone."""
    ip = b"203.0.113.%d" % rng.randrange(1, 255)
    sdp = (
        b"v=0\r\n"
        b"o=- %d %d IN IP4 %s\r\n"
        b"s=Talk\r\n"
        b"c=IN IP4 %s\r\n"
        b"t=0 0\r\n"
        b"m=audio %d RTP/AVP 0 8 9 101\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:9 G722/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-16\r\n"
        b"a=sendrecv\r\n"
    ) % (rng.randrange(10**9), rng.randrange(10**9), ip, ip, rng.randrange(10000, 60000, 2))
    return (
        b"INVITE sip:0044207946%04d@pbx.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP %s:5062;branch=z9hG4bK-%s;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b'From: "Reception" <sip:201@pbx.example.com>;tag=%s\r\n'
        b"To: <sip:0044207946%04d@pbx.example.com>\r\n"
        b"Call-ID: %s@%s\r\n"
        b"CSeq: 20 INVITE\r\n"
        b"Contact: <sip:201@%s:5062;transport=udp>\r\n"
        b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n"
        b"Supported: replaces, norefersub, timer\r\n"
        b"User-Agent: Zoiper rv2.10.20.3\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: %d\r\n"
        b"\r\n"
    ) % (
        rng.randrange(10000),
        ip,
        _token(rng, 16),
        _token(rng, 8),
        rng.randrange(10000),
        _token(rng, 22),
        ip,
        ip,
        len(sdp),
    ) + sdp


def make_ok(rng: random.Random) -> bytes:
    """A 200 OK to a REGISTER, as a PBX sends it back through sipguard (two Vias)."""
    return (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKsg%s\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.%d:5060;branch=z9hG4bK%s;received=198.51.100.7;rport=40112\r\n"
        b"From: <sip:201@pbx.example.com>;tag=%s\r\n"
        b"To: <sip:201@pbx.example.com>;tag=as%s\r\n"
        b"Call-ID: %s\r\n"
        b"CSeq: 3 REGISTER\r\n"
        b"Contact: <sip:201@10.0.0.7:5060>;expires=3600\r\n"
        b"Server: Asterisk PBX 20.5.0\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ) % (
        _token(rng, 16),
        rng.randrange(2, 250),
        _token(rng, 10),
        _token(rng, 8),
        _token(rng, 8),
        _token(rng, 12),
    )


def firewall_read(data: bytes) -> object:
    """What the firewall reads per message: parse, every Via, From, To, Call-ID, CSeq,
    User-Agent (Server for responses) and the Authorization username."""
    msg = parse_message(data)
    vias = msg.vias()
    top = vias[0]
    f = msg.from_addr()
    t = msg.to_addr()
    creds = msg.credentials()
    return (
        top.host,
        top.branch,
        f.tag,
        t.uri,
        msg.call_id(),
        msg.cseq(),
        msg.user_agent(),
        creds.username if creds is not None else None,
    )


KINDS: dict[str, Callable[[random.Random], bytes]] = {
    "register": make_register,
    "invite": make_invite,
    "ok200": make_ok,
}


def strict_parse(data: bytes) -> object:
    """What the proxy runs on every message: parse_message(strict=True)."""
    return parse_message(data, strict=True)


def _bench(pool: list[bytes], fn: Callable[[bytes], object], *, cold: bool = False) -> float:
    clear = parse_uri.cache_clear

    def run() -> None:
        if cold:
            clear()
        for data in pool:
            fn(data)

    best = min(timeit.repeat(run, number=NUMBER, repeat=REPEAT))
    return best / (NUMBER * len(pool)) * 1e6


def main() -> dict[str, dict[str, float]]:
    """Run the benchmark: {kind: {"size": octets, "parse_us": ..., "parse_read_us": ...,
    "strict_us": ..., "strict_cold_us": ...}}."""
    rng = random.Random(SEED)
    results: dict[str, dict[str, float]] = {}
    for kind, make in KINDS.items():
        pool = [make(rng) for _ in range(POOL)]
        for data in pool:  # sanity: every message parses and is of the expected type
            msg = parse_message(data, strict=True)
            assert isinstance(msg, SipResponse if kind == "ok200" else SipRequest)
        results[kind] = {
            "size": sum(map(len, pool)) / len(pool),
            "parse_us": _bench(pool, parse_message),
            "parse_read_us": _bench(pool, firewall_read),
            "strict_us": _bench(pool, strict_parse),
            "strict_cold_us": _bench(pool, strict_parse, cold=True),
        }
    print(
        f"python {sys.version.split()[0]}, best of {REPEAT} x {NUMBER} passes over {POOL} messages"
    )
    print(
        f"{'kind':10s} {'octets':>7s} {'parse us':>9s} {'parse+read us':>14s} {'strict us':>10s}"
        f" {'strict cold us':>15s}"
    )
    for kind, r in results.items():
        print(
            f"{kind:10s} {r['size']:7.0f} {r['parse_us']:9.2f} {r['parse_read_us']:14.2f}"
            f" {r['strict_us']:10.2f} {r['strict_cold_us']:15.2f}"
        )
    return results


if __name__ == "__main__":
    main()
