"""An office of 50 phones behind one address, through sipguard with the shipped default policy.

Issue 5 item 7: 50 phones behind one NAT address that all (re-)register at once, each with the
full digest round trip (REGISTER without credentials, 401, REGISTER with credentials, 200), must
trip no threshold. One SIPp plays the office from 127.0.0.20, one call and one socket (a NAT
port) per phone, each call the user of one line of an injection file; Kamailio knows the 50 users.

sipguard runs ``policies/default.yaml`` (addresses and storage replaced) with a clock the test
moves forward (:class:`tests.detect.SkewedClock`): the "outage" between the two waves lasts ten
minutes for sipguard's buckets and windows, and no time at all for the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.detect import (
    OFFICE_IP,
    SkewedClock,
    office_wave,
    policy_from_default,
    use_clock,
    write_users_csv,
)
from tests.peers.kamailio import KamailioProcess, numbered_users, start_kamailio
from tests.peers.sipp import SippResult, run
from tests.proxy.guard import GuardHandle, running_guard

pytestmark = [pytest.mark.peers, pytest.mark.integration, pytest.mark.timeout(120)]

PHONES = 50
OFFICE = numbered_users(PHONES, first=2001)  # 2001 .. 2050
OUTAGE_S = 600.0


@pytest.fixture
def office_pbx(tmp_path: Path, kamailio_bin: str) -> Iterator[KamailioProcess]:
    proc = start_kamailio(tmp_path, tcp=False, extra_users=OFFICE, binary=kamailio_bin)
    try:
        yield proc
    finally:
        proc.stop()


def _registered(pbx: KamailioProcess) -> list[str]:
    """Users in the PBX's REGISTERED log lines, in order (with repeats)."""
    return [line.split("REGISTERED ", 1)[1].split()[0] for line in pbx.log_lines("REGISTERED ")]


def _office_requests(pbx: KamailioProcess) -> int:
    return len([ln for ln in pbx.log_lines("REQ REGISTER") if f"xsrc='{OFFICE_IP}:" in ln])


def _check_wave(
    result: SippResult, pbx: KamailioProcess, guard: GuardHandle, clock: SkewedClock, before: int
) -> None:
    assert result.ok, result.describe()
    assert (result.successful, result.failed) == (PHONES, 0), result.describe()
    registered = _registered(pbx)[before:]
    assert sorted(registered) == sorted(OFFICE), f"PBX registered {len(registered)} of {PHONES}"
    assert guard.info.engine.active_bans(clock()) == [], "sipguard banned someone"
    # every REGISTER went through: nothing dropped, rejected or rate limited
    total = guard.count("outside", "REGISTER")
    assert guard.count("outside", "REGISTER", "forward") == total, guard.info.counters.messages


def test_office_of_50_phones_registers_twice_without_a_ban(
    tmp_path: Path,
    sipp_bin: str,
    office_pbx: KamailioProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SkewedClock()
    use_clock(monkeypatch, clock)
    users_csv = write_users_csv(tmp_path / "office.csv", OFFICE)
    text = policy_from_default(f"udp://{office_pbx.host}:{office_pbx.port}")
    with running_guard(text, tmp_path) as guard:
        assert clock.calls, "sipguard does not read the test's clock"
        outside = guard.outside("udp")
        started = time.monotonic()
        boot = run(
            tmp_path,
            office_wave(outside, users_csv, PHONES, rate=50, label="office-boot"),
            binary=sipp_bin,
        )
        _check_wave(boot, office_pbx, guard, clock, 0)
        assert _office_requests(office_pbx) == 2 * PHONES
        first_wave_s = time.monotonic() - started

        clock.advance(OUTAGE_S)  # the office's line is down for ten minutes, then comes back
        again = run(
            tmp_path,
            office_wave(outside, users_csv, PHONES, rate=500, label="office-after-outage"),
            binary=sipp_bin,
        )
        _check_wave(again, office_pbx, guard, clock, PHONES)
        assert _office_requests(office_pbx) == 4 * PHONES
        assert OFFICE_IP not in {ban.ip for ban in guard.info.engine.active_bans(clock())}
    assert first_wave_s < 20.0
