"""`run_drill`: stage every attack of the catalogue against the running sipguard, one after the
other, each from its own loopback source, and judge what happened."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from sipguard.drill.attacks import run_attack
from sipguard.drill.catalogue import ATTACKS, DEFAULT_ACCOUNT
from sipguard.drill.checks import deployment_checks
from sipguard.drill.expect import (
    Expectation,
    Outcome,
    alert_threshold,
    avoid_networks,
    country_source,
    expectations,
    plan_sources,
)
from sipguard.drill.observe import Control, Snapshot, events_for
from sipguard.drill.report import DrillReport, Facts, judge
from sipguard.drill.target import DrillError, Target, pick_sources, resolve_target
from sipguard.policy.model import Policy
from sipguard.store import Store, StoreError

__all__ = ["run_drill"]

BAN_WAIT = 0.3  # seconds to wait for a ban to show in the table after an attack ends
EVENT_WAIT = 4.0  # seconds to wait for the events of the whole drill to reach the store

Progress = Callable[[str], None]


async def run_drill(
    policy: Policy,
    *,
    target: str | None = None,
    progress: Progress | None = None,
    store: bool = True,
    allow_target: str | None = None,
    account: str = DEFAULT_ACCOUNT,
) -> DrillReport:
    """Attack the sipguard that runs `policy` (found by its control socket) at `target` (default:
    the policy's first UDP listen address). Raises DrillError (TargetRefused for a target outside
    loopback that `allow_target` does not name) when it cannot run. `store`: record the run in
    the policy's store for `sipguard report`."""
    say = progress or (lambda _text: None)
    chosen = resolve_target(policy, target, allow_target)
    control = Control(policy.control_path)
    status = await control.status()
    started = time.time()
    country = country_source(policy)
    reserved = [country[0]] if country else []
    sources = plan_sources(
        policy, pick_sources(len(ATTACKS), avoid_networks(policy), reserved=reserved)
    )
    plan = expectations(policy, sources, started, account=account)
    threshold = alert_threshold(policy)
    say(f"drilling {chosen} with {len(plan)} attacks (policy {policy.source_path})")
    checks = await deployment_checks(policy, status, datetime.fromtimestamp(started, UTC).date())
    facts: list[Facts] = []
    for index, exp in enumerate(plan, 1):
        head = f"[{index:2}/{len(plan)}] {exp.attack:<18} from {exp.source:<13}"
        if exp.skip:
            say(f"{head} skipped: {exp.skip}")
            facts.append(Facts([], 0, time.time(), None, None, 0, 0, 0, skip=exp.skip))
            continue
        say(f"{head} ...")
        fact = await _stage(exp, control, chosen)
        facts.append(fact)
        if exp.outcome is Outcome.ALERT:  # an alert-only attack is judged once events are in
            say(f"{head} sent {fact.sent}: its alert is checked at the end")
            continue
        verdict = judge(replace(exp, alert=False), fact, threshold)  # alerts: judged at the end
        say(f"{head} {_short(verdict.status, verdict.observed, fact.skip)}")
    run_sources = {f_exp.source for f_exp, f in zip(plan, facts, strict=True) if f.sent}
    wanted = {e.source for e, f in zip(plan, facts, strict=True) if f.sent and e.alert}
    events = await events_for(
        policy.storage_path, run_sources, started, wanted=wanted, wait=EVENT_WAIT
    )
    for exp, fact in zip(plan, facts, strict=True):
        fact.events = [e for e in events if e.ip == exp.source]
    for source in run_sources:  # leave no drill ban behind (the events keep the record)
        await control.unban(source)
    results = [judge(exp, fact, threshold) for exp, fact in zip(plan, facts, strict=True)]
    report = DrillReport(
        started_at=started,
        finished_at=time.time(),
        target=str(chosen),
        policy_path=policy.source_path,
        policy_sha256=policy.source_sha256,
        results=results,
        checks=checks,
        alert_threshold=threshold.value,
        overrides_needed=[e.extra["override"] for e in plan if "override" in e.extra],
    )
    if store:
        report.stored_id = await _record(policy, report)
    return report


async def _stage(exp: Expectation, control: Control, target: Target) -> Facts:

    await control.unban(exp.source)  # a ban left from an earlier drill would stop it at once
    before = await control.snapshot()
    raw = await run_attack(exp, target)
    ban = await control.ban_of(exp.source, BAN_WAIT)
    delta: Snapshot = (await control.snapshot()).minus(before)
    return Facts(
        raw_statuses=raw.statuses,
        sent=raw.sent,
        started=raw.started,
        rejected_at=raw.rejected_at,
        ban=ban,
        by_rule=delta.by_rule(exp.rule) if exp.rule else 0,
        malformed=delta.malformed(),
        malformed_forwarded=delta.forwarded_malformed(),
        skip=raw.skip,
        detail=raw.detail,
    )


def _short(status: str, observed: str, skip: str) -> str:
    if skip:
        return f"skipped: {skip}"
    return f"{'done' if status == 'passed' else 'FAILED'}: {observed}"


async def _record(policy: Policy, report: DrillReport) -> int:
    try:
        async with await Store.open(policy.storage_path) as db:
            return await db.record_drill(
                started_at=report.started_at,
                finished_at=report.finished_at,
                target=report.target,
                policy_sha256=report.policy_sha256,
                passed=report.passed,
                failed=report.failed,
                results=json.dumps(report.results_json()),
            )
    except StoreError as exc:
        raise DrillError(f"the drill ran but was not recorded: {exc}") from exc
