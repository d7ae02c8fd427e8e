"""FraudGuard: the checks on INVITEs and the call state behind them, with message bytes and an
injected clock (no sleeping)."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest

from sipguard.core.sip import SipRequest, parse_message
from sipguard.engine.fraud import (
    KIND_DESTINATION,
    KIND_LIMIT,
    KIND_QUIET_HOURS,
    KIND_SPIKE,
    FraudFinding,
    FraudGuard,
    decisive,
)
from sipguard.policy import FraudAction, FraudSpec, Severity, load_policy_text
from tests.fraud.messages import Call

AMS = zoneinfo.ZoneInfo("Europe/Amsterdam")
NATIONAL = "sip:0201234567@pbx.example.net;user=phone"


def spec(fraud_yaml: str) -> FraudSpec:
    return load_policy_text("upstream: udp://10.0.0.5:5060\nfraud:\n" + fraud_yaml).fraud


def make(fraud_yaml: str = "  home_country: NL\n") -> FraudGuard:
    return FraudGuard(spec(fraud_yaml))


def at(text: str) -> float:
    """Epoch seconds of a local Amsterdam time, `2025-01-15 23:30`."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=AMS).timestamp()


NOON = at("2025-01-15 12:00")
LIMIT_4 = "  home_country: NL\n  per_account: {concurrent_calls: 4}\n"


def rule(found: FraudFinding | None) -> str:
    return "ok" if found is None else f"{found.action.value} {found.rule}"


# ------------------------------------------------------------------------- concurrent calls


def test_the_fifth_concurrent_call_is_refused_and_one_after_a_hangup_is_allowed() -> None:
    guard = make(LIMIT_4)
    calls = [Call(f"c{i}") for i in range(6)]
    for i, call in enumerate(calls[:4]):
        assert guard.check_invite(call.invite(), "1001", NOON + i) is None
        guard.observe(call.response(180), NOON + i + 0.1)
        guard.observe(call.response(200), NOON + i + 1)
    assert guard.calls_in_progress("1001") == 4
    fifth = guard.check_invite(calls[4].invite(), "1001", NOON + 10)
    assert fifth is not None
    assert (fifth.kind, fifth.action, fifth.rule) == (
        KIND_LIMIT,
        FraudAction.REJECT,
        "fraud.per_account.concurrent_calls",
    )
    assert fifth.detail == "account '1001': 4 calls in progress, limit 4"
    assert guard.calls_in_progress("1001") == 4  # the refused one is no call
    guard.observe(calls[1].bye(), NOON + 20)  # one of them hangs up
    assert guard.calls_in_progress("1001") == 3
    assert guard.check_invite(calls[5].invite(), "1001", NOON + 21) is None
    assert guard.calls_in_progress("1001") == 4
    # Another account is not affected by 1001's calls.
    assert guard.check_invite(Call("other", account="1002").invite(), "1002", NOON + 22) is None


def test_ringing_calls_count_as_in_progress() -> None:
    guard = make(LIMIT_4)
    for i in range(4):
        assert guard.check_invite(Call(f"r{i}").invite(), "1001", NOON) is None
    assert rule(guard.check_invite(Call("r4").invite(), "1001", NOON)) == (
        "reject fraud.per_account.concurrent_calls"
    )


@pytest.mark.parametrize(
    ("ending", "from_callee"),
    [("bye", False), ("bye", True), ("cancel", False), ("486", False), ("487", False)],
)
def test_every_way_a_call_ends(ending: str, from_callee: bool) -> None:
    guard = make(LIMIT_4)
    call = Call("c1")
    guard.check_invite(call.invite(), "1001", NOON)
    if ending == "bye":
        guard.observe(call.response(200), NOON + 1)
        guard.observe(call.bye(from_callee=from_callee), NOON + 30)
    elif ending == "cancel":
        guard.observe(call.cancel(), NOON + 5)
    else:
        guard.observe(call.response(int(ending)), NOON + 5)
    assert guard.calls_in_progress("1001") == 0


def test_cancel_after_the_answer_and_a_failed_reinvite_end_nothing() -> None:
    guard = make(LIMIT_4)
    call = Call("c1")
    guard.check_invite(call.invite(), "1001", NOON)
    guard.observe(call.response(200), NOON + 1)
    guard.observe(call.cancel(), NOON + 2)
    guard.observe(call.response(491, cseq=2), NOON + 3)  # a re-INVITE's failure
    assert guard.calls_in_progress("1001") == 1


def test_unanswered_and_endless_calls_time_out() -> None:
    guard = FraudGuard(spec(LIMIT_4), ring_timeout=120.0, max_call=3600.0)
    ringing, talking = Call("ring"), Call("talk")
    guard.check_invite(ringing.invite(), "1001", NOON)
    guard.check_invite(talking.invite(), "1001", NOON)
    guard.observe(talking.response(200), NOON + 5)
    guard.sweep(NOON + 119)
    assert guard.calls_in_progress("1001") == 2
    guard.sweep(NOON + 120)
    assert guard.calls_in_progress("1001") == 1
    guard.sweep(NOON + 5 + 3600)
    assert guard.calls_in_progress("1001") == 0


# ------------------------------------------------------------------- retransmissions, auth


def test_retransmissions_are_not_new_calls() -> None:
    guard = make("  home_country: NL\n  per_account: {calls_per_minute: 2, calls_per_hour: 10}\n")
    call = Call("c1")
    for i in range(5):  # UDP retransmissions of one INVITE
        assert guard.check_invite(call.invite(), "1001", NOON + i * 0.5) is None
    assert guard.calls_in_progress("1001") == 1
    assert guard.calls.in_window(guard.calls.account("1001", NOON), NOON + 3, hour=False) == 1


def test_a_refused_invite_is_refused_again_when_retransmitted() -> None:
    guard = make("  home_country: NL\n")
    call = Call("sat", to="tel:+881612345678")
    first = guard.check_invite(call.invite(), "1001", NOON)
    again = guard.check_invite(call.invite(), "1001", NOON + 0.5)
    assert first is not None
    assert again == first


def test_the_challenged_invite_does_not_count_twice() -> None:
    guard = make("  home_country: NL\n  per_account: {calls_per_minute: 2}\n")
    for i in range(2):
        call = Call(f"c{i}")
        assert guard.check_invite(call.invite(cseq=1), "1001", NOON + i) is None
        guard.observe(call.response(407, cseq=1), NOON + i + 0.01)  # digest challenge
        assert guard.check_invite(call.invite(cseq=2), "1001", NOON + i + 0.05) is None
        guard.observe(call.response(200, cseq=2), NOON + i + 1)
    assert guard.calls_in_progress("1001") == 2
    third = guard.check_invite(Call("c2").invite(), "1001", NOON + 5)
    assert rule(third) == "reject fraud.per_account.calls_per_minute"
    assert third is not None
    assert third.detail == "account '1001': 2 calls in the last minute, limit 2"


def test_an_invite_after_a_422_is_the_same_call() -> None:
    guard = make("  home_country: NL\n  per_account: {calls_per_minute: 1}\n")
    call = Call("c1")
    assert guard.check_invite(call.invite(cseq=1), "1001", NOON) is None
    guard.observe(call.response(422, cseq=1), NOON + 0.1)  # Session Interval Too Small
    assert guard.check_invite(call.invite(cseq=2), "1001", NOON + 0.2) is None  # not a 2nd call
    assert guard.calls_in_progress("1001") == 1


def test_reinvites_are_not_checked() -> None:
    guard = make("  home_country: NL\n  per_account: {concurrent_calls: 1}\n")
    call = Call("c1", to="tel:+881612345678")
    reinvite = call.invite(cseq=5, to_tag=True)
    assert guard.check_invite(reinvite, "1001", NOON) is None
    assert guard.calls_in_progress("1001") == 0


# ---------------------------------------------------------------------------- destinations

DENY = (
    "  home_country: NL\n  outside_line_prefix: '0'\n"
    "  destinations:\n"
    "    allow: [NL, BE, DE, GB]\n"
    "    deny_types: [premium_rate, shared_cost, satellite]\n"
)


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("tel:+881612345678", "reject fraud.destinations.deny_types"),
        ("sip:00906123456@pbx.example.net;user=phone", "reject fraud.destinations.deny_types"),
        ("sip:+448712345678@pbx.example.net;user=phone", "reject fraud.destinations.deny_types"),
        ("sip:000862012345678@pbx.example.net;user=phone", "reject fraud.destinations.allow"),
        ("sip:+447781123456@pbx.example.net;user=phone", "reject fraud.destinations.allow"),
        ("sip:+800123456789@pbx.example.net", "reject fraud.destinations.allow"),
        ("sip:00201234567@pbx.example.net;user=phone", "ok"),
        ("sip:0201234567@pbx.example.net", "ok"),
        ("sip:0003222222222@pbx.example.net", "ok"),
        ("sip:alice@pbx.example.net", "ok"),
        ("sip:0112@pbx.example.net", "ok"),
    ],
)
def test_destinations(to: str, expected: str) -> None:
    guard = make(DENY)
    assert rule(guard.check_invite(Call("c", to=to).invite(), "1001", NOON)) == expected


def test_a_destination_finding_says_what_was_called() -> None:
    found = make(DENY).check_invite(Call("c", to="tel:+881612345678").invite(), "1001", NOON)
    assert found == FraudFinding(
        KIND_DESTINATION,
        FraudAction.REJECT,
        Severity.ERROR,
        "fraud.destinations.deny_types",
        "call to +881612345678: non-geographic satellite is a denied number type",
        found.destination if found else None,
    )
    assert found is not None
    assert found.destination is not None
    assert found.destination.country is None


def test_alert_lets_the_call_through_and_tracks_it() -> None:
    guard = make(
        "  home_country: NL\n  destinations: {deny_types: [premium_rate], action: alert}\n"
    )
    call = Call("c", to="sip:0906123456@pbx.example.net")
    found = guard.check_invite(call.invite(), "1001", NOON)
    assert rule(found) == "alert fraud.destinations.deny_types"
    assert guard.calls_in_progress("1001") == 1


def test_calls_from_the_pbx_keep_their_leading_zero() -> None:
    guard = make(DENY)
    call = Call("t", to="sip:00448712345678@trunk.example.net")
    # From a phone, the outside line 0 comes off first: 0448712345678 is no valid NL number.
    assert rule(guard.check_invite(call.invite(), "1001", NOON)) == "ok"
    # From the PBX toward the trunk the number is already without it: 00 44 871 -> premium.
    found = guard.check_invite(Call("t2", to=call.to).invite(), "trunk", NOON, from_pbx=True)
    assert rule(found) == "reject fraud.destinations.deny_types"


def test_emergency_calls_are_never_refused() -> None:
    guard = make(
        "  home_country: NL\n  outside_line_prefix: '0'\n"
        "  destinations: {deny_types: [unknown, premium_rate]}\n"
        "  per_account: {concurrent_calls: 1}\n"
    )
    assert guard.check_invite(Call("a").invite(), "1001", NOON) is None
    assert (
        guard.check_invite(Call("e", to="sip:112@pbx.example.net").invite(), "1001", NOON) is None
    )
    assert guard.check_invite(Call("f", to="sip:0112@pbx").invite(), "1001", NOON + 1) is None
    assert guard.calls_in_progress("1001") == 3  # they are calls, and they are tracked


# --------------------------------------------------------------------- per-minute, per-hour


def test_calls_per_minute_and_per_hour_slide() -> None:
    guard = make("  home_country: NL\n  per_account: {calls_per_minute: 3, calls_per_hour: 5}\n")
    results = []
    times = [0, 10, 20, 30, 70, 80, 90, 3601, 3612]
    for i, t in enumerate(times):
        call = Call(f"c{i}")
        results.append(rule(guard.check_invite(call.invite(), "1001", NOON + t)))
        guard.observe(call.response(200), NOON + t + 1)
        guard.observe(call.bye(), NOON + t + 5)
    assert results == [
        "ok",
        "ok",
        "ok",
        "reject fraud.per_account.calls_per_minute",  # a 4th within a minute (not counted)
        "ok",  # t=70: only 20 is within the minute; 4 in the hour
        "ok",  # 5 in the hour
        "reject fraud.per_account.calls_per_hour",  # a 6th within the hour
        "ok",  # t=3601: the call at 0 left the hour
        "ok",
    ]


# ----------------------------------------------------------------------------- quiet hours

QUIET = (
    "  home_country: NL\n"
    "  quiet_hours:\n"
    "    {from: '22:00', to: '07:00', timezone: Europe/Amsterdam, international: reject}\n"
)


@pytest.mark.parametrize(
    ("local", "to", "expected"),
    [
        ("2025-01-15 23:30", "tel:+4930123456", "reject fraud.quiet_hours"),
        ("2025-01-16 03:00", "tel:+4930123456", "reject fraud.quiet_hours"),  # past midnight
        ("2025-01-15 22:00", "tel:+4930123456", "reject fraud.quiet_hours"),  # from: inclusive
        ("2025-01-16 07:00", "tel:+4930123456", "ok"),  # to: exclusive
        ("2025-01-15 21:59", "tel:+4930123456", "ok"),
        ("2025-01-15 12:00", "tel:+4930123456", "ok"),
        ("2025-01-15 23:30", "tel:+31201234567", "ok"),  # national calls are not checked
        ("2025-01-15 23:30", "sip:alice@pbx.example.net", "ok"),
        ("2025-07-15 22:30", "tel:+4930123456", "reject fraud.quiet_hours"),  # summer time
        ("2025-07-15 21:30", "tel:+4930123456", "ok"),  # 19:30 UTC: not quiet in Amsterdam
    ],
)
def test_quiet_hours_are_local_and_wrap_midnight(local: str, to: str, expected: str) -> None:
    guard = make(QUIET)
    found = guard.check_invite(Call("q", to=to).invite(), "1001", at(local))
    assert rule(found) == expected


def test_quiet_hours_detail_and_daytime_window() -> None:
    guard = make(
        "  home_country: NL\n  quiet_hours: {from: '12:00', to: '13:00', timezone: Asia/Tokyo}\n"
    )
    tokyo = datetime.datetime(2025, 1, 15, 12, 30, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
    found = guard.check_invite(Call("q", to="tel:+4930123456").invite(), "1001", tokyo.timestamp())
    assert found is not None
    assert (found.kind, found.action) == (KIND_QUIET_HOURS, FraudAction.ALERT)
    assert found.detail == (
        "international call to +4930123456 (DE fixed_line) at 12:30 Asia/Tokyo, "
        "in quiet hours 12:00-13:00"
    )
    assert guard.check_invite(Call("r", to="tel:+4930123456").invite(), "1001", NOON) is None


# ---------------------------------------------------------------------------------- spikes

SPIKES = "  home_country: NL\n  spikes: {interval: 5m, factor: 3, min_calls: 4, alpha: 0.5}\n"
BUCKET = 300.0
T0 = NOON - NOON % BUCKET


def test_a_spike_of_international_calls_alerts_once_with_an_injected_clock() -> None:
    guard = make(SPIKES)
    got = []
    for i in range(6):
        call = Call(f"s{i}", to="tel:+4930123456")
        got.append(rule(guard.check_invite(call.invite(), "1001", T0 + i)))
    # The 4th call is min_calls for both metrics; the alert is one finding (the first).
    assert got == ["ok", "ok", "ok", "alert fraud.spikes", "ok", "ok"]
    findings = guard.check_invite_all(Call("s9", to="tel:+4930123456").invite(), "1001", T0 + 9)
    assert findings == ()  # reported once per interval


def test_check_invite_all_reports_both_metrics() -> None:
    guard = make(SPIKES)
    for i in range(3):
        guard.check_invite(Call(f"s{i}", to="tel:+4930123456").invite(), "1001", T0 + i)
    found = guard.check_invite_all(Call("s3", to="tel:+4930123456").invite(), "1001", T0 + 3)
    assert [f.kind for f in found] == [KIND_SPIKE, KIND_SPIKE]
    assert found[0].detail == (
        "account '1001': 4 call attempts in this 5m (baseline 0.0, threshold 4.0)"
    )
    assert found[1].detail.startswith("account '1001': 4 international call attempts")


def test_a_learned_baseline_raises_the_threshold() -> None:
    guard = make(SPIKES)
    for bucket in range(6):  # a busy account: 3 calls every 5 minutes
        for i in range(3):
            call = Call(f"b{bucket}-{i}")
            assert guard.check_invite(call.invite(), "1001", T0 + bucket * BUCKET + i) is None
            guard.observe(call.response(200), T0 + bucket * BUCKET + i + 1)
            guard.observe(call.bye(), T0 + bucket * BUCKET + i + 60)
    meter = guard.spikes
    assert meter is not None
    base = meter.baseline("1001")
    assert base is not None
    assert base.avg == pytest.approx(3 * (1 - 0.5**5), rel=1e-6)  # 5 completed buckets of 3
    # threshold max(4, 3 * 2.9) = 8.7: the 9th call of the next bucket is the spike
    start = T0 + 6 * BUCKET
    got = [rule(guard.check_invite(Call(f"n{i}").invite(), "1001", start + i)) for i in range(9)]
    assert got == ["ok"] * 8 + ["alert fraud.spikes"]


def test_spike_reject_refuses_calls_over_the_threshold() -> None:
    guard = make("  home_country: NL\n  spikes: {min_calls: 3, action: reject}\n")
    got = [rule(guard.check_invite(Call(f"x{i}").invite(), "1001", T0 + i)) for i in range(5)]
    assert got == ["ok", "ok", "reject fraud.spikes", "reject fraud.spikes", "reject fraud.spikes"]
    assert guard.calls_in_progress("1001") == 2


# ------------------------------------------------------------------- decisions and reloads


def test_decisive_prefers_a_reject() -> None:
    alert = FraudFinding(KIND_QUIET_HOURS, FraudAction.ALERT, Severity.WARNING, "a", "", None)
    reject = FraudFinding(KIND_LIMIT, FraudAction.REJECT, Severity.WARNING, "b", "", None)
    assert decisive(()) is None
    assert decisive((alert,)) is alert
    assert decisive((alert, reject)) is reject


def test_an_alert_and_a_reject_together() -> None:
    guard = make(
        "  home_country: NL\n  per_account: {concurrent_calls: 1}\n"
        "  quiet_hours: {from: '22:00', to: '07:00', timezone: Europe/Amsterdam}\n"
    )
    night = at("2025-01-15 23:00")
    assert rule(guard.check_invite(Call("a", to="tel:+4930123456").invite(), "1", night)) == (
        "alert fraud.quiet_hours"
    )
    found = guard.check_invite_all(Call("b", to="tel:+4930123456").invite(), "1", night)
    assert [f.rule for f in found] == ["fraud.per_account.concurrent_calls", "fraud.quiet_hours"]
    assert rule(decisive(found)) == "reject fraud.per_account.concurrent_calls"


def spikes_on(guard: FraudGuard) -> bool:
    return guard.spikes is not None


def test_swap_keeps_calls_in_progress_and_applies_new_limits() -> None:
    guard = make("  home_country: NL\n  per_account: {concurrent_calls: 4}\n  spikes: {}\n")
    for i in range(3):
        guard.check_invite(Call(f"c{i}").invite(), "1001", NOON)
    guard.swap(spec("  home_country: NL\n  per_account: {concurrent_calls: 2}\n"))
    assert guard.calls_in_progress("1001") == 3
    assert not spikes_on(guard)
    assert rule(guard.check_invite(Call("c9").invite(), "1001", NOON + 1)) == (
        "reject fraud.per_account.concurrent_calls"
    )
    guard.swap(spec("  home_country: NL\n  spikes: {interval: 10m}\n"))
    assert spikes_on(guard)
    assert guard.check_invite(Call("c10").invite(), "1001", NOON + 2) is None


def test_attacker_supplied_account_names_are_cut_and_escaped() -> None:
    guard = make("  home_country: NL\n  per_account: {concurrent_calls: 1}\n")
    name = "x\r\nInjected: yes" + "y" * 100
    guard.check_invite(Call("a").invite(), name, NOON)
    found = guard.check_invite(Call("b").invite(), name, NOON)
    assert found is not None
    assert "\r" not in found.detail
    assert "\n" not in found.detail
    assert len(found.detail) < 120


def test_a_flood_of_fake_call_ids_stays_bounded() -> None:
    guard = FraudGuard(spec("  home_country: NL\n"), max_calls=500, max_accounts=50)
    for i in range(5000):
        call = Call(f"flood{i}", account=f"acc{i % 200}")
        guard.check_invite(call.invite(), call.account, NOON + i * 0.001)
    assert guard.tracked_calls == 500
    assert guard.tracked_accounts == 50
    assert guard.calls.evicted == 4500


def test_only_invites_are_checked_and_garbage_is_ignored() -> None:
    guard = make(DENY)
    bye = Call("c", to="tel:+881612345678").bye()
    assert guard.check_invite(bye, "1001", NOON) is None
    data = Call("c", to="tel:+881612345678").invite_bytes()
    broken = parse_message(
        data.replace(b"From: <sip:1001@pbx.example.net>", b"From: <sip:1001@pbx.example.net"),
        datagram=True,
        strict=False,
    )
    assert isinstance(broken, SipRequest)
    assert guard.check_invite(broken, "1001", NOON) is None  # no From tag to track it by
    guard.observe(broken, NOON)  # changes nothing, raises nothing
    assert guard.tracked_calls == 0
