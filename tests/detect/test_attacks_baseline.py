"""The attacks work: SIPVicious straight against the test PBX, with no sipguard in the path.

These stay in the suite for good: when they fail, the guarded tests (test_attacks_guarded.py)
prove nothing, since an attack that never works is always "stopped". Kamailio runs in the mode
that tells unknown users (404) from real ones (401), with three numeric extensions 101-103; the
attacker comes from its own loopback address (127.0.0.7) and Kamailio's log proves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.detect import ATTACKER_IP, start_attack_pbx
from tests.peers.kamailio import EXTENSIONS, SERVER_NAME, KamailioProcess
from tests.peers.sipvicious import (
    DEFAULT_USER_AGENT,
    EXIT_FOUND,
    EXIT_NOTHING,
    FILLER_WORDS,
    Attacker,
    Device,
    Method,
    SipviciousError,
    dictionary_with,
    parse_table,
    svcrack,
    svmap,
    svwar,
)

# A run that succeeds must be quick: the whole test stays well under 30 s.
QUICK_S = 20.0


@pytest.fixture
def pbx(tmp_path: Path, kamailio_bin: str) -> Iterator[KamailioProcess]:
    proc = start_attack_pbx(tmp_path, kamailio_bin)
    try:
        yield proc
    finally:
        proc.stop()


def _from_attacker(pbx: KamailioProcess, marker: str) -> list[str]:
    return [line for line in pbx.log_lines(marker) if f" from {ATTACKER_IP}:" in line]


@pytest.mark.peers
@pytest.mark.timeout(60)
def test_svcrack_finds_the_29th_password(tmp_path: Path, pbx: KamailioProcess) -> None:
    user, password = "101", EXTENSIONS["101"]
    words = dictionary_with(tmp_path / "passwords.txt", password)
    assert words.read_text().splitlines().index(password) == 28
    result = svcrack(tmp_path, pbx.address, username=user, dictionary=words)
    assert result.password == password, result.describe()
    assert result.run.returncode == EXIT_FOUND, result.describe()
    assert result.run.elapsed_s < QUICK_S, result.describe()
    # 28 wrong guesses, then the right one, all REGISTERs from the attacker's own address
    assert len(_from_attacker(pbx, f"AUTH-FAIL rc=-2 user '{user}'")) == 28, pbx.log_text()[-3000:]
    assert len(_from_attacker(pbx, f"AUTH-OK user '{user}' REGISTER")) == 1
    assert all(f"ua='{DEFAULT_USER_AGENT}'" in line for line in _from_attacker(pbx, "REQ REGISTER"))


@pytest.mark.peers
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("method", "verdict"),
    [("REGISTER", "reqauth"), ("OPTIONS", "noauth"), ("INVITE", "weird")],
)
def test_svwar_finds_exactly_the_three_extensions(
    tmp_path: Path, pbx: KamailioProcess, method: Method, verdict: str
) -> None:
    """REGISTER: real users are challenged (401), unknown ones get 404. OPTIONS: 200 / 404.
    INVITE: a real user that is not registered gets 480, an unknown one 404."""
    result = svwar(tmp_path, pbx.address, extensions="100-130", method=method)
    assert result.found == frozenset(EXTENSIONS), result.describe()
    assert set(result.extensions.values()) == {verdict}, result.describe()
    assert result.run.returncode == EXIT_FOUND, result.describe()
    assert result.run.elapsed_s < QUICK_S, result.describe()
    # the 28 unknown extensions and svwar's first probe (a random number) were answered 404
    assert len(_from_attacker(pbx, "UNKNOWN-USER")) == 29, pbx.log_text()[-3000:]


@pytest.mark.peers
@pytest.mark.timeout(60)
def test_svwar_dictionary(tmp_path: Path, pbx: KamailioProcess) -> None:
    words = ["admin", "100", "101", "operator", "103", "reception", "999"]
    result = svwar(tmp_path, pbx.address, dictionary=words)
    assert result.found == frozenset({"101", "103"}), result.describe()


@pytest.mark.peers
@pytest.mark.timeout(60)
def test_svmap_reports_kamailio(tmp_path: Path, pbx: KamailioProcess) -> None:
    result = svmap(tmp_path, pbx.address)
    expected = Device(f"{pbx.host}:{pbx.port}", SERVER_NAME)
    assert result.devices == (expected,), result.describe()
    assert result.run.returncode == EXIT_NOTHING, result.describe()  # 0: every probe answered
    assert result.run.elapsed_s < QUICK_S, result.describe()
    assert _from_attacker(pbx, "UNKNOWN-USER '100' OPTIONS"), pbx.log_text()[-3000:]


@pytest.mark.peers
@pytest.mark.timeout(60)
def test_forged_user_agent_and_compact_mode(tmp_path: Path, pbx: KamailioProcess) -> None:
    """The wrapper's User-Agent knob reaches the wire; compact mode sends none at all."""
    forged = Attacker(user_agent="Yealink SIP-T46S 66.86.0.15")
    result = svmap(tmp_path, pbx.address, extension="102", attacker=forged)
    assert result.devices == (Device(f"{pbx.host}:{pbx.port}", SERVER_NAME),), result.describe()
    assert _from_attacker(pbx, "ua='Yealink SIP-T46S 66.86.0.15'")
    compact = svwar(tmp_path, pbx.address, extensions="100-104", attacker=Attacker(compact=True))
    assert compact.found == frozenset(EXTENSIONS), compact.describe()
    assert compact.run.source[0] == ATTACKER_IP
    requests = _from_attacker(pbx, "REQ REGISTER")
    assert requests, pbx.log_text()[-3000:]
    assert all("ua='<null>'" in line for line in requests)  # no User-Agent header at all


# --- the wrapper alone (no peer) -------------------------------------------------------------


def test_dictionary_puts_the_password_29th(tmp_path: Path) -> None:
    path = dictionary_with(tmp_path / "d.txt", "s3cret")
    words = path.read_text().splitlines()
    assert len(words) == 30
    assert words[28] == "s3cret"
    assert len(set(words)) == 30
    assert set(words) - {"s3cret"} <= set(FILLER_WORDS)


def test_parse_table() -> None:
    text = (
        "+-----------+----------------+\n"
        "| Extension | Authentication |\n"
        "+===========+================+\n"
        "| 101       | reqauth        |\n"
        "+-----------+----------------+\n"
        "| 102       | weird          |\n"
        "+-----------+----------------+\n"
    )
    assert parse_table(text) == [("101", "reqauth"), ("102", "weird")]
    assert parse_table("") == []


def test_attacker_is_loopback_and_bounded() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Attacker(bind_ip="192.0.2.7")
    for option in ("-A", "--autogetip", "--randomscan", "--srv", "-s", "--save=x"):
        with pytest.raises(SipviciousError):
            Attacker(extra_args=(option,))
    with pytest.raises(ValueError, match="bounded"):
        Attacker(maximum_time_s=0)
    with pytest.raises(ValueError, match="loopback"):
        svmap(Path("/nonexistent"), ("198.51.100.1", 5060))
