"""The detectors as pure state machines, clocked by hand."""

from __future__ import annotations

from sipguard.engine.detectors.base import Verdict
from sipguard.engine.detectors.bruteforce import BruteForce, BruteForceSpec
from sipguard.engine.detectors.enumeration import Enumeration, EnumerationSpec
from sipguard.engine.detectors.logins import Logins, LoginSpec

OFFICE, ATTACKER = "198.51.100.7", "203.0.113.66"


def test_an_unknown_source_is_banned_after_n_failures_within_the_window() -> None:
    bf = BruteForce(BruteForceSpec(failures=3, within=60.0))
    assert bf.failure(ATTACKER, "100", 0.0) == []
    assert bf.failure(ATTACKER, "100", 100.0) == []  # the first one has left the window
    assert bf.failure(ATTACKER, "100", 110.0) == []
    (finding,) = bf.failure(ATTACKER, "101", 120.0)
    assert (finding.kind, finding.verdict, finding.rule) == (
        "brute_force",
        Verdict.BAN_SOURCE,
        "auth",
    )


def test_a_success_resets_the_count_of_that_account() -> None:
    bf = BruteForce(BruteForceSpec(failures=3))
    bf.failure(OFFICE, "100", 0.0)
    bf.failure(OFFICE, "100", 1.0)
    bf.success(OFFICE, "100", 2.0)
    assert bf.failure(OFFICE, "100", 3.0) == []
    assert bf.failure(OFFICE, "100", 4.0) == []


def test_one_bad_phone_behind_a_known_office_address_blocks_only_its_account() -> None:
    bf = BruteForce(BruteForceSpec(failures=5, distinct_accounts=3))
    for n in range(50):
        bf.success(OFFICE, f"{200 + n}", 0.0)  # the office's healthy phones log in
    findings = [f for t in range(7) for f in bf.failure(OFFICE, "666", 10.0 + t)]
    assert [f.verdict for f in findings] == [Verdict.BLOCK_ACCOUNT]
    assert findings[0].account == "666"
    assert bf.refuses(OFFICE, "666", 20.0)
    assert not bf.refuses(OFFICE, "200", 20.0)
    assert not bf.refuses(OFFICE, "666", 20.0 + 3600.0)  # the block ends


def test_password_spraying_from_a_known_address_still_bans_it() -> None:
    bf = BruteForce(BruteForceSpec(failures=5, distinct_accounts=3))
    bf.success(OFFICE, "200", 0.0)
    verdicts = [f.verdict for n in range(6) for f in bf.failure(OFFICE, f"30{n}", 1.0 + n)]
    assert Verdict.BAN_SOURCE in verdicts


def test_distributed_attack_on_one_account_alerts_once_per_window_and_can_lock_it() -> None:
    bf = BruteForce(BruteForceSpec(failures=100, account_failures=10, account_block=True))
    bf.success(OFFICE, "100", 0.0)
    found = [f for n in range(30) for f in bf.failure(f"203.0.113.{n}", "100", 1.0 + n)]
    assert [f.kind for f in found] == ["distributed_brute_force"]
    assert bf.refuses("203.0.113.99", "100", 40.0)  # a stranger may not try account 100 now
    assert not bf.refuses(OFFICE, "100", 40.0)  # its own phone still may


def test_enumeration_bans_after_distinct_unknown_users_within_the_window() -> None:
    en = Enumeration(EnumerationSpec(distinct_users=5, within=60.0))
    assert all(en.not_found(ATTACKER, "100", float(t)) is None for t in range(20))  # same user
    results = [en.not_found(ATTACKER, f"{110 + n}", 30.0 + n) for n in range(5)]
    assert results[:3] == [None, None, None]
    assert results[3] is not None and results[3].verdict is Verdict.BAN_SOURCE  # 100 + 4 new
    slow = [en.not_found("203.0.113.7", f"{n}", n * 100.0) for n in range(10)]
    assert slow == [None] * 10  # one probe every 100 s never fills a 60 s window


def test_unusual_logins_alert_after_learning_and_remember_what_they_saw() -> None:
    logins = Logins(LoginSpec(learn=3, timezone="Europe/Amsterdam"))
    noon = 1_700_000_000.0 - (1_700_000_000 % 86400) + 11 * 3600  # 12:00 in Amsterdam (CET)
    records = [logins.success("100", "NL", noon + n * 60) for n in range(3)]
    assert all(finding is None for finding, _ in records)
    assert records[0][1] is not None and records[0][1].hour == 12
    finding, record = logins.success("100", "RU", noon + 600)
    assert finding is not None and "from RU" in finding.detail
    assert record is not None and record.country == "RU"
    finding, _ = logins.success("100", "NL", noon + 12 * 3600)  # midnight: never used before
    assert finding is not None and "00h" in finding.detail
    restarted = Logins(LoginSpec(learn=3, timezone="Europe/Amsterdam"))
    restarted.load([r for _, r in records if r is not None])
    assert restarted.success("100", "NL", noon + 60)[0] is None
