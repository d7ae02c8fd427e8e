"""The cost of monitoring on the hot path (issue 6): sipguard with metrics, rollups and alerts on
against the same sipguard with them off, in the same run.

    python -m bench monitoring [--quick]

Both variants run ``policies/default.yaml`` (every rule, limit, detector and the toll-fraud guard,
as ``guarded-full``); "on" adds a Prometheus endpoint scraped every second (a real Prometheus
scrapes every 15-60 s: this is the pessimistic case), an alert file taking every severity and the
per-minute rollups (the default); "off" has no metrics, no alerts and ``records: {rollups: off}``.
Each round runs both at the same call rate, in alternating order (off/on, then on/off) so a drift
of the machine shows in both. The number is the proxy's CPU per message (from /proc), the measure
of throughput for a CPU-bound proxy; the in-process ``callflow`` benchmark gives the engine's share
(the rollup tally) without the kernel's noise.
"""

from __future__ import annotations

import statistics
import threading
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import callflow
from bench.calls import Bench, CallsConfig, StepResult

LOOPBACK = "127.0.0.1"

GOAL_OVERHEAD_PCT = 10.0
SCRAPE_EVERY_S = 1.0


def _without_monitoring(full: Path, out: Path) -> Path:
    """The full policy with the metrics endpoint and the alert sinks removed and rollups off."""
    kept: list[str] = []
    skipping = False
    for line in full.read_text(encoding="utf-8").splitlines():
        if skipping and line.startswith(" "):
            continue  # the items of `alerts:`
        skipping = False
        if line.startswith("metrics:"):
            continue
        if line.startswith("alerts:"):
            skipping = True
            continue
        kept.append(line)
    out.write_text(callflow.without_rollups("\n".join(kept) + "\n"), encoding="utf-8")
    return out


class _Scraper:
    """Scrapes one metrics endpoint every `SCRAPE_EVERY_S` until stopped (a bounded thread)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.scrapes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Scraper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        url = f"http://{LOOPBACK}:{self.port}/metrics"
        while not self._stop.wait(SCRAPE_EVERY_S):
            try:
                with urllib.request.urlopen(url, timeout=2.0) as answer:
                    answer.read()
                self.scrapes += 1
            except OSError:
                self.failures += 1


def _run_variant(bench: Bench, variant: str, round_no: int, rate: int, calls: int) -> StepResult:
    name = f"mon-{variant}-{round_no}"
    full = bench.full_policy(name)
    policy = full if variant == "on" else _without_monitoring(full, full.with_suffix(".off.yaml"))
    with bench.proxy("guarded-full", name, policy=policy):
        if variant == "on":
            with _Scraper(bench.metrics_ports[name]) as scraper:
                step = bench.step("guarded-full", rate, calls, grace_s=10.0)
            if scraper.scrapes == 0:
                raise RuntimeError(f"the metrics endpoint of {name} never answered")
        else:
            step = bench.step("guarded-full", rate, calls, grace_s=10.0)
    return step


def monitoring(bench: Bench, config: CallsConfig, *, quick: bool = False) -> dict[str, Any]:
    rate = 200 if quick else 1_000
    calls = rate * (3 if quick else 10)
    rounds = 1 if quick else 3
    steps: dict[str, list[StepResult]] = {"off": [], "on": []}
    for round_no in range(rounds):
        order = ("off", "on") if round_no % 2 == 0 else ("on", "off")
        for variant in order:
            steps[variant].append(_run_variant(bench, variant, round_no, rate, calls))
    us = {
        v: [s.proxy_us_per_msg for s in runs if s.proxy_us_per_msg is not None]
        for v, runs in steps.items()
    }
    median = {v: statistics.median(values) if values else None for v, values in us.items()}
    overhead = None
    if median["on"] and median["off"]:
        overhead = round((median["on"] / median["off"] - 1.0) * 100.0, 1)
    engine = {
        "rollups_on": callflow.main(2_000 if quick else 5_000, repeat=3),
        "rollups_off": callflow.main(2_000 if quick else 5_000, repeat=3, rollups=False),
    }
    on_us = engine["rollups_on"]["us_per_message"]
    off_us = engine["rollups_off"]["us_per_message"]
    return {
        "rate_cps": rate,
        "calls_per_step": calls,
        "rounds": rounds,
        "scrape_every_s": SCRAPE_EVERY_S,
        "us_per_msg": us,
        "median_us_per_msg": median,
        "overhead_pct": overhead,
        "goal_overhead_pct": GOAL_OVERHEAD_PCT,
        "goal_met": overhead is not None and overhead < GOAL_OVERHEAD_PCT,
        "all_calls_ok": all(
            s.failed == 0 and s.successful == calls for r in steps.values() for s in r
        ),
        "engine_us_per_msg": {"rollups_on": on_us, "rollups_off": off_us},
        "engine_overhead_pct": round((on_us / off_us - 1.0) * 100.0, 1),
        "steps": {v: [asdict(s) for s in runs] for v, runs in steps.items()},
    }


def markdown(data: dict[str, Any]) -> list[str]:
    med = data["median_us_per_msg"]
    lines = [
        f"### Monitoring on vs off ({data['rounds']} rounds at {data['rate_cps']:,} calls/s, "
        f"{data['calls_per_step']:,} calls each, "
        f"metrics scraped every {data['scrape_every_s']:g} s)",
        "",
        "| variant | proxy us per message (each round) | median |",
        "|---|---|---:|",
    ]
    for variant in ("off", "on"):
        each = ", ".join(f"{v:.1f}" for v in data["us_per_msg"][variant])
        value = med[variant]
        lines.append(f"| {variant} | {each} | {value:.1f} |" if value else f"| {variant} | - | - |")
    eng = data["engine_us_per_msg"]
    lines += [
        "",
        f"Overhead of monitoring: **{data['overhead_pct']}%** of the proxy's CPU per message "
        f"(goal < {data['goal_overhead_pct']:g}%: {'met' if data['goal_met'] else 'NOT met'}); "
        f"every call completed: {data['all_calls_ok']}.",
        f"Engine alone (bench/callflow.py, in-process): {eng['rollups_on']:.2f} us per message "
        f"with the rollup tally, {eng['rollups_off']:.2f} without "
        f"({data['engine_overhead_pct']}%).",
    ]
    return lines
