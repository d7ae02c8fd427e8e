"""The record of normal behaviour with real peers: Kamailio as the PBX, SIPp phones registering
and calling through a running sipguard, a stranger with a wrong password, garbage and an OPTIONS
flood. After the stop (which flushes the partial minute) the store's rollups must say what was
sent, and agree exactly with the proxy's own message counters."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from sipguard.io.counters import Counters
from sipguard.store import Dimension, Store
from tests.peers.kamailio import ALICE, BOB, KamailioProcess
from tests.peers.sipp import SippConfig, run, start_registered_uas
from tests.proxy.guard import policy_text, running_guard
from tests.proxy.stub import UdpPeer, wait_until

pytestmark = [pytest.mark.peers, pytest.mark.integration, pytest.mark.timeout(120)]

CALLS = 3
HOLD_MS = 1000  # each call is up this long before the caller hangs up
GARBAGE = 5
FLOOD = 30
STRANGER = "127.0.0.2"  # not one of sipguard's own addresses, so not trusted: limits apply
POLICY = f"""geo:
  overrides: {{127.0.0.1/32: NL, {STRANGER}/32: BR}}
limits:
  OPTIONS: {{rate: 1/min, burst: 5, ban_after: 3, within: 1m, ban: 1h}}
"""


def _options(n: int, port: int) -> bytes:
    return (
        f"OPTIONS sip:pbx@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {STRANGER}:{port};branch=z9hG4bKflood{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:probe@{STRANGER}>;tag=f{n}\r\n"
        f"To: <sip:pbx@127.0.0.1>\r\nCall-ID: flood-{n}\r\nCSeq: 1 OPTIONS\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def _rollups(db: Path) -> dict[Dimension, Counter[str]]:
    async def read() -> dict[Dimension, Counter[str]]:
        out: dict[Dimension, Counter[str]] = {d: Counter() for d in Dimension}
        async with await Store.open(db) as store:
            for row in await store.rollups(0):
                out[row.dimension][row.key] += row.value  # type: ignore[assignment]
        return out

    return asyncio.run(read())


def test_rollups_record_what_real_peers_sent(
    tmp_path: Path, sipp_bin: str, kamailio_pbx: KamailioProcess
) -> None:
    pbx = f"udp://{kamailio_pbx.host}:{kamailio_pbx.port}"
    with running_guard(policy_text(pbx, extra=POLICY), tmp_path) as guard:
        counters = guard.info.counters
        outside = guard.outside("udp")
        alice = run(
            tmp_path,
            SippConfig(
                scenario="register_auth.xml",
                remote=outside,
                service=ALICE[0],
                auth_user=ALICE[0],
                auth_password=ALICE[1],
                calls=1,
                timeout_s=10,
                label="alice",
            ),
            binary=sipp_bin,
        )
        assert alice.ok, alice.describe()
        with start_registered_uas(
            tmp_path, registrar=outside, user=BOB[0], password=BOB[1], hold_s=30, binary=sipp_bin
        ) as bob:
            caller = run(
                tmp_path,
                SippConfig(
                    scenario="uac_call.xml",
                    remote=outside,
                    service=BOB[0],
                    calls=CALLS,
                    rate=10,
                    duration_ms=HOLD_MS,
                    timeout_s=30,
                    label="caller",
                ),
                binary=sipp_bin,
            )
            assert caller.ok and caller.successful == CALLS, caller.describe()
            bob.wait_answered(CALLS, deadline_s=10)
        thief = run(  # the right user, the wrong password, from an untrusted address
            tmp_path,
            SippConfig(
                scenario="register_auth.xml",
                remote=outside,
                local_ip=STRANGER,
                service=ALICE[0],
                auth_user=ALICE[0],
                auth_password="wrong",
                calls=1,
                timeout_s=10,
                recv_timeout_ms=3000,
                label="thief",
            ),
            binary=sipp_bin,
        )
        assert not thief.ok
        assert wait_until(lambda: counters.count("outside", "REGISTER") == 6)
        stranger = UdpPeer(STRANGER)
        try:
            for n in range(GARBAGE):
                stranger.send(b"THIS IS NOT SIP %d\r\n\r\n" % n, outside)
            for n in range(FLOOD):
                stranger.send(_options(n, stranger.port), outside)
            assert wait_until(lambda: _flood_seen(counters) == GARBAGE + FLOOD, timeout=10), (
                counters.messages
            )
        finally:
            stranger.close()
        # the stop flushes the partial minute (and a minute boundary in between flushed the rest)
    final = guard.counters
    assert final is not None
    got = _rollups(tmp_path / "sipguard.db")
    messages, drops, rejects = got[Dimension.MESSAGES], got[Dimension.DROPS], got[Dimension.REJECTS]

    # 1. exactly the proxy's own counts, message for message
    expected: Counter[str] = Counter()
    expected_drops: Counter[str] = Counter()
    expected_rejects: Counter[str] = Counter()
    for (side, kind, action, reason), n in final.messages.items():
        expected[f"{side}:{'unparsed' if kind in ('-', 'malformed') else kind}"] += n
        if action == "drop":
            expected_drops[reason] += n
        elif action == "reject":
            expected_rejects[reason] += n
    assert messages == expected
    assert drops == expected_drops and rejects == expected_rejects
    assert sum(got[Dimension.RESPONSES].values()) == final.count("inside", "response", "forward")

    # 2. what the peers sent
    assert messages["outside:REGISTER"] == 6  # alice, bob and the thief: challenge + answer each
    assert messages["inside:INVITE"] == CALLS  # the PBX's leg toward bob, through sipguard
    assert got[Dimension.REGISTRATIONS][""] == 2  # alice and bob; not the thief
    assert got[Dimension.AUTH_FAILURES][""] == 1  # the thief's wrong password
    assert got[Dimension.CALLS][""] == CALLS  # counted once, though both legs pass sipguard
    minutes = got[Dimension.CALL_MINUTES][""]
    assert CALLS * HOLD_MS / 60_000 * 0.9 <= minutes <= CALLS * (HOLD_MS + 3000) / 60_000, minutes
    assert got[Dimension.RESPONSES]["2xx"] >= 2 + 2 * CALLS  # 200 REGISTER x2, 200 INVITE, 200 BYE
    assert got[Dimension.RESPONSES]["4xx"] >= 3  # the challenges (and the thief's refusal)
    assert drops["malformed"] + rejects["malformed"] == GARBAGE
    assert drops["rate_limited"] >= 1 and drops["banned"] >= 1  # the flood: limited, then banned
    # the flood's messages: parsed OPTIONS, and those dropped before parsing once banned
    assert messages["outside:OPTIONS"] + messages["outside:unparsed"] == FLOOD + GARBAGE
    # countries of the requests that parsed: the stranger's REGISTERs and OPTIONS are Brazil's
    countries = got[Dimension.COUNTRIES]
    thief_bye = messages["outside:BYE"] - CALLS  # SIPp may send a BYE when it gives up
    assert thief_bye in (0, 1), messages
    assert countries["BR"] == 2 + thief_bye + messages["outside:OPTIONS"], messages
    requests = sum(
        v for k, v in messages.items() if k.startswith("outside:") and k.split(":")[1] not in
        ("response", "unparsed")
    )  # fmt: skip
    assert countries["NL"] == requests - countries["BR"]
    assert set(countries) == {"NL", "BR"}


def _flood_seen(counters: Counters) -> int:
    """The stranger's messages counted so far: its OPTIONS, garbage, and what its ban dropped."""
    return sum(counters.count("outside", kind) for kind in ("OPTIONS", "malformed", "-"))
