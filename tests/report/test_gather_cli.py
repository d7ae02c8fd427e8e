"""`build_report` on a real store file, and `sipguard report` on the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from sipguard.cli import main
from sipguard.report import build_report, render
from sipguard.store import StoreError
from tests.report import samples
from tests.report.samples import BASE, HOUR, SINCE, UNTIL, fill, policy_for


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    asyncio.run(fill(tmp_path / "sipguard.db"))
    policy_for(tmp_path)
    return tmp_path / "policy.yaml"


def test_build_report_reads_every_part_of_the_store(tmp_path: Path, policy_file: Path) -> None:
    policy = policy_for(tmp_path)
    r = asyncio.run(build_report(policy, SINCE, UNTIL, now=UNTIL + 60))
    assert r.generated_at == UNTIL + 60 and r.policy_sha256 == policy.source_sha256
    assert r.store_path == str(tmp_path / "sipguard.db")
    assert (r.traffic.messages, r.traffic.dropped, r.events_total) == (1200, 750, 12)
    assert (r.bans.issued, r.bans.lifted, r.bans.manual_issued) == (4, 2, 1)
    assert [(x.actor, x.outcome, x.summary) for x in r.reloads.items] == [
        ("SIGHUP", "ok", samples.HOSTILE_SUMMARY),
        ("file-change", "failed", "policy.yaml:3:1: unknown key"),
    ]
    runs = r.drills.items
    assert [d.id for d in runs] == [2, 1]  # newest first
    assert runs[0].note == "the drill's results are not JSON"
    assert [(x.attack, x.passed) for x in runs[1].results.items][:2] == [
        ("register-flood", True),
        ("svcrack", False),
    ]
    assert r.geo.error is None and r.geo.age_days is not None  # the built-in data
    later = asyncio.run(build_report(policy, BASE + 10 * HOUR, UNTIL, now=UNTIL))
    assert later.reloads.total == 2 and later.bans.issued == 0 and later.traffic.messages == 0


def test_a_missing_store_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    policy = policy_for(tmp_path)
    with pytest.raises(StoreError, match="no store here"):
        asyncio.run(build_report(policy, SINCE, UNTIL))
    assert not (tmp_path / "sipguard.db").exists()
    with pytest.raises(ValueError, match="empty"):
        asyncio.run(build_report(policy, UNTIL, SINCE))


def test_cli_writes_each_format(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    period = ["--from", "2026-11-01", "--to", "2026-11-01"]  # the whole day
    assert main(["report", "-c", str(policy_file), *period]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# sipguard report: 2026-11-01 00:00:00Z to 2026-11-02 00:00:00Z")
    out = policy_file.parent / "week.json"
    assert (
        main(["report", "-c", str(policy_file), *period, "--format", "json", "-o", str(out)]) == 0
    )
    assert capsys.readouterr().out == ""
    data = json.loads(out.read_text())
    assert data["traffic"]["messages"] == 1200 and data["since"] == SINCE
    html_out = policy_file.parent / "r.html"
    args = ["report", "-c", str(policy_file), *period, "--format", "html", "-o", str(html_out)]
    assert main(args) == 0
    assert html_out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", "-c", str(policy_file), "--since", "30d"]) == 0  # now: empty, still ok


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "7d", "--from", "2026-11-01"], "do not mix"),
        (["--from", "01/11/2026"], "not a date"),
        (["--since", "seven days"], "--since"),
        (["--to", "2026-11-01"], "--to needs --from"),
    ],
)
def test_cli_refuses_bad_periods_in_one_line_with_exit_2(
    policy_file: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["report", "-c", str(policy_file), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("sipguard report: ")


def test_cli_store_trouble_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy_for(tmp_path)
    assert main(["report", "-c", str(tmp_path / "policy.yaml")]) == 1
    assert "no store here" in capsys.readouterr().err
    (tmp_path / "sipguard.db").write_bytes(b"not a database, just bytes" * 100)
    assert main(["report", "-c", str(tmp_path / "policy.yaml")]) == 1
    assert capsys.readouterr().err.startswith("sipguard report: ")


def test_cli_bad_format_and_unwritable_output(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "-c", str(policy_file), "--format", "pdf"])
    assert exit_info.value.code == 2
    capsys.readouterr()
    target = policy_file.parent / "no" / "such" / "dir" / "r.md"
    assert main(["report", "-c", str(policy_file), "-o", str(target)]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_cli_help_names_the_formats_and_the_period(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    for word in ("--since", "--from", "--to", "{md,json,html}", "-o FILE", "ISO 8601"):
        assert word in text


def test_render_rejects_an_unknown_format(tmp_path: Path, policy_file: Path) -> None:
    r = asyncio.run(build_report(policy_for(tmp_path), SINCE, UNTIL))
    with pytest.raises(ValueError, match="unknown report format"):
        render(r, "pdf")  # type: ignore[arg-type]
