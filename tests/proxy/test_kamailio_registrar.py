"""Kamailio as the registrar/PBX behind sipguard: digest REGISTER through it, then Kamailio routes
a call
back out through sipguard to a phone whose Contact is not its real address (simulated NAT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers.kamailio import ALICE, BOB, KamailioProcess
from tests.peers.sipp import SippConfig, Transport, run, start_registered_uas
from tests.proxy.guard import policy_text, running_guard

pytestmark = [pytest.mark.peers, pytest.mark.integration, pytest.mark.timeout(90)]

# An address nobody listens on: what a phone behind NAT writes in its Contact. Loopback, so that
# even a
# wrong hop stays on this machine.
NAT_CONTACT = ("127.0.0.254", 9)


def test_digest_register_through_sipguard(
    tmp_path: Path, sipp_bin: str, kamailio_pbx: KamailioProcess
) -> None:
    with running_guard(
        policy_text(f"udp://{kamailio_pbx.host}:{kamailio_pbx.port}"), tmp_path
    ) as guard:
        result = run(
            tmp_path,
            SippConfig(
                scenario="register_auth.xml",
                remote=guard.outside("udp"),
                service=ALICE[0],
                auth_user=ALICE[0],
                auth_password=ALICE[1],
                calls=1,
                timeout_s=10,
                label="register",
            ),
            binary=sipp_bin,
        )
        assert result.ok, result.describe()
        assert guard.count("outside", "REGISTER", "forward") == 2  # challenge round trip, then auth
        assert guard.count("inside", "response", "forward") == 2  # 401, then 200
    registered = kamailio_pbx.log_lines(f"REGISTERED {ALICE[0]}")
    assert len(registered) == 1
    # the PBX stored sipguard's alias, not the phone's own address, and saw the real source
    assert ";sgalias=" in registered[0]
    assert kamailio_pbx.log_lines("xsrc='127.0.0.1:")


@pytest.mark.parametrize("phone_transport", ["u1", "t1"])
def test_pbx_reaches_a_natted_phone_only_through_sipguard(
    tmp_path: Path, sipp_bin: str, kamailio_pbx: KamailioProcess, phone_transport: Transport
) -> None:
    calls = 5
    with running_guard(
        policy_text(f"udp://{kamailio_pbx.host}:{kamailio_pbx.port}"), tmp_path
    ) as guard:
        outside = guard.outside("tcp" if phone_transport == "t1" else "udp")
        with start_registered_uas(
            tmp_path,
            registrar=outside,
            user=BOB[0],
            password=BOB[1],
            transport=phone_transport,
            contact_host=NAT_CONTACT[0],
            contact_port=NAT_CONTACT[1],
            hold_s=30,
            binary=sipp_bin,
        ) as phone:
            caller = run(
                tmp_path,
                SippConfig(
                    scenario="uac_call.xml",
                    remote=guard.outside("udp"),
                    service=BOB[0],
                    calls=calls,
                    rate=10,
                    timeout_s=20,
                    label="caller",
                ),
                binary=sipp_bin,
            )
            assert caller.ok and caller.successful == calls, caller.describe()
            phone.wait_answered(calls, deadline_s=10)
        # the PBX's INVITEs arrived on sipguard's inside face and left toward the real phone
        assert guard.count("inside", "INVITE", "forward") == calls
        assert (
            guard.count("inside", "BYE", "forward") + guard.count("outside", "BYE", "forward")
            >= calls
        )
    relayed = kamailio_pbx.log_lines("RELAY INVITE")
    assert len(relayed) == calls
    assert all(";sgalias=" in line for line in relayed)
    assert not kamailio_pbx.log_lines("REFUSED")
