"""The real-peer harness works on its own, without sipguard in the path.

SIPp talks to SIPp, and SIPp talks to Kamailio, on loopback. When one of these fails, the tests
that put sipguard between the same peers cannot be trusted either.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.peers import ports
from tests.peers.kamailio import ALICE, BOB, CAROL, REALM, KamailioProcess, start_kamailio
from tests.peers.require import REQUIRE_PEERS_ENV, need_binary
from tests.peers.sipp import (
    SippConfig,
    SippResult,
    SippStats,
    Transport,
    run,
    start,
    start_registered_uas,
)

pytestmark = [pytest.mark.peers, pytest.mark.timeout(60)]


def _direct_calls(
    tmp_path: Path,
    sipp_bin: str,
    *,
    uas_scenario: str,
    uac_scenario: str,
    calls: int,
    rate: float,
    transport: Transport = "u1",
    duration_ms: int | None = None,
) -> tuple[SippResult, SippResult]:
    """Run ``calls`` calls from a SIPp UAC straight to a SIPp UAS; return (uac, uas) results."""
    with start(
        tmp_path,
        SippConfig(scenario=uas_scenario, transport=transport, timeout_s=50, label="uas"),
        binary=sipp_bin,
    ) as uas:
        uac = run(
            tmp_path,
            SippConfig(
                scenario=uac_scenario,
                remote=uas.address,
                transport=transport,
                service="bob",
                calls=calls,
                rate=rate,
                duration_ms=duration_ms,
                timeout_s=40,
                label="uac",
            ),
            binary=sipp_bin,
        )
        uas_result = uas.stop()
    return uac, uas_result


# --- (a) SIPp UAC -> SIPp UAS -------------------------------------------------------------


def test_sipp_calls_sipp_over_udp(tmp_path: Path, sipp_bin: str) -> None:
    uac, uas = _direct_calls(
        tmp_path,
        sipp_bin,
        uas_scenario="uas_call.xml",
        uac_scenario="uac_call.xml",
        calls=200,
        rate=100,
    )
    assert uac.ok, uac.describe()
    assert (uac.successful, uac.failed, uac.unexpected) == (200, 0, 0), uac.describe()
    assert uas.returncode == 0, uas.describe()
    assert (uas.successful, uas.failed) == (200, 0), uas.describe()
    assert len([line for line in uas.log_lines() if line.startswith("ANSWERED ")]) == 200


def test_sipp_calls_sipp_over_tcp(tmp_path: Path, sipp_bin: str) -> None:
    uac, uas = _direct_calls(
        tmp_path,
        sipp_bin,
        uas_scenario="uas_call.xml",
        uac_scenario="uac_call.xml",
        calls=50,
        rate=50,
        transport="t1",
    )
    assert uac.ok, uac.describe()
    assert (uac.successful, uac.failed, uac.retransmissions) == (50, 0, 0), uac.describe()
    assert (uas.successful, uas.failed) == (50, 0), uas.describe()


# --- (d) CANCEL and re-INVITE, SIPp to SIPp -------------------------------------------------


def test_sipp_cancel_while_ringing(tmp_path: Path, sipp_bin: str) -> None:
    uac, uas = _direct_calls(
        tmp_path,
        sipp_bin,
        uas_scenario="uas_ring_no_answer.xml",
        uac_scenario="uac_cancel.xml",
        calls=20,
        rate=40,
    )
    assert uac.ok, uac.describe()
    assert uac.successful == 20, uac.describe()
    assert (uas.successful, uas.failed) == (20, 0), uas.describe()
    assert len([line for line in uas.log_lines() if line.startswith("CANCELLED ")]) == 20


def test_sipp_reinvite(tmp_path: Path, sipp_bin: str) -> None:
    uac, uas = _direct_calls(
        tmp_path,
        sipp_bin,
        uas_scenario="uas_reinvite.xml",
        uac_scenario="uac_reinvite.xml",
        calls=20,
        rate=40,
        duration_ms=20,
    )
    assert uac.ok, uac.describe()
    assert uac.successful == 20, uac.describe()
    assert (uas.successful, uas.failed) == (20, 0), uas.describe()
    assert len([line for line in uas.log_lines() if line.startswith("REINVITED ")]) == 20


# --- (b) REGISTER with digest auth at Kamailio ----------------------------------------------


def _register(
    tmp_path: Path,
    sipp_bin: str,
    pbx: KamailioProcess,
    user: str,
    password: str,
    **keys: str,
) -> SippResult:
    return run(
        tmp_path,
        SippConfig(
            scenario="register_auth.xml",
            remote=pbx.address,
            service=user,
            auth_password=password,
            calls=1,
            timeout_s=15,
            keys=keys,
            trace_msg=True,
            label=f"register-{user}",
        ),
        binary=sipp_bin,
    )


def test_register_with_digest_auth(
    tmp_path: Path, sipp_bin: str, kamailio_pbx: KamailioProcess
) -> None:
    user, password = ALICE
    result = _register(tmp_path, sipp_bin, kamailio_pbx, user, password)
    assert result.ok, result.describe()
    assert result.successful == 1
    assert any(line.startswith("REGISTERED alice") for line in result.log_lines())
    messages = result.files.messages.read_text()
    assert "SIP/2.0 401 Unauthorized" in messages
    assert f'realm="{REALM}"' in messages
    assert "SIP/2.0 200 OK" in messages
    assert kamailio_pbx.log_lines("AUTH-OK user 'alice' REGISTER")
    assert kamailio_pbx.log_lines("REGISTERED alice")


def test_register_with_wrong_password_fails(
    tmp_path: Path, sipp_bin: str, kamailio_pbx: KamailioProcess
) -> None:
    result = _register(tmp_path, sipp_bin, kamailio_pbx, ALICE[0], "not-the-password")
    assert result.returncode == 1, result.describe()
    assert (result.successful, result.failed, result.unexpected) == (0, 1, 1), result.describe()
    assert "SIP/2.0 200" not in result.files.messages.read_text()
    assert "401 Unauthorized" in result.errors_text()
    assert kamailio_pbx.log_lines("AUTH-FAIL rc=-2 user 'alice'")
    assert not kamailio_pbx.log_lines("REGISTERED alice")


def test_register_fake_nat_contact_is_stored(
    tmp_path: Path, sipp_bin: str, kamailio_pbx: KamailioProcess
) -> None:
    nat_port = ports.free_udp_port("127.0.0.254")
    user, password = CAROL
    result = _register(
        tmp_path,
        sipp_bin,
        kamailio_pbx,
        user,
        password,
        contact_host="127.0.0.254",
        contact_port=str(nat_port),
    )
    assert result.ok, result.describe()
    stored = kamailio_pbx.log_lines("REGISTERED carol")
    assert stored
    assert f"sip:carol@127.0.0.254:{nat_port}" in stored[-1]


# --- (c) a SIPp UAS registers bob, a SIPp UAC calls bob through Kamailio ----------------------


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_call_to_registered_user_through_kamailio(
    tmp_path: Path, sipp_bin: str, kamailio_pbx: KamailioProcess, transport: Transport
) -> None:
    user, password = BOB
    with start_registered_uas(
        tmp_path,
        registrar=kamailio_pbx.address,
        user=user,
        password=password,
        transport=transport,
        hold_s=40,
        binary=sipp_bin,
    ) as bob:
        uac = run(
            tmp_path,
            SippConfig(
                scenario="uac_call.xml",
                remote=kamailio_pbx.address,
                transport=transport,
                service=user,
                keys={"from_user": ALICE[0]},
                calls=10,
                rate=20,
                timeout_s=20,
                trace_msg=True,
                label="caller",
            ),
            binary=sipp_bin,
        )
        assert uac.ok, uac.describe()
        assert uac.successful == 10, uac.describe()
        bob.wait_answered(10, deadline_s=10)
        bob_result = bob.stop()
    assert bob_result.returncode == 0, bob_result.describe()
    assert bob_result.stats is not None
    assert bob_result.stats.auto_answered == 10, bob_result.describe()
    # the calls really went through Kamailio: it record-routed them and relayed to bob
    messages = uac.files.messages.read_text()
    assert f"Record-Route: <sip:{kamailio_pbx.host}:{kamailio_pbx.port};" in messages
    assert "Server: sipguard-test-sipp" in messages
    assert len(kamailio_pbx.log_lines("RELAY INVITE")) == 10
    assert len(kamailio_pbx.log_lines("RELAY BYE")) == 10


def test_call_to_unknown_user_gets_404(
    tmp_path: Path, sipp_bin: str, kamailio_pbx: KamailioProcess
) -> None:
    uac = run(
        tmp_path,
        SippConfig(
            scenario="uac_call.xml",
            remote=kamailio_pbx.address,
            service="nobody",
            calls=1,
            timeout_s=10,
        ),
        binary=sipp_bin,
    )
    assert (uac.returncode, uac.failed, uac.unexpected) == (1, 1, 1), uac.describe()
    assert "SIP/2.0 404 Not Found" in uac.errors_text()


def test_authenticated_invite(tmp_path: Path, sipp_bin: str, kamailio_bin: str) -> None:
    with (
        start_kamailio(tmp_path, auth_invites=True, binary=kamailio_bin) as pbx,
        start_registered_uas(
            tmp_path, registrar=pbx.address, user=BOB[0], password=BOB[1], binary=sipp_bin
        ) as bob,
    ):
        caller = SippConfig(
            scenario="uac_call_auth.xml",
            remote=pbx.address,
            service=BOB[0],
            auth_user=ALICE[0],
            auth_password=ALICE[1],
            calls=3,
            rate=20,
            timeout_s=15,
            label="caller",
        )
        uac = run(tmp_path, caller, binary=sipp_bin)
        assert uac.ok, uac.describe()
        assert uac.successful == 3
        bob.wait_answered(3, deadline_s=10)
        wrong_password = replace(caller, auth_password="x", calls=1, label="wrong-password")
        wrong = run(tmp_path, wrong_password, binary=sipp_bin)
        assert (wrong.returncode, wrong.successful, wrong.failed) == (1, 0, 1), wrong.describe()
        assert wrong.stats is not None
        assert wrong.stats.failures() == {"FailedRegexpDoesntMatch": 1}, wrong.describe()
        assert any(line.startswith("AUTH-REJECTED ") for line in wrong.log_lines())
        assert bob.answered() == 3
    assert len(pbx.log_lines("AUTH-OK user 'alice' INVITE")) == 3


# --- the helpers themselves ------------------------------------------------------------------


def test_ports_are_loopback_and_free() -> None:
    port = ports.free_port_both()
    assert 0 < port < 65536
    low = ports.free_udp_port_pair()
    assert low + 2 < 65536
    with pytest.raises(ValueError, match="loopback"):
        ports.free_udp_port("192.0.2.1")
    with pytest.raises(TimeoutError):
        ports.wait_udp_sip_ready("127.0.0.1", ports.free_udp_port(), deadline_s=0.3)


def test_stat_csv_parsing() -> None:
    header = "StartTime;SuccessfulCall(C);FailedCall(C);Retransmissions(C);"
    header += "FailedUnexpectedMessage(C);OutOfCallMsgs(C);ResponseTime1(C);"
    text = f"{header}\nx;0;0;0;0;0;00:00:00:000000;\nx;198;2;5;2;1;00:00:01:500000;\n"
    stats = SippStats.parse(text)
    assert stats is not None
    assert (stats.successful, stats.failed, stats.retransmissions) == (198, 2, 5)
    assert (stats.unexpected, stats.out_of_call) == (2, 1)
    assert stats.failures() == {"FailedUnexpectedMessage": 2}
    assert stats.response_time_ms() == 1500.0
    assert SippStats.parse(header) is None


def test_need_binary_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = "sipguard-no-such-peer-binary"
    monkeypatch.delenv(REQUIRE_PEERS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception):
        need_binary(missing)
    monkeypatch.setenv(REQUIRE_PEERS_ENV, "1")
    with pytest.raises(pytest.fail.Exception):
        need_binary(missing)
