"""`sipguard demo` end to end, as a user runs it: a subprocess, its printed summary checked against
the store it kept, nothing left running, and `sipguard report` of that store showing the drill."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sipguard.demo.live import parse_counts
from sipguard.demo.run import demo_policy_text, render_policy
from sipguard.drill import ATTACKS
from sipguard.policy import load_policy_text
from sipguard.store import Dimension, Store

pytestmark = pytest.mark.integration

DEMO_TIMEOUT = 90.0  # seconds before the test gives up (the demo itself must stay under 60)
SUMMARY = re.compile(
    r"^  (forwarded|blocked|bans issued|events recorded|alerts raised):\s+(\d+)(?: \((.*)\))?$"
)
ADDRESSES = re.compile(r"toy PBX on udp://([\d.]+):(\d+); sipguard on udp://([\d.]+):(\d+)")


@dataclass(frozen=True)
class DemoRun:
    returncode: int
    stdout: str
    stderr: str
    pid: int  # also its session id: it ran in a session of its own
    took: float


def run_demo(*args: str, env: dict[str, str] | None = None) -> DemoRun:
    """`python -m sipguard demo ARGS` in a session of its own, to the end."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipguard", "demo", "--no-color", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = proc.communicate(timeout=DEMO_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # only the session this test started
        out, err = proc.communicate()
        pytest.fail(f"sipguard demo did not end within {DEMO_TIMEOUT:g} s\n{out}\n{err}")
    return DemoRun(proc.returncode, out, err, proc.pid, time.monotonic() - started)


def session_members(sid: int) -> list[int]:
    """Processes still in session `sid` (the demo's: it was started with a new session)."""
    left = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        if int(fields[3]) == sid:  # state ppid pgrp session ...
            left.append(int(stat.parent.name))
    return left


def udp_port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def summary(out: str) -> dict[str, tuple[int, dict[str, int]]]:
    found: dict[str, tuple[int, dict[str, int]]] = {}
    for line in out.splitlines():
        m = SUMMARY.match(line)
        if m is not None:
            found[m.group(1)] = (int(m.group(2)), parse_counts(m.group(3) or ""))
    return found


async def stored(db: Path) -> tuple[Counter[str], Counter[str], Counter[str], Counter[str]]:
    """Events by kind, bans by reason, messages by side, and drops+rejects by reason."""
    async with await Store.open(db) as store:
        events = await store.events(0.0, limit=1_000_000)
        bans = await store.bans(0.0)
        rollups = await store.rollups(0.0)
    messages: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    for row in rollups:
        if row.dimension is Dimension.MESSAGES:
            messages[row.key.split(":")[0]] += int(row.value)
        elif row.dimension in (Dimension.DROPS, Dimension.REJECTS):
            blocked[row.key] += int(row.value)
    return (
        Counter(e.kind for e in events),
        Counter(b.reason for b in bans),
        messages,
        blocked,
    )


def test_the_demo_runs_end_to_end_and_its_numbers_match_the_store(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    result = run_demo("--keep", str(kept))
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr}"
    assert result.took < 60, f"the demo took {result.took:.1f} s"
    assert "sipguard demo: passed" in out

    # it leaves nothing behind: no process, no socket, no control socket file
    assert session_members(result.pid) == []
    addresses = ADDRESSES.search(out)
    assert addresses is not None, out
    pbx_host, pbx_port, guard_host, guard_port = addresses.groups()
    assert udp_port_free(pbx_host, int(pbx_port))
    assert udp_port_free(guard_host, int(guard_port))
    assert not (kept / "sipguard.sock").exists()
    assert {p.name for p in kept.iterdir()} >= {
        "policy.yaml",
        "sipguard.db",
        "alerts.jsonl",
        "demo.log",
        "report.html",
    }

    # the printed numbers are the store's
    printed = summary(out)
    assert set(printed) == {
        "forwarded",
        "blocked",
        "bans issued",
        "events recorded",
        "alerts raised",
    }
    events, bans, messages, blocked = asyncio.run(stored(kept / "sipguard.db"))
    assert printed["events recorded"] == (sum(events.values()), dict(events))
    assert printed["bans issued"] == (sum(bans.values()), dict(bans))
    assert printed["blocked"] == (sum(blocked.values()), dict(blocked))
    assert printed["forwarded"][0] == sum(messages.values()) - sum(blocked.values())
    alert_lines = (kept / "alerts.jsonl").read_text().splitlines()
    assert printed["alerts raised"][0] == len(alert_lines)
    assert all(json.loads(line)["event"] for line in alert_lines)
    assert bans["enumeration"] >= 2 and bans["brute_force"] == 1  # the drill's attackers
    assert "demo only, not a PBX" in (kept / "demo.log").read_text()

    # `sipguard report` of the kept store contains the drill's results
    policy = str(kept / "policy.yaml")
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "sipguard",
            "report",
            "-c",
            policy,
            "--since",
            "1h",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    drills = json.loads(report.stdout)["drills"]["items"]
    assert len(drills) == 1
    [drill] = drills
    assert drill["failed"] == 0
    results = {item["attack"]: item["passed"] for item in drill["results"]["items"]}
    attacks = {spec.id for spec in ATTACKS}
    assert attacks <= set(results), results
    assert all(results.values()), results
    for attack in attacks:  # the table the demo printed names the same attacks
        assert re.search(rf"^{re.escape(attack)}\s+127\.0\.\d+\.\d+\s+PASSED", out, re.M), attack


def test_without_keep_only_the_report_is_left(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = run_demo(env={"TMPDIR": str(scratch)})
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    left = sorted(p.name for p in scratch.iterdir())
    assert len(left) == 1 and left[0].startswith("sipguard-demo-report-"), left
    assert f"HTML report: {scratch / left[0]}" in result.stdout
    assert "<html" in (scratch / left[0]).read_text().lower()


def test_a_kept_directory_must_be_new_or_empty(tmp_path: Path) -> None:
    (tmp_path / "old.db").write_text("")
    result = run_demo("--keep", str(tmp_path))
    assert result.returncode == 2
    assert "not an empty directory" in result.stdout


# ---- the policy it runs with --------------------------------------------------------------------


@pytest.mark.parametrize("hour", [0, 12, 23])
def test_the_rendered_policy_loads_and_puts_now_in_quiet_hours(hour: int) -> None:
    now = datetime(2026, 11, 29, hour, 30, tzinfo=UTC).timestamp()
    text = render_policy(demo_policy_text(), upstream="udp://127.0.0.1:40000", now=now)
    policy = load_policy_text(text, "demo.yaml")
    assert (policy.upstream.host, policy.upstream.port) == ("127.0.0.1", 40000)
    quiet = policy.fraud.quiet_hours
    assert quiet is not None
    local = datetime.fromtimestamp(now, UTC).time()
    start, end = quiet.start, quiet.end
    inside = start <= local < end if start < end else (local >= start or local < end)
    assert inside, (start, end, local)


def test_ctrl_c_stops_everything_and_removes_the_work_directory(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipguard", "demo", "--no-color"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=read)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + DEMO_TIMEOUT
    try:
        while not any("drill  [ 2/12]" in line for line in seen):  # the attack is under way
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # only the session this test started
            proc.wait()
        reader.join(10)
    assert session_members(proc.pid) == []
    assert list(scratch.iterdir()) == []
    assert any("interrupted" in line for line in [*seen, *lines.queue])
