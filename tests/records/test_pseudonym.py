"""Phone numbers in stored records become keyed pseudonyms: properties over generated text."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from sipguard.engine.effects import BanIssued, LoginSeen, SecurityEvent
from sipguard.engine.pseudonym import ELLIPSIS, Pseudonymiser, country_calling_code
from sipguard.policy.model import Severity

KEY = bytes(range(32))
P = Pseudonymiser(KEY)

# text with no run of 7+ digits and no `+`/`00` number: letters, punctuation, short digit runs
_WORDS = st.text(alphabet=st.characters(blacklist_categories=("Nd", "Cs")), max_size=30)
_SHORT = st.integers(0, 999_999).map(str)
plain_text = st.lists(st.one_of(_WORDS, _SHORT), max_size=8).map(" ".join)
# subscriber parts long enough that they cannot hide among the few digits a pseudonym shows
subscriber = st.text(alphabet="0123456789", min_size=7, max_size=12)
codes = st.sampled_from(["1", "31", "44", "49", "881", "882", "870", "358", "7"])


@st.composite
def numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(the number as written, its subscriber digits)."""
    rest = draw(subscriber)
    form = draw(st.sampled_from(["plus", "intl", "national", "bare"]))
    if form == "plus":
        return "+" + draw(codes) + rest, rest
    if form == "intl":
        return "00" + draw(codes) + rest, rest
    if form == "national":
        return "0" + rest, rest
    return draw(st.sampled_from(["1", "2", "3", "6", "9"])) + rest, rest


@given(plain_text, numbers(), plain_text)
def test_a_number_never_survives(before: str, number: tuple[str, str], after: str) -> None:
    written, rest = number
    out = P.text(f"{before} {written} {after}")
    assert written not in out
    assert rest not in out
    assert ELLIPSIS + "#" in out


@given(plain_text)
def test_text_without_numbers_is_left_exactly_as_it_was(text: str) -> None:
    assert P.text(text) == text


@given(numbers(), plain_text)
def test_the_same_number_gets_the_same_pseudonym(number: tuple[str, str], noise: str) -> None:
    written, _ = number
    first = P.text(f"call to {written}")
    assert P.text(f"{noise} {written}").endswith(first.removeprefix("call to "))
    assert Pseudonymiser(KEY).text(f"call to {written}") == first  # across runs: the key decides
    assert Pseudonymiser(bytes(32)).text(f"call to {written}") != first  # another key: unlinkable


@given(plain_text, numbers(), plain_text)
def test_pseudonymising_twice_changes_nothing(a: str, number: tuple[str, str], b: str) -> None:
    once = P.text(f"{a} {number[0]} {b}")
    assert P.text(once) == once


def test_the_country_calling_code_stays_visible() -> None:
    out = P.text("call to +881631234567: satellite (Iridium) is a denied number type")
    assert re.fullmatch(rf"call to \+881{ELLIPSIS}#[0-9a-f]{{8}}: satellite .*", out)
    assert P.text("+31612345678") == "+31" + P.text("0031612345678").removeprefix("0031")
    assert P.text("0612345678").startswith("0" + ELLIPSIS)
    assert country_calling_code("4930123456") == "49"
    assert country_calling_code("1212555") == "1"
    assert country_calling_code("2812345") == ""  # +28 is not assigned


def test_extensions_counts_addresses_and_ban_times_stay() -> None:
    for text in (
        "account '101'",
        "5 failures for '2001' within 600s",
        "from 203.0.113.66:5060 at 23:15 Europe/Amsterdam",
        "brute_force: banned until 1712345678 (3 offences): 5 failed logins",
    ):
        assert P.text(text) == text


def test_events_and_ban_evidence_are_pseudonymised_and_logins_are_not() -> None:
    event = SecurityEvent(
        1.0,
        "fraud_destination",
        Severity.ERROR,
        "203.0.113.66",
        5060,
        "NL",
        "0201234567",
        "INVITE",
        "fraud.destinations.deny_types",
        "call to +881631234567: satellite",
    )
    ban = BanIssued("203.0.113.66", 1.0, 2.0, "brute_force", "auth", "account '0201234567'")
    login = LoginSeen("0201234567", "NL", 10, 1.0)
    stored, stored_ban, stored_login = P.effects([event, ban, login])
    assert isinstance(stored, SecurityEvent) and isinstance(stored_ban, BanIssued)
    assert stored.account is not None and "0201234567" not in stored.account
    assert "631234567" not in stored.detail and stored.detail.startswith("call to +881")
    assert stored.ip == event.ip and stored.rule == event.rule  # the rest is as it was
    assert "0201234567" not in stored_ban.evidence
    assert stored.account in stored_ban.evidence  # one number, one pseudonym everywhere
    assert stored_login is login  # the unusual-login check reads account names back


def test_sipguards_own_events_keep_their_hashes() -> None:
    reload = SecurityEvent(
        1.0, "policy_reload", Severity.INFO, rule="start", detail="sha256 1234567890ab"
    )
    assert P.event(reload) is reload
