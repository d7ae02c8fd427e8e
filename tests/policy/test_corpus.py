"""The broken-policy corpus: each `broken/*.yaml` starts with `# expect: LINE:COL: MESSAGE` lines,
exactly the issues the loader must report (all of them, in order), no more and no fewer."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipguard.policy import PolicyError, load_policy_file

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))
PREFIX = "# expect: "


def expected_issues(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line[len(PREFIX) :] for line in lines if line.startswith(PREFIX)]


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_policy_reports_exactly_the_expected_issues(path: Path) -> None:
    expected = expected_issues(path)
    assert expected, f"{path.name} has no '{PREFIX}' lines"
    with pytest.raises(PolicyError) as info:
        load_policy_file(path)
    got = [f"{i.location.line}:{i.location.column}: {i.message}" for i in info.value.issues]
    assert got == expected
    assert str(info.value).splitlines() == [f"{path}:{line}" for line in expected]


def test_corpus_is_large_and_proves_all_at_once() -> None:
    assert len(BROKEN) >= 25
    several = [p.name for p in BROKEN if len(expected_issues(p)) >= 3]
    assert len(several) >= 10, several
