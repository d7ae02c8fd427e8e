"""A report from a store filled by a real session: Kamailio is the PBX behind a sipguard running
in-process; a phone (SIPp) registers through it and takes calls from a SIPp caller, the caller
tries a satellite number (toll fraud, refused by sipguard), one source floods REGISTERs, another
(SIPp with a wrong password) brute-forces a real account, and an operator bans and unbans an
address by hand. Once sipguard has stopped, the report of the session must say exactly that:
bans by reason and actor, incidents, blocked messages by reason (from the per-minute rollups),
the top source; and its HTML opens in Chromium (screenshot: var/test-artifacts/report/)."""

from __future__ import annotations

import asyncio
import getpass
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sipguard.cli import main
from sipguard.policy import load_policy_file
from sipguard.report import Report, build_report, render
from tests.metrics.test_metrics import sip_register
from tests.peers.kamailio import ALICE, BOB, KamailioProcess, start_kamailio
from tests.peers.require import need_binary
from tests.peers.sipp import (
    SippConfig,
    call_once,
    guess_password,
    run,
    start_registered_uas,
)
from tests.proxy.guard import policy_text, running_guard
from tests.proxy.stub import UdpPeer, wait_until
from tests.report.tables import num, table_with
from tests.report.test_html_chromium import check_in_chromium

pytestmark = [pytest.mark.peers, pytest.mark.integration, pytest.mark.timeout(180)]

CALLER, PHONE, FLOODER, BRUTE, MANUAL = (
    "127.0.0.5",
    "127.0.0.6",
    "127.0.0.2",
    "127.0.0.3",
    "127.0.0.9",
)
CALLS = 10
FLOOD = 100
BURST = 10  # REGISTERs a source may send at once: the brute force (6) stays under it
CUT = 5  # then the 5th message over the rate bans the source
AUTH_FAILURES = 3
SATELLITE = "+881612345678"
POLICY = f"""limits:
  REGISTER: {{rate: 10/min, burst: {BURST}, ban_after: {CUT}, within: 1m, ban: 1h}}
auth: {{failures: {AUTH_FAILURES}, within: 10m, ban: 1h}}
fraud: {{home_country: NL}}
"""


def _banned(guard: Any, ip: str) -> bool:
    return any(b.ip == ip for b in guard.info.engine.active_bans(time.time()))


Verdicts = Counter[tuple[str, str]]  # (action, reason) -> messages, as the dispatcher counted


def _session(tmp_path: Path, sipp_bin: str, pbx: KamailioProcess) -> tuple[Path, Verdicts]:
    """Run it; return the policy file and the dispatcher's count of verdicts."""
    text = policy_text(f"udp://{pbx.host}:{pbx.port}", listen=("udp://127.0.0.1:0",), extra=POLICY)
    with running_guard(text, tmp_path) as guard:
        outside = guard.outside("udp")
        policy_file = tmp_path / "policy.yaml"
        # calls: a phone registers through sipguard, a caller calls it CALLS times
        with start_registered_uas(
            tmp_path,
            registrar=outside,
            user=BOB[0],
            password=BOB[1],
            local_ip=PHONE,
            hold_s=40,
            binary=sipp_bin,
        ) as phone:
            caller = run(
                tmp_path,
                SippConfig(
                    scenario="uac_call.xml",
                    remote=outside,
                    local_ip=CALLER,
                    service=BOB[0],
                    calls=CALLS,
                    rate=10,
                    timeout_s=30,
                    label="caller",
                ),
                binary=sipp_bin,
            )
            assert caller.ok and caller.successful == CALLS, caller.describe()
            phone.wait_answered(CALLS, deadline_s=10)
        # toll fraud: a satellite number, refused with 403 by sipguard itself
        fraud = call_once(tmp_path, outside, SATELLITE, local_ip=CALLER, binary=sipp_bin)
        assert fraud.failed == 1, fraud.describe()
        # a REGISTER flood from one source: the burst passes, CUT-1 are cut, then the ban
        flooder = UdpPeer(FLOODER)
        try:
            for n in range(FLOOD):
                flooder.send(sip_register(n, flooder.port, user="300"), outside)
            assert wait_until(lambda: _banned(guard, FLOODER))
            assert wait_until(
                lambda: (
                    guard.count("outside", "-") + guard.count("outside", "REGISTER", "drop")
                    >= FLOOD - BURST
                )
            )
        finally:
            flooder.close()
        # a brute force with a real client: alice's name, a wrong password, AUTH_FAILURES tries
        brute = guess_password(
            tmp_path, outside, local_ip=BRUTE, user=ALICE[0], tries=AUTH_FAILURES, binary=sipp_bin
        )
        assert brute.successful == 0, brute.describe()
        assert wait_until(lambda: _banned(guard, BRUTE))
        # an operator bans an address by hand, then lifts the ban (over the control socket)
        reason = 'NOC <script>alert("x")</script>'
        assert main(["ban", MANUAL, "-c", str(policy_file), "--reason", reason]) == 0
        assert main(["unban", MANUAL, "-c", str(policy_file)]) == 0
        counted: Verdicts = Counter()
        for (_side, _kind, action, reason), n in guard.info.counters.messages.items():
            counted[(action, reason)] += n
    return policy_file, counted  # stopped: the last effects and the partial minute are stored


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Verdicts, Path]:
    sipp_bin, kamailio_bin = need_binary("sipp"), need_binary("kamailio")
    tmp_path = tmp_path_factory.mktemp("report-e2e")
    started = time.time()
    pbx = start_kamailio(tmp_path, tcp=False, binary=kamailio_bin)
    try:
        policy_file, counted = _session(tmp_path, sipp_bin, pbx)
    finally:
        pbx.stop()
    policy = load_policy_file(policy_file)
    # rollup minutes are labelled with their start: begin a minute early
    report = asyncio.run(build_report(policy, started - 60, time.time() + 1))
    return report, counted, tmp_path


def test_bans_of_the_session_by_reason_and_actor(session: tuple[Report, Verdicts, Path]) -> None:
    report = session[0]
    bans = report.bans
    assert {(c.key, c.value) for c in bans.by_reason} == {
        ("rate_limited", 1),
        ("brute_force", 1),
        ("manual", 1),
    }
    assert (bans.issued, bans.manual_issued, bans.lifted, bans.manual_lifted) == (3, 1, 1, 1)
    by_ip = {b.ip: b for b in bans.issued_list.items}
    assert by_ip[FLOODER].rule == "limits.REGISTER" and by_ip[FLOODER].actor == "engine"
    assert by_ip[BRUTE].reason == "brute_force"
    manual = by_ip[MANUAL]
    assert manual.manual and manual.actor == f"cli:{getpass.getuser()}"
    assert manual.lifted_by == manual.actor and manual.lift_reason == "manual"


def test_incidents_of_the_session(session: tuple[Report, Verdicts, Path]) -> None:
    report = session[0]
    brute = [i for i in report.brute_force.items if i.ip == BRUTE]
    assert [i.kind for i in brute] == ["ban"] and brute[0].detail.startswith("brute_force:")
    assert report.brute_force.total == 1
    assert [(i.kind, i.ip, i.account) for i in report.toll_fraud.items] == [
        ("fraud_destination", CALLER, "sipp")
    ]
    assert report.unusual_logins.total == 0
    assert report.top_sources.items[0].ip == FLOODER  # rate limited, then banned
    assert {s.ip for s in report.top_sources.items} == {FLOODER, BRUTE, CALLER, MANUAL}
    assert [r.actor for r in report.reloads.items] == ["start"]  # the policy in force, audited


def test_traffic_and_blocked_by_reason_come_from_the_rollups(
    session: tuple[Report, Verdicts, Path],
) -> None:
    report, counted, _ = session
    t = report.traffic
    assert t.recorded and t.messages == counted.total()  # every message the dispatcher counted
    blocked = {b.reason: (b.dropped, b.rejected) for b in report.blocked}
    assert blocked == {
        reason: (counted[("drop", reason)], counted[("reject", reason)])
        for (action, reason) in counted
        if action in ("drop", "reject")
    }
    assert blocked["rate_limited"] == (CUT - 1, 0)  # the flood only
    # the rest of the flood (the ban lands on the CUT-th message over the rate), and whatever
    # the banned brute forcer still sent (SIPp ends a failed try with a request of its own)
    assert blocked["banned"][0] >= FLOOD - BURST - (CUT - 1)
    assert (
        blocked["toll_fraud"] == (0, counted[("reject", "toll_fraud")])
        and blocked["toll_fraud"][1] >= 1
    )
    assert t.calls == CALLS and t.registrations >= 1
    assert t.auth_failures == AUTH_FAILURES
    assert t.dropped == sum(b.dropped for b in report.blocked)
    assert sum(b.messages for b in report.series) == t.messages


def test_the_formats_of_the_session_report_agree_and_the_html_opens(
    session: tuple[Report, Verdicts, Path],
) -> None:
    report, _, tmp_path = session
    md, data = render(report, "md"), json.loads(render(report, "json"))
    blocked = table_with(md, "Reason", "Dropped", "Rejected", "Total")
    assert [[r[0], num(r[1]), num(r[2])] for r in blocked] == [
        [b["reason"], b["dropped"], b["rejected"]] for b in data["blocked"]
    ]
    headline = dict(table_with(md, "Measure", "Value"))
    assert num(headline["Messages"]) == data["traffic"]["messages"]
    assert headline["Bans issued"] == "3 (1 by hand)"
    assert "<script" not in md and "<script" not in render(report, "html")
    check_in_chromium(render(report, "html"), "session", tmp_path)
