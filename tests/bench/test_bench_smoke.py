"""`python -m bench --quick calls` (and `attack`) run end to end and write the JSON the README
describes; bench/flood.py keeps its bounds.

Smoke tests, not performance tests: they assert the shape of the results and that calls at a low
rate all succeed through sipguard, never how fast anything was. Kamailio's steps are only checked
for their shape (it may be slow, or missing: then its mode is skipped).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from bench.flood import KINDS

pytestmark = [pytest.mark.peers, pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
STEP_KEYS = {
    "mode",
    "target_cps",
    "calls_planned",
    "successful",
    "failed",
    "retransmissions",
    "achieved_cps",
    "messages",
    "messages_per_s",
    "proxy_cpu_s",
    "proxy_cpu_pct",
    "proxy_msgs_per_cpu_s",
    "proxy_cpu_s_per_1000_msgs",
    "proxy_us_per_msg",
    "sipp_cpu_s",
    "other_cpu_pct",
    "ok",
    "reason",
}
PERCENTILE_KEYS = {"n", "mean", "p50", "p90", "p99", "p99_9", "max"}


def _run_bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(tmp_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = sorted(tmp_path.glob("*.json"))
    assert len(written) == 1, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(written[0].read_text())
    report["_stdout"] = done.stdout
    return report


def test_quick_call_benchmark(tmp_path: Path, sipp_bin: str) -> None:
    report = _run_bench(tmp_path, "calls")

    assert report["quick"] is True
    assert {"nproc", "cpu_model", "python", "uvloop", "sipp"} <= report["machine"].keys()
    assert set(report["scenarios"]) == {"throughput", "latency"}
    assert {"goal_cps", "goal_added_p99_ms", "reference_points"} <= report["goals"].keys()

    throughput = report["scenarios"]["throughput"]
    expected = ["baseline", "relay", "guarded", "guarded-full"]
    if shutil.which("kamailio"):
        expected.append("kamailio")
    assert throughput["modes"] == expected
    for mode in throughput["modes"]:
        steps = throughput[mode]["steps"]
        assert steps, mode
        assert steps[0].keys() >= STEP_KEYS, mode
        assert "max_sustained_cps" in throughput[mode]
    for mode in ("guarded", "guarded-full"):  # the lowest rate: every call must get through
        first = throughput[mode]["steps"][0]
        assert first["failed"] == 0, first
        assert first["successful"] == first["calls_planned"], first
        assert first["proxy_cpu_s"] is not None and first["messages"] >= 6 * first["successful"]
        assert first["load_probe"]["ringing_us"].keys() >= PERCENTILE_KEYS, first["load_probe"]
    comparison = throughput["comparison"]
    assert comparison["reference"] == "kamailio"
    assert set(comparison["modes"]) == set(expected)
    assert {"cps_x_baseline", "cps_x_kamailio", "msgs_per_cpu_s_x_kamailio"} <= (
        comparison["modes"]["guarded"].keys()
    )
    if importlib.util.find_spec("matplotlib") is not None:
        assert report["plot"] and Path(report["plot"]).stat().st_size > 1000

    latency = report["scenarios"]["latency"]
    for mode in ("baseline", "guarded", "guarded-full"):
        assert latency["sipp"][mode]["rtt_ms"].keys() >= PERCENTILE_KEYS, mode
        probe = latency["probe"][mode]
        assert probe["failed"] == 0, probe
        assert probe["completed"] == probe["calls_planned"], probe
        for key in ("setup_us", "ringing_us", "bye_us"):
            assert probe[key].keys() >= PERCENTILE_KEYS, (mode, key)
    assert {"p50", "p99", "p99_9"} <= latency["probe"]["added_us"]["setup_us"].keys()
    assert "| guarded |" in str(report["_stdout"])  # the Markdown table was printed
    assert "| guarded-full |" in str(report["_stdout"])


def test_quick_attack(tmp_path: Path, sipp_bin: str) -> None:
    report = _run_bench(
        tmp_path,
        "--attack-kinds",
        "banned",
        "--attack-multipliers",
        "10",
        "--attack-targets",
        "guarded-full",
        "attack",
    )
    data = report["scenarios"]["attack"]
    runs = {(r["mode"], r["kind"]): r for r in data["runs"]}
    assert set(runs) == {("guarded-full", "none"), ("guarded-full", "banned")}
    banned = runs[("guarded-full", "banned")]
    assert banned["flood_started"] is True, banned
    assert banned["banned_at_start"] == data["sources"], banned  # the scanner User-Agent banned
    assert banned["flood"]["sent"] > 0 and banned["flood"]["replies"] == 0, banned["flood"]
    for run in runs.values():
        assert run["step"]["successful"] == run["step"]["calls_planned"], run["step"]
        assert run["success_rate"] == 1.0
        assert run["proxy_cpu_pct"] is not None
    assert "Under attack" in str(report["_stdout"])


@pytest.mark.parametrize("kind", KINDS)
def test_flood_is_bounded_and_comes_from_many_sources(kind: str) -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(0.2)
    seen: set[str] = set()
    received = [0]
    flood_done = threading.Event()

    def drain() -> None:
        """Everything that arrives until the flood process has ended and the line is quiet."""
        while True:
            try:
                _, addr = sink.recvfrom(65535)
            except TimeoutError:
                if flood_done.is_set():
                    return
                continue  # the flood may not have started yet (interpreter start-up)
            except OSError:
                return
            seen.add(addr[0])
            received[0] += 1

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.flood",
                "--target",
                f"127.0.0.1:{sink.getsockname()[1]}",
                "--kind",
                kind,
                "--rate",
                "2000",
                "--duration",
                "5",
                "--count",
                "300",
                "--sources",
                "6",
                "--net",
                "127.19.0",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        flood_done.set()
        reader.join(5.0)
    finally:
        sink.close()
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["sent"] == 300 and result["stopped_by"] == "count", result
    assert result["wall_s"] < 2.0, result  # 300 at 2,000/s: paced, not all at once, not slow
    assert seen == {f"127.19.0.{n}" for n in range(1, 7)}, seen
    assert received[0] == 300


def test_flood_refuses_what_is_not_loopback() -> None:
    for args in (["--target", "192.0.2.1:5060"], ["--net", "10.0.0"], ["--net", "127.0.0"]):
        argv = ["--target", "127.0.0.1:9", "--kind", "banned", "--rate", "1", "--duration", "1"]
        argv += ["--count", "1", "--sources", "1", *args]
        done = subprocess.run(
            [sys.executable, "-m", "bench.flood", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2, (args, done.stdout, done.stderr)
