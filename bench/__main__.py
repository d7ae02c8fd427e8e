"""``python -m bench [--quick] [scenario ...]``: run benchmarks, print Markdown, write JSON.

Scenarios: ``throughput`` and ``latency`` (the call benchmark, bench/calls.py, every mode:
baseline, relay, guarded, guarded-full, kamailio), ``attack`` (legitimate calls under floods,
bench/attack.py and bench/flood.py), ``parse`` (the parser micro-benchmark, bench/micro_parse.py,
when that module exists), ``firewall`` (decision costs and memory of the pure engine,
bench/firewall.py), ``profile`` (sipguard under cProfile) and ``profile-py-spy`` (under py-spy,
when installed); the profiles run only when named. ``calls`` means throughput + latency; no
scenario means throughput, latency, attack, parse and firewall.
The raw results go to ``bench/results/<UTC timestamp>.json``, the plot of rate against latency
beside it (``<timestamp>.png``, when matplotlib is installed: the ``bench`` extra), and the
profiles too.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import attack, callflow, calls, firewall, monitoring, plot
from bench import kamailio as kam

SCENARIOS = (
    "throughput",
    "latency",
    "attack",
    "parse",
    "firewall",
    "callflow",
    "monitoring",
    "profile",
    "profile-py-spy",
)
DEFAULT = ("throughput", "latency", "attack", "parse", "firewall", "callflow")
ALIASES = {"calls": ("throughput", "latency"), "all": SCENARIOS}
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CALL_SCENARIOS = frozenset(
    {"throughput", "latency", "attack", "monitoring", "profile", "profile-py-spy"}
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        chosen = _expand(args.scenario or DEFAULT)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    config = calls.QUICK if args.quick else calls.FULL
    if args.rates:
        config = _with_rates(config, args.rates)
    for key in ("attack_kinds", "attack_multipliers", "attack_targets"):
        value = getattr(args, key)
        if value:
            config = dataclasses.replace(config, **{key: value})
    results_dir: Path = args.results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {
        "schema": 1,
        "started_utc": stamp,
        "quick": args.quick,
        "command": " ".join(getattr(sys, "orig_argv", sys.argv)),
        "scenarios_run": list(chosen),
        "config": dataclasses.asdict(config),
        "machine": machine(),
        "scenarios": {},
    }
    began = time.monotonic()
    needs_sipp = any(name in CALL_SCENARIOS for name in chosen)
    sipp = calls.find_sipp()
    if needs_sipp and sipp is None:
        print("bench: sipp not found (apt-get install -y sip-tester)", file=sys.stderr)
        return 2
    kamailio = kam.find_kamailio()
    modes: tuple[calls.Mode, ...] = args.modes
    if kamailio is None and "kamailio" in modes:
        print("bench: kamailio not found: the kamailio mode is skipped", file=sys.stderr)
        modes = tuple(m for m in modes if m != "kamailio")
    report["modes"] = list(modes)
    work_root = Path(tempfile.mkdtemp(prefix=f"sipguard-bench-{stamp}-"))
    try:
        for name in chosen:
            print(f"== {name}", file=sys.stderr, flush=True)
            if name == "parse":
                report["scenarios"]["parse"] = _run_parse()
                continue
            if name == "firewall":
                sources, bans = (100_000, 10_000) if args.quick else (1_000_000, 100_000)
                report["scenarios"]["firewall"] = firewall.main(sources, bans)
                continue
            if name == "callflow":
                report["scenarios"]["callflow"] = callflow.main(1_000 if args.quick else 5_000)
                continue
            assert sipp is not None
            bench = calls.Bench(work_root / name, sipp, kamailio=kamailio)
            if name == "throughput":
                report["scenarios"][name] = calls.throughput(bench, config, modes)
            elif name == "latency":
                report["scenarios"][name] = calls.latency(bench, config, modes)
            elif name == "attack":
                targets = tuple(
                    mode
                    for mode in calls.ALL_MODES
                    if mode in config.attack_targets and (kamailio or mode != "kamailio")
                )
                report["scenarios"][name] = attack.attack(bench, config, targets)
            elif name == "monitoring":
                report["scenarios"][name] = monitoring.monitoring(bench, config, quick=args.quick)
            elif name == "profile":
                stem = results_dir / f"{stamp}-sipguard"
                report["scenarios"][name] = calls.profile(bench, config, stem)
            else:
                stem = results_dir / f"{stamp}-sipguard"
                report["scenarios"]["profile_py_spy"] = calls.profile(
                    bench, config, stem, profiler="py-spy"
                )
    finally:
        if args.keep_work:
            print(f"bench: SIPp and sipguard files kept in {work_root}", file=sys.stderr)
        else:
            shutil.rmtree(work_root, ignore_errors=True)
    report["elapsed_s"] = time.monotonic() - began
    report["goals"] = calls.goals(report["scenarios"])
    if "attack" in report["scenarios"]:
        report["goals"]["attack"] = report["scenarios"]["attack"]["goal"]
    out = results_dir / f"{stamp}.json"
    picture = plot.plot(report, results_dir / f"{stamp}.png")
    report["plot"] = str(picture) if picture is not None else None
    out.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    print(render(report))
    print(f"\nraw results: {out}")
    if picture is not None:
        print(f"plot: {picture}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "scenario",
        nargs="*",
        help=f"any of {', '.join(SCENARIOS)}, calls, all (default: {' '.join(DEFAULT)})",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (under 30 s)")
    parser.add_argument(
        "--rates",
        type=_rates,
        default=None,
        help="step-up rates in calls/s, comma separated (default: see bench/README.md)",
    )
    parser.add_argument(
        "--modes",
        type=_modes,
        default=calls.THROUGHPUT_MODES,
        help="modes of throughput and latency, comma separated (default: all of "
        + ",".join(calls.ALL_MODES)
        + "; kamailio only when installed)",
    )
    parser.add_argument(
        "--attack-kinds",
        type=_choice_list(("banned", "register", "malformed")),
        default=None,
        help="attack: flood kinds, comma separated (default: banned,register,malformed)",
    )
    parser.add_argument(
        "--attack-multipliers",
        type=_rates,
        default=None,
        help="attack: flood sizes as multiples of the legitimate packet rate (default: 10,50)",
    )
    parser.add_argument(
        "--attack-targets",
        type=_choice_list(("guarded", "guarded-full", "kamailio")),
        default=None,
        help="attack: the modes attacked (default: guarded-full,kamailio)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where the JSON (and the .prof of `profile`) go (default: bench/results)",
    )
    parser.add_argument(
        "--keep-work", action="store_true", help="keep SIPp's and sipguard's files (a temp dir)"
    )
    return parser


def _rates(text: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("rates are whole calls/s, e.g. 250,500,1000") from None
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be positive")
    return rates


def _modes(text: str) -> tuple[calls.Mode, ...]:
    known: dict[str, calls.Mode] = {mode: mode for mode in calls.ALL_MODES}
    chosen = [known.get(part.strip()) for part in text.split(",") if part.strip()]
    if not chosen or None in chosen:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(calls.ALL_MODES)}")
    return tuple(mode for mode in chosen if mode is not None)


def _choice_list(known: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(part.strip() for part in text.split(",") if part.strip())
        if not chosen or any(item not in known for item in chosen):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(known)}")
        return chosen

    return parse


def _with_rates(config: calls.CallsConfig, rates: tuple[int, ...]) -> calls.CallsConfig:
    return dataclasses.replace(config, rates=rates)


def _expand(names: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        for item in ALIASES.get(name, (name,)):
            if item not in SCENARIOS:
                raise ValueError(f"unknown scenario {item!r} (known: {', '.join(SCENARIOS)})")
            if item not in out:
                out.append(item)
    return tuple(out)


def _run_parse() -> dict[str, Any]:
    """bench/micro_parse.py's ``main()`` (another module, imported only when asked for)."""
    try:
        module = importlib.import_module("bench.micro_parse")
    except ModuleNotFoundError as exc:
        if exc.name != "bench.micro_parse":
            raise
        return {"skipped": "bench/micro_parse.py is not there"}
    result: object = module.main()
    if not isinstance(result, dict):
        return {"error": f"micro_parse.main() returned {type(result).__name__}"}
    return {str(key): value for key, value in result.items()}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "nproc": _nproc(),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }
    for package in ("uvloop", "sipguard"):
        try:
            info[package] = str(importlib.import_module(package).__version__)
        except (ImportError, AttributeError):
            info[package] = None
    info["sipp"] = _sipp_version()
    kamailio = kam.find_kamailio()
    info["kamailio"] = kam.kamailio_version(kamailio) if kamailio else None
    info.update(_git())
    return info


def _git() -> dict[str, Any]:
    """Which sipguard was measured: the commit, and whether sipguard/ had local changes."""
    root = Path(__file__).resolve().parents[1]
    out: dict[str, Any] = {"git_commit": None, "git_sipguard_dirty": None}
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sipguard"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return out
    if head.returncode == 0:
        out["git_commit"] = head.stdout.strip()
        out["git_sipguard_dirty"] = bool(dirty.stdout.strip())
    return out


def _nproc() -> int:
    return len(os.sched_getaffinity(0))


def _sipp_version() -> str | None:
    sipp = calls.find_sipp()
    if sipp is None:
        return None
    try:
        done = subprocess.run([sipp, "-v"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"SIPp v(\S+)", done.stdout + done.stderr)
    return found.group(1).rstrip(".") if found else None


def render(report: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    m = report["machine"]
    dirty = ", sipguard/ modified" if m.get("git_sipguard_dirty") else ""
    out = [
        f"## sipguard bench {report['started_utc']}{' (quick)' if report['quick'] else ''}",
        "",
        f"* machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']};"
        f" Python {m['python']}, uvloop {m['uvloop']}, SIPp {m['sipp']},"
        f" Kamailio {m.get('kamailio')}, sipguard {m['sipguard']}"
        f" (commit {m.get('git_commit')}{dirty})",
        f"* command: `{report['command']}`",
        f"* SIPp UAC, SIPp UAS, the proxy under test and the bench share these {m['nproc']}"
        " CPUs: the numbers are a floor, not the proxy alone.",
        f"* elapsed: {report['elapsed_s']:.0f} s",
        "",
    ]
    scenarios = report["scenarios"]
    out.append(calls.markdown(scenarios))
    if "attack" in scenarios:
        out.append(attack.markdown(scenarios["attack"]))
    if report.get("plot"):
        out += [f"Plot of rate against latency: `{report['plot']}`", ""]
    parse = scenarios.get("parse")
    if parse is not None:
        out += ["### Parser micro-benchmark (bench/micro_parse.py)", ""]
        out += _dict_table(parse)
    fw = scenarios.get("firewall")
    if fw is not None:
        out += ["### Firewall decisions and memory (bench/firewall.py)", ""]
        out += _dict_table(fw)
    flow = scenarios.get("callflow")
    if flow is not None:
        out += ["### The engine's cost of a whole call (bench/callflow.py, in-process)", ""]
        out += _dict_table(flow)
        out += [
            f"* {flow['us_per_message']} us per message, {flow['msgs_per_cpu_s']:,} messages per "
            f"CPU-second of `Engine.handle` alone ({flow['calls']:,} calls, best of 3)",
            "",
        ]
    mon = scenarios.get("monitoring")
    if mon is not None:
        out += [*monitoring.markdown(mon), ""]
    return "\n".join(out)


def _dict_table(data: dict[str, Any]) -> list[str]:
    rows = {k: v for k, v in data.items() if isinstance(v, dict)}
    if not rows:
        return [f"* {k}: {v}" for k, v in data.items()] + [""]
    columns: list[str] = []
    for row in rows.values():
        columns += [c for c in row if c not in columns]
    out = [
        "| kind | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, row in rows.items():
        cells = [
            f"{row[c]:.2f}" if isinstance(row.get(c), float) else str(row.get(c, ""))
            for c in columns
        ]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append("")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
