"""Drill results: per attack and per deployment check, the verdict (`judge`, pure), and the
report in three forms: a terminal table, JSON (also what the store keeps), Markdown."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sipguard.drill.catalogue import by_id
from sipguard.drill.expect import BLOCKING, Expectation, Outcome
from sipguard.engine.engine import REPLY_BUDGET
from sipguard.policy.model import Severity
from sipguard.store import EventRecord

__all__ = ["AttackResult", "Check", "DrillReport", "Facts", "Status", "judge"]

Status = Literal["passed", "failed", "skipped"]
CheckStatus = Literal["ok", "warn", "fail"]
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class AttackResult:
    attack: str  # catalogue id
    title: str
    source: str  # the attacker's 127.0.0.x
    expected: str
    observed: str
    status: Status
    rule: str | None  # what stopped it, as sipguard named it
    seconds_to_block: float | None
    alerted: bool  # an event at or above the alert threshold for this source
    alert_expected: bool
    section: str  # the policy section that should stop it
    packets: int  # datagrams sent
    detail: str = ""  # counters, answers
    note: str = ""  # what to change in the policy (when it falls short), or why skipped
    kind: str = "attack"

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: CheckStatus
    detail: str

    def to_json(self) -> dict[str, Any]:
        # the same keys as an attack, so a reader of `results` can show both as rows
        return {
            "kind": "check",
            "attack": f"check:{self.name}",
            "title": self.name,
            "expected": "ok",
            "observed": self.detail,
            "status": {"ok": "passed", "warn": "passed", "fail": "failed"}[self.status],
            "check_status": self.status,
            "passed": self.status != "fail",
            "rule": None,
            "seconds_to_block": None,
            "alerted": False,
            "source": "",
            "detail": self.detail,
        }


@dataclass(slots=True)
class Facts:
    """What the drill saw of one attack, from all sides."""

    raw_statuses: list[int]
    sent: int
    started: float
    rejected_at: float | None
    ban: dict[str, Any] | None  # the control socket's ban of the source
    by_rule: int  # drops/rejects the daemon counted for the expected rule during the attack
    malformed: int  # messages counted malformed during the attack
    malformed_forwarded: int
    events: list[EventRecord] = field(default_factory=list)  # of this source since the start
    skip: str = ""
    detail: str = ""


def judge(exp: Expectation, facts: Facts, threshold: Severity) -> AttackResult:
    """Pass or fail: stopped the way a deployment should stop it (and alerted where the policy
    raises an alert). Pure."""
    spec = by_id(exp.attack)
    alerted = any(e.severity.level >= threshold.level for e in facts.events)

    def result(**fields: Any) -> AttackResult:
        return AttackResult(
            attack=exp.attack,
            title=spec.title,
            source=exp.source,
            alert_expected=exp.alert,
            section=exp.section,
            packets=facts.sent,
            **fields,
        )

    skip = exp.skip or facts.skip
    if skip:
        return result(
            expected=exp.expected,
            observed="not run" if not facts.sent else "not testable",
            status="skipped",
            rule=None,
            seconds_to_block=None,
            alerted=alerted,
            note=skip,
            detail=facts.detail,
        )
    answers = _answers(facts.raw_statuses)
    rule, when, observed, stopped = _stopped(exp, facts)
    seconds = None if when is None else max(0.0, round(when - facts.started, 3))
    problems = []
    if exp.outcome in BLOCKING and not stopped:
        problems.append("not blocked")
    if exp.outcome is Outcome.ALERT and not alerted:
        problems.append("no alert")
    elif exp.alert and stopped and not alerted:
        problems.append("no alert raised")
    detail = "; ".join(x for x in (f"{facts.sent} sent, answers: {answers}", facts.detail) if x)
    note = exp.note
    if problems and not note:
        note = f"see {exp.section} in the policy"
    return result(
        expected=exp.expected,
        observed=observed + (" (" + ", ".join(problems) + ")" if problems else ""),
        status="failed" if problems else "passed",
        rule=rule,
        seconds_to_block=seconds,
        alerted=alerted,
        note=note if problems else "",
        detail=detail,
    )


def _stopped(exp: Expectation, facts: Facts) -> tuple[str | None, float | None, str, bool]:
    """(rule that acted, when, what was observed, stopped?)"""
    ban = facts.ban
    if ban is not None and ban.get("actor") == "engine":
        rule = str(ban.get("rule") or ban.get("reason") or "")
        return rule, float(ban["issued_at"]), f"banned by {rule} ({ban.get('reason')})", True
    if exp.outcome is Outcome.REFUSE:
        budget = REPLY_BUDGET.burst
        answered = len(facts.raw_statuses)
        ok = facts.malformed >= facts.sent and facts.malformed_forwarded == 0 and answered <= budget
        text = (
            f"{facts.malformed} of {facts.sent} counted malformed, none forwarded, "
            f"{answered} answers"
        )
        if facts.malformed < facts.sent:
            text = f"only {facts.malformed} of {facts.sent} counted malformed"
        elif answered > budget:
            text = f"{answered} error answers (more than {budget}: a reflector)"
        return "malformed", facts.started, text, ok
    kinds = {e.kind for e in facts.events}
    if exp.rule and facts.by_rule > 0:
        when = facts.rejected_at if exp.outcome is Outcome.REJECT else None
        first = [e.at for e in facts.events if e.rule == exp.rule]
        when = when or (first[0] if first else facts.started)
        verb = {
            Outcome.REJECT: "rejected",
            Outcome.RATE_LIMIT: "rate-limited",
        }.get(exp.outcome, "dropped")
        return exp.rule, when, f"{verb} by {exp.rule} ({facts.by_rule} messages)", True
    if exp.outcome is Outcome.ALERT:
        hits = [e for e in facts.events if e.rule == exp.rule or e.kind.startswith("fraud")]
        if hits:
            return hits[0].rule, None, f"forwarded, {hits[0].kind} event ({hits[0].rule})", False
        return None, None, "forwarded, no event", False
    fraud = sorted(k for k in kinds if k.startswith("fraud"))
    if fraud:
        return None, None, f"forwarded ({', '.join(fraud)} event only)", False
    return None, None, "got through: " + (_answers(facts.raw_statuses) or "no answer"), False


def _answers(statuses: Sequence[int]) -> str:
    if not statuses:
        return "none"
    counts: dict[int, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{n}x{s}" if n > 1 else str(s) for s, n in sorted(counts.items()))


# --------------------------------------------------------------------------------------- report


@dataclass(slots=True)
class DrillReport:
    started_at: float
    finished_at: float
    target: str
    policy_path: str
    policy_sha256: str
    results: list[AttackResult]
    checks: list[Check]
    alert_threshold: str = "warning"
    overrides_needed: list[str] = field(default_factory=list)  # geo.overrides lines to add
    stored_id: int | None = None

    @property
    def passed(self) -> int:
        """Attacks passed plus checks not failed."""
        return sum(r.passed for r in self.results) + sum(c.status != "fail" for c in self.checks)

    @property
    def failed(self) -> int:
        """Attacks that got through, plus failed deployment checks."""
        return sum(r.status == "failed" for r in self.results) + sum(
            c.status == "fail" for c in self.checks
        )

    @property
    def skipped(self) -> int:
        return sum(r.status == "skipped" for r in self.results)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def results_json(self) -> list[dict[str, Any]]:
        """The list the store keeps: attacks, then checks (`kind` tells them apart)."""
        return [r.to_json() for r in self.results] + [c.to_json() for c in self.checks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "target": self.target,
            "policy": self.policy_path,
            "policy_sha256": self.policy_sha256,
            "alert_threshold": self.alert_threshold,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "ok": self.ok,
            "results": [r.to_json() for r in self.results],
            "checks": [asdict(c) for c in self.checks],
            "overrides_needed": self.overrides_needed,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def summary(self) -> str:
        verdict = "PASSED" if self.ok else "FAILED"
        return (
            f"drill {verdict}: {sum(r.passed for r in self.results)} attacks stopped, "
            f"{sum(r.status == 'failed' for r in self.results)} got through, "
            f"{self.skipped} skipped; checks: "
            f"{sum(c.status == 'ok' for c in self.checks)} ok, "
            f"{sum(c.status == 'warn' for c in self.checks)} warnings, "
            f"{sum(c.status == 'fail' for c in self.checks)} failed"
        )

    def table(self) -> str:
        """Plain text for a terminal (no colours: it is also what a cron mail shows)."""
        head = ("attack", "source", "result", "stopped by", "time", "alert", "observed")
        rows = [
            (
                r.attack,
                r.source,
                r.status.upper(),
                r.rule or "-",
                _secs(r.seconds_to_block),
                _alert(r),
                r.observed if r.status != "skipped" else "skipped: " + r.note,
            )
            for r in self.results
        ]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head[:-1])]
        lines = [
            f"sipguard drill against {self.target} ({self.policy_path}), "
            f"{_when(self.started_at)}, {self.finished_at - self.started_at:.1f} s",
            "",
            "  ".join(h.ljust(w) for h, w in zip(head[:-1], widths, strict=True)) + "  " + head[-1],
        ]
        lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 8)
        for row in rows:
            cells = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True))
            lines.append(f"{cells}  {row[-1]}")
        failed = [r for r in self.results if r.status == "failed" and r.note]
        if failed:
            lines += ["", "to fix:"] + [f"  {r.attack}: {r.note}" for r in failed]
        lines += ["", "deployment checks:"]
        lines += [f"  {c.status.upper():<4}  {c.name:<16} {c.detail}" for c in self.checks]
        if self.overrides_needed:
            lines += ["", "geo.overrides the drill needs (add them to the policy, then reload):"]
            lines += [f"    {line}" for line in self.overrides_needed]
        lines += ["", self.summary()]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        lines = [
            "# sipguard drill",
            "",
            f"- target: `{self.target}`",
            f"- policy: `{self.policy_path}` (sha256 `{self.policy_sha256[:12]}`)",
            f"- run: {_when(self.started_at)}, {self.finished_at - self.started_at:.1f} s",
            f"- alerts: events of severity {self.alert_threshold} or above",
            f"- result: **{self.summary()}**",
            "",
            "## Attacks",
            "",
            "| attack | source | expected | observed | result | stopped by | time | alert |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.results:
            observed = r.observed if r.status != "skipped" else f"skipped: {r.note}"
            lines.append(
                f"| {r.title} | {r.source} | {_md(r.expected)} | {_md(observed)} | "
                f"**{r.status}** | {_md(r.rule or '-')} | {_secs(r.seconds_to_block)} | "
                f"{_alert(r)} |"
            )
        failed = [r for r in self.results if r.status == "failed"]
        if failed:
            lines += ["", "## To fix", ""]
            lines += [f"- **{r.title}**: {_md(r.note or r.section)}" for r in failed]
        lines += ["", "## Deployment checks", "", "| check | result | detail |", "|---|---|---|"]
        lines += [f"| {c.name} | **{c.status}** | {_md(c.detail)} |" for c in self.checks]
        if self.overrides_needed:
            lines += ["", "## geo.overrides to add", "", "```yaml", "geo:", "  overrides:"]
            lines += [f"    {line}" for line in self.overrides_needed]
            lines += ["```"]
        return "\n".join(lines) + "\n"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _alert(r: AttackResult) -> str:
    if r.alerted:
        return "yes"
    return "MISSING" if r.alert_expected and r.status != "skipped" else "no"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
