"""`python -m bench --quick calls` runs end to end and writes the JSON the README describes.

A smoke test, not a performance test: it asserts the shape of the results and that calls at a
low rate all succeed through sipguard, never how fast anything was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_quick_call_benchmark(tmp_path: Path, sipp_bin: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(tmp_path), "calls"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = sorted(tmp_path.glob("*.json"))
    assert len(written) == 1, done.stderr[-3000:]
    report = json.loads(written[0].read_text())

    assert report["quick"] is True
    assert {"nproc", "cpu_model", "python", "uvloop", "sipp"} <= report["machine"].keys()
    assert set(report["scenarios"]) == {"throughput", "latency"}
    assert {"goal_cps", "goal_added_p99_ms", "reference_points"} <= report["goals"].keys()

    throughput = report["scenarios"]["throughput"]
    assert throughput["modes"] == ["baseline", "relay", "guarded"]
    for mode in throughput["modes"]:
        steps = throughput[mode]["steps"]
        assert steps, mode
        assert steps[0].keys() >= STEP_KEYS, mode
        assert "max_sustained_cps" in throughput[mode]
    first = throughput["guarded"]["steps"][0]  # the lowest rate: every call must get through
    assert first["failed"] == 0, first
    assert first["successful"] == first["calls_planned"], first
    assert first["proxy_cpu_s"] is not None and first["messages"] >= 6 * first["successful"]

    latency = report["scenarios"]["latency"]
    for mode in ("baseline", "guarded"):
        assert latency["sipp"][mode]["rtt_ms"].keys() >= PERCENTILE_KEYS, mode
        probe = latency["probe"][mode]
        assert probe["failed"] == 0, probe
        assert probe["completed"] == probe["calls_planned"], probe
        for key in ("setup_us", "ringing_us", "bye_us"):
            assert probe[key].keys() >= PERCENTILE_KEYS, (mode, key)
    assert {"p50", "p99", "p99_9"} <= latency["probe"]["added_us"]["setup_us"].keys()
    assert "| guarded |" in done.stdout  # the Markdown table was printed
