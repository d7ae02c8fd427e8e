"""The issue's check with real peers: the drill against sipguard (in-process, the default policy
with a country rule, a geo override and quiet hours that cover now) in front of Kamailio with a
test account. Every attack is stopped; against a weakened policy (no User-Agent rule, brute-force
detection off) `sipguard drill` exits 1 and its report fails exactly those two attacks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipguard.cli import main
from sipguard.drill import DrillReport, run_drill
from sipguard.policy import load_policy_text
from sipguard.store import Store
from tests.drill.policies import COUNTRY_SOURCE, TEST_ACCOUNT, drill_policy
from tests.peers.kamailio import EXTENSIONS, KamailioProcess, start_kamailio
from tests.proxy.guard import GuardHandle, running_guard

pytestmark = [pytest.mark.peers, pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def pbx(tmp_path: Path, kamailio_bin: str) -> Iterator[KamailioProcess]:
    """Kamailio that answers 404 for unknown users (so enumeration shows), with a test account."""
    proc = start_kamailio(
        tmp_path,
        tcp=False,
        extra_users={**EXTENSIONS, TEST_ACCOUNT[0]: TEST_ACCOUNT[1]},
        reveal_unknown_users=True,
        binary=kamailio_bin,
    )
    try:
        yield proc
    finally:
        proc.stop()


def _drill(text: str, tmp_path: Path, guard: GuardHandle) -> DrillReport:
    policy = load_policy_text(text, str(tmp_path / "policy.yaml"))
    host, port = guard.outside("udp")
    lines: list[str] = []
    report = asyncio.run(
        run_drill(policy, target=f"{host}:{port}", progress=lines.append, account=TEST_ACCOUNT[0])
    )
    print("\n".join(lines))
    print(report.table())
    return report


def _stored(tmp_path: Path) -> list[dict[str, object]]:
    async def read() -> str:
        async with await Store.open(str(tmp_path / "sipguard.db")) as store:
            return (await store.drills(0.0))[-1].results

    rows: list[dict[str, object]] = json.loads(asyncio.run(read()))
    return rows


def test_the_drill_passes_against_the_default_policy(tmp_path: Path, pbx: KamailioProcess) -> None:
    text = drill_policy(f"udp://{pbx.host}:{pbx.port}")
    with running_guard(text, tmp_path) as guard:
        report = _drill(text, tmp_path, guard)
        assert not guard.info.engine.active_bans(report.finished_at), "the drill left bans"
    failed = [(r.attack, r.observed, r.note) for r in report.results if r.status != "passed"]
    assert not failed, report.table()
    assert report.ok and report.failed == 0
    by_attack = {r.attack: r for r in report.results}
    assert by_attack["denied-country"].source == COUNTRY_SOURCE
    assert by_attack["scanner-ua"].rule == "sip-scanners"
    assert by_attack["brute-force"].rule == "auth"
    assert by_attack["night-call"].alerted
    assert all(r.packets <= 500 for r in report.results)
    rows = _stored(tmp_path)
    assert {row["attack"] for row in rows if row["kind"] == "attack"} == set(by_attack)
    assert all(row["passed"] for row in rows)


def test_a_weakened_policy_fails_exactly_the_weakened_attacks(
    tmp_path: Path, pbx: KamailioProcess
) -> None:
    """Through the command line, as an admin runs it: exit 1, and the JSON report names exactly
    the attacks the weakened policy lets through."""
    text = drill_policy(f"udp://{pbx.host}:{pbx.port}", weakened=True)
    saved = tmp_path / "drill.json"
    with running_guard(text, tmp_path) as guard:
        host, port = guard.outside("udp")
        code = main(
            [
                "drill",
                "-c",
                str(tmp_path / "policy.yaml"),
                "--target",
                f"{host}:{port}",
                "--account",
                TEST_ACCOUNT[0],
                "--report",
                str(saved),
            ]
        )
    assert code == 1
    report = json.loads(saved.read_text(encoding="utf-8"))
    results = [r for r in report["results"] if r.get("kind", "attack") == "attack"]
    failed = {r["attack"] for r in results if r["status"] == "failed"}
    assert failed == {"scanner-ua", "brute-force"}, results
    assert all(r["status"] == "passed" for r in results if r["attack"] not in failed)
    notes = {r["attack"]: r["note"] for r in results}
    assert "user_agent" in notes["scanner-ua"]
    assert "auth.failures" in notes["brute-force"]
