"""SIPVicious against the test PBX behind sipguard, with the shipped default policy (issue 5).

The same three attacks as test_attacks_baseline.py (which proves that they work without
sipguard), now through a real sipguard running ``policies/default.yaml`` (addresses and storage
replaced, see tests/detect/__init__.py), twice:

* ``ua_rule``: the policy as shipped, User-Agent rule included. svcrack must not find the
  password, svwar must find no extension, svmap must report no device; the PBX must not even see
  the attacker (its first request is the one that gets it banned).
* ``behaviour_only``: every User-Agent rule removed, so that behaviour alone has to stop the
  scanner. svcrack must still fail (the brute-force detector bans the source after
  ``auth.failures`` failed logins: the PBX sees at most that many, plus the ones in flight);
  svwar may learn at most the real extensions it probed before its
  ``enumeration.distinct_users``-th unknown user; svmap's result is recorded, not asserted.
* ``compact``: the policy as shipped, but the scanner uses SIPVicious' own ``-c`` (compact
  headers), which sends no User-Agent at all: the User-Agent rule never sees it, so the same
  expectations as ``behaviour_only`` hold.

After every attack a real phone (SIPp, another address) registers through the same sipguard:
a sipguard that forwards nothing would "stop" every attack, so this proves it still works.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from sipguard.policy import load_policy_text
from tests.detect import ATTACKER_IP, policy_from_default, start_attack_pbx, user_agent_rules
from tests.peers.kamailio import ALICE, EXTENSIONS, KamailioProcess
from tests.peers.sipp import SippConfig, run
from tests.peers.sipvicious import Attacker, dictionary_with, svcrack, svmap, svwar
from tests.proxy.guard import GuardHandle, running_guard

pytestmark = [pytest.mark.peers, pytest.mark.integration, pytest.mark.timeout(90)]

Mode = Literal["ua_rule", "behaviour_only", "compact"]
MODES = ("ua_rule", "behaviour_only", "compact")
GUARDED_MODES = (
    pytest.param("ua_rule", id="ua_rule"),
    pytest.param("behaviour_only", id="behaviour_only"),
    pytest.param("compact", id="compact"),
)
PHONE_IP = "127.0.0.30"  # a legitimate phone, elsewhere
IN_FLIGHT = 2  # requests an attacker may have on the wire when its ban lands
DEFAULT_AUTH_FAILURES = 5  # the policy model's defaults, if the policy does not say
DEFAULT_ENUMERATION_USERS = 10


@pytest.fixture
def pbx(tmp_path: Path, kamailio_bin: str) -> Iterator[KamailioProcess]:
    proc = start_attack_pbx(tmp_path, kamailio_bin)
    try:
        yield proc
    finally:
        proc.stop()


def _policy(pbx: KamailioProcess, mode: Mode) -> str:
    text = policy_from_default(
        f"udp://{pbx.host}:{pbx.port}", drop_user_agent_rules=mode == "behaviour_only"
    )
    if mode == "behaviour_only":
        assert not user_agent_rules(text)
    else:
        assert user_agent_rules(text), "the default policy has no User-Agent rule any more"
    return text


def _attacker(mode: Mode) -> Attacker:
    """SIPVicious as it comes (User-Agent friendly-scanner), or with ``-c`` (none at all)."""
    return Attacker(compact=mode == "compact")


def _threshold(text: str, tmp_path: Path, section: str, name: str, default: int) -> int:
    """A detector threshold from the policy as sipguard loads it (the model's default when the
    policy does not set it, or when this sipguard does not know the section yet)."""
    policy = load_policy_text(text, str(tmp_path / "policy.yaml"))
    value = getattr(getattr(policy, section, None), name, default)
    return int(value)


def _reached_pbx(pbx: KamailioProcess) -> list[str]:
    """The PBX's ``REQ`` lines of requests sipguard forwarded on behalf of the attacker (its
    X-SIPGuard-Source header). AUTH-FAIL, AUTH-OK and UNKNOWN-USER lines name sipguard as the
    source; the attacker is the only one to use account 101 and unknown users here (the
    legitimate phone registers alice, after the attack), so those are counted as they are."""
    return [line for line in pbx.log_lines("REQ ") if f"xsrc='{ATTACKER_IP}:" in line]


def _banned(guard: GuardHandle) -> set[str]:
    return {ban.ip for ban in guard.info.engine.active_bans(time.time())}


def _phone_still_registers(tmp_path: Path, guard: GuardHandle, sipp_bin: str) -> None:
    result = run(
        tmp_path,
        SippConfig(
            scenario="register_auth.xml",
            remote=guard.outside("udp"),
            local_ip=PHONE_IP,
            service=ALICE[0],
            auth_password=ALICE[1],
            calls=1,
            timeout_s=10,
            label="legit-phone",
        ),
        binary=sipp_bin,
    )
    assert result.ok, "a legitimate phone cannot register through sipguard:\n" + result.describe()
    assert PHONE_IP not in _banned(guard)


@pytest.mark.parametrize("mode", GUARDED_MODES)
def test_svcrack_does_not_find_the_password(
    tmp_path: Path, pbx: KamailioProcess, sipp_bin: str, mode: Mode
) -> None:
    user, password = "101", EXTENSIONS["101"]
    words = dictionary_with(tmp_path / "passwords.txt", password)
    text = _policy(pbx, mode)
    failures = _threshold(text, tmp_path, "auth", "failures", DEFAULT_AUTH_FAILURES)
    with running_guard(text, tmp_path) as guard:
        result = svcrack(
            tmp_path,
            guard.outside("udp"),
            username=user,
            dictionary=words,
            attacker=_attacker(mode),
        )
        assert result.password is None, result.describe()
        assert not result.cracked, result.describe()
        assert not pbx.log_lines(f"AUTH-OK user '{user}'"), result.describe()
        assert ATTACKER_IP in _banned(guard), result.describe()
        if mode == "ua_rule":
            assert not _reached_pbx(pbx), pbx.log_text()[-3000:]
        else:
            assert _reached_pbx(pbx), "behaviour can only be judged if the attack got through"
            tried = pbx.log_lines(f"AUTH-FAIL rc=-2 user '{user}'")
            assert len(tried) <= failures + IN_FLIGHT, (
                f"{len(tried)} wrong passwords reached the PBX (auth.failures={failures})\n"
                + result.describe()
            )
        _phone_still_registers(tmp_path, guard, sipp_bin)


def _allowed_extensions(ranges: str, unknown_threshold: int) -> frozenset[str]:
    """The real extensions svwar probes before its ``unknown_threshold``-th unknown user.

    svwar's first probe is a random number (unknown); then the ranges in order."""
    unknown = 1
    allowed: set[str] = set()
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        for number in range(int(low), int(high or low) + 1):
            if unknown >= unknown_threshold:
                return frozenset(allowed)
            if str(number) in EXTENSIONS:
                allowed.add(str(number))
            else:
                unknown += 1
    return frozenset(allowed)


@pytest.mark.parametrize("mode", GUARDED_MODES)
@pytest.mark.parametrize("ranges", ["100-130", "104-130,100-103"])
def test_svwar_learns_nothing_past_the_threshold(
    tmp_path: Path, pbx: KamailioProcess, sipp_bin: str, mode: Mode, ranges: str
) -> None:
    text = _policy(pbx, mode)
    with running_guard(text, tmp_path) as guard:
        result = svwar(tmp_path, guard.outside("udp"), extensions=ranges, attacker=_attacker(mode))
        if mode == "ua_rule":
            assert result.found == frozenset(), result.describe()
            assert not _reached_pbx(pbx), pbx.log_text()[-3000:]
        else:
            threshold = _threshold(
                text, tmp_path, "enumeration", "distinct_users", DEFAULT_ENUMERATION_USERS
            )
            allowed = _allowed_extensions(ranges, threshold)
            assert result.found <= allowed, (
                f"svwar learned {sorted(result.found)}, at most {sorted(allowed)} allowed "
                f"(enumeration.distinct_users={threshold})\n" + result.describe()
            )
            unknown = pbx.log_lines("UNKNOWN-USER")
            assert unknown, "behaviour can only be judged if the attack got through"
            assert len(unknown) <= threshold + IN_FLIGHT, (
                f"{len(unknown)} unknown users reached the PBX "
                f"(enumeration.distinct_users={threshold})\n" + result.describe()
            )
        assert ATTACKER_IP in _banned(guard), result.describe()
        _phone_still_registers(tmp_path, guard, sipp_bin)


@pytest.mark.parametrize("mode", MODES)
def test_svmap_through_sipguard(
    tmp_path: Path,
    pbx: KamailioProcess,
    sipp_bin: str,
    mode: Mode,
    record_property: Callable[[str, object], None],
) -> None:
    text = _policy(pbx, mode)
    with running_guard(text, tmp_path) as guard:
        result = svmap(tmp_path, guard.outside("udp"), attacker=_attacker(mode))
        record_property("svmap_devices", repr(result.devices))
        record_property("svmap_returncode", result.run.returncode)
        print(f"svmap through sipguard ({mode}):\n{result.describe()}")
        if mode == "ua_rule":
            assert result.devices == (), result.describe()
            assert ATTACKER_IP in _banned(guard), result.describe()
            assert not _reached_pbx(pbx), pbx.log_text()[-3000:]
        _phone_still_registers(tmp_path, guard, sipp_bin)
