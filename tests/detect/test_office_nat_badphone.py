"""One phone with a wrong password behind the office address must not lock out the office.

Issue 5: "one wrong-password device behind that office IP does not ban the office's healthy
phones". The office (50 phones, 127.0.0.20) has registered, so sipguard knows the address as one
that logs in successfully. Then a device on the same address, configured for account 2099 with a
stale password, keeps retrying (10 attempts, each REGISTER / 401 / REGISTER with wrong digest /
401) while the 50 healthy phones re-register after an outage. What must hold:

1. every healthy phone registers, during the bad device's retries and after them;
2. nobody is banned: not the office address, not anyone;
3. the bad device never registers;
4. its wrong passwords stop reaching the PBX after ``auth.failures`` of them (plus the few in
   flight): sipguard blocks that account from that address, per account, not the address.

The rule that makes this true is the brute-force detector's shared-address rule
(sipguard/engine/detectors/bruteforce.py, policy `auth.known_sources`): an address that logged in
successfully is judged per account.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipguard.policy import load_policy_text
from tests.detect import (
    OFFICE_IP,
    SkewedClock,
    office_wave,
    policy_from_default,
    use_clock,
    write_users_csv,
)
from tests.peers.kamailio import KamailioProcess, numbered_users, start_kamailio
from tests.peers.sipp import SippConfig, SippResult, run, start
from tests.proxy.guard import GuardHandle, running_guard

pytestmark = [
    pytest.mark.peers,
    pytest.mark.integration,
    pytest.mark.timeout(120),
]

PHONES = 50
OFFICE = numbered_users(PHONES, first=2001)  # 2001 .. 2050
BAD_ACCOUNT, BAD_ACCOUNT_PASSWORD = "2099", "pw-2099-real"
STALE_PASSWORD = "pw-2099-old"
ATTEMPTS = 10
IN_FLIGHT = 2  # wrong passwords the device may have on the wire when the block lands
DEFAULT_AUTH_FAILURES = 5  # the policy model's default, if the policy does not say


@pytest.fixture
def office_pbx(tmp_path: Path, kamailio_bin: str) -> Iterator[KamailioProcess]:
    users = {**OFFICE, BAD_ACCOUNT: BAD_ACCOUNT_PASSWORD}
    proc = start_kamailio(tmp_path, tcp=False, extra_users=users, binary=kamailio_bin)
    try:
        yield proc
    finally:
        proc.stop()


def _registered(pbx: KamailioProcess) -> list[str]:
    return [line.split("REGISTERED ", 1)[1].split()[0] for line in pbx.log_lines("REGISTERED ")]


def _no_bans(guard: GuardHandle, clock: SkewedClock) -> None:
    bans = guard.info.engine.active_bans(clock())
    assert bans == [], f"sipguard banned {[(b.ip, b.reason, b.evidence) for b in bans]}"


def _healthy_wave_ok(result: SippResult, pbx: KamailioProcess, before: int) -> None:
    assert (result.successful, result.failed) == (PHONES, 0), result.describe()
    assert sorted(_registered(pbx)[before:]) == sorted(OFFICE), result.describe()


def test_bad_phone_does_not_lock_out_the_office(
    tmp_path: Path,
    sipp_bin: str,
    office_pbx: KamailioProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SkewedClock()
    use_clock(monkeypatch, clock)
    office_csv = write_users_csv(tmp_path / "office.csv", OFFICE)
    bad_csv = write_users_csv(tmp_path / "bad.csv", {BAD_ACCOUNT: STALE_PASSWORD})
    text = policy_from_default(f"udp://{office_pbx.host}:{office_pbx.port}")
    policy = load_policy_text(text, str(tmp_path / "policy.yaml"))
    failures = int(getattr(getattr(policy, "auth", None), "failures", DEFAULT_AUTH_FAILURES))
    assert failures < ATTEMPTS, "the device must retry more often than the threshold"
    with running_guard(text, tmp_path) as guard:
        assert clock.calls, "sipguard does not read the test's clock"
        outside = guard.outside("udp")
        boot = run(
            tmp_path,
            office_wave(outside, office_csv, PHONES, rate=50, label="office-boot"),
            binary=sipp_bin,
        )
        _healthy_wave_ok(boot, office_pbx, 0)  # the office address has logged in: known
        _no_bans(guard, clock)

        clock.advance(600.0)  # an outage; then everybody comes back at once, the bad device too
        bad_device = SippConfig(
            scenario="register_auth_inf.xml",
            remote=outside,
            local_ip=OFFICE_IP,
            calls=ATTEMPTS,
            rate=10,
            recv_timeout_ms=2000,  # a refused attempt may be dropped silently: fail it in 2 s
            timeout_s=30,
            timeout_error=False,
            keys={"expires": "3600"},
            label="bad-device",
            extra_args=("-inf", str(bad_csv)),
        )
        with start(tmp_path, bad_device, binary=sipp_bin) as bad:
            again = run(
                tmp_path,
                office_wave(outside, office_csv, PHONES, rate=100, label="office-after-outage"),
                binary=sipp_bin,
            )
            bad_result = bad.wait(40.0)
        _healthy_wave_ok(again, office_pbx, PHONES)  # 1. during the retries
        _no_bans(guard, clock)  # 2.
        assert bad_result.successful == 0, bad_result.describe()  # 3.
        assert bad_result.failed == ATTEMPTS, bad_result.describe()
        wrong = office_pbx.log_lines(f"AUTH-FAIL rc=-2 user '{BAD_ACCOUNT}'")
        assert len(wrong) <= failures + IN_FLIGHT, (  # 4.
            f"{len(wrong)} of {ATTEMPTS} wrong passwords for {BAD_ACCOUNT} reached the PBX; "
            f"at most auth.failures={failures} (+{IN_FLIGHT} in flight) may"
        )
        assert BAD_ACCOUNT not in _registered(office_pbx)

        clock.advance(120.0)  # the block is in place: the office still works
        started = time.monotonic()
        later = run(
            tmp_path,
            office_wave(outside, office_csv, PHONES, rate=100, label="office-later"),
            binary=sipp_bin,
        )
        _healthy_wave_ok(later, office_pbx, 2 * PHONES)  # 1. after the retries
        _no_bans(guard, clock)  # 2.
        assert time.monotonic() - started < 20.0
