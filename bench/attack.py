"""Scenario ``attack``: legitimate calls while an attacker floods the proxy (bench/flood.py).

For every target mode (``guarded-full``: sipguard with ``policies/default.yaml``, and
``kamailio``: Kamailio with pike) and every flood kind and size, one run:

1. a fresh proxy (sipguard or Kamailio) in front of a fresh SIPp UAS;
2. once the UAS is up (so that what leaks through the proxy reaches it and is counted), the
   flood generator, a process of its own (``python -m bench.flood``), from
   ``sources`` loopback addresses of a /24 of its own (``127.<21+run>.0.N``: no run inherits the
   bans or buckets of another), at ``multiplier x`` the legitimate packet rate: every legitimate
   call passes 6 datagrams through the proxy, so 100 calls/s is 600 datagrams/s, and the 50x
   flood is 30,000 datagrams/s. For ``banned`` the generator first bans its sources (a scanner
   User-Agent from each; both proxies ban on it) and the bench checks that they are banned;
3. once the flood is running, the legitimate calls: SIPp UAC (127.0.0.1, the proxies' own and
   so trusted address, as a SIP trunk would be) at ``attack_rate`` calls/s, ``attack_calls``
   calls, with ``-trace_rtt``, plus the load probe (timed calls, microseconds) alongside;
4. the flood stops when the calls are done (it is bounded in count and time anyway).

A ``none`` run (no flood) per target is the control. Reported per run: the legitimate calls'
success rate (UAC successful / planned; the probe's calls separately), failed calls and
retransmissions, response times (SIPp, ms; probe, us), the proxy's CPU (all its processes),
kernel drops at its socket and on the host, what the flood achieved, what came back to the
flooder, how many flood requests reached the UAS (SIPp counts each unexpected request as a
failed incoming call), and how many flood sources ended up banned.
"""

from __future__ import annotations

import contextlib
import json
import math
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, Final

from bench.calls import (
    MESSAGES_PER_CALL,
    ROOT,
    Bench,
    CallsConfig,
    Mode,
    Proxy,
    _num,
    _x,
)
from sipguard.io import control
from tests.peers.ports import LOOPBACK

__all__ = ["GOAL_SUCCESS", "attack", "markdown"]

GOAL_SUCCESS: Final = 0.999  # legitimate calls under a 50x flood from banned sources
GOAL_KIND: Final = "banned"
GOAL_MULTIPLIER: Final = 50
FLOOD_START_S: Final = 20.0  # the generator must be flooding within this (priming included)
FLOOD_HEAD_START_S: Final = 0.5  # flood alone before the calls begin
GRACE_S: Final = 10.0  # the calls' hard limit: calls / rate + this


class _Flood:
    """bench/flood.py as a child process: started here, stopped by its PID, always reaped."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self._popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def wait_flooding(self, timeout_s: float) -> bool:
        """True once the generator says the flood has begun (False: it did not, in time)."""
        stream = self._popen.stdout
        assert stream is not None
        end = time.monotonic() + timeout_s
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([stream], [], [], left)
            if not ready:
                return False
            line = stream.readline()
            if not line:
                return False
            with contextlib.suppress(json.JSONDecodeError):
                if json.loads(line).get("event") == "flooding":
                    return True
        return False

    def stop(self) -> dict[str, Any]:
        """SIGTERM (it stops sending and prints its result), SIGKILL past a deadline."""
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(signal.SIGTERM)
        try:
            out, err = self._popen.communicate(timeout=15.0)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            out, err = self._popen.communicate()
        for line in reversed(out.strip().splitlines()):
            with contextlib.suppress(json.JSONDecodeError):
                data = json.loads(line)
                if isinstance(data, dict) and "sent" in data:
                    return data
        return {"error": f"no result (exit {self._popen.returncode}): {err[-500:]}"}


def _banned_sources(bench: Bench, mode: Mode, name: str, proxy: Proxy, net: str) -> int | None:
    """How many addresses of ``net`` the proxy holds banned right now."""
    prefix = net + "."
    if mode == "kamailio":
        log = getattr(proxy, "log_lines", None)
        if log is None:
            return None
        lines: list[str] = log("BAN ")
        return len({w for line in lines for w in line.split() if w.startswith(prefix)})
    if mode in ("guarded", "guarded-full"):
        path = bench.control_path(f"full-{name}" if mode == "guarded-full" else name)
        try:
            reply = control.request(str(path), {"op": "bans"})
        except (control.ControlUnavailable, OSError, ValueError):
            return None
        return sum(1 for ban in reply.get("bans", []) if str(ban.get("ip", "")).startswith(prefix))
    return None


def _run(
    bench: Bench,
    config: CallsConfig,
    mode: Mode,
    kind: str,
    multiplier: int,
    net: str,
) -> dict[str, Any]:
    rate, calls = config.attack_rate, config.attack_calls
    legit_pps = rate * MESSAGES_PER_CALL
    flood_pps = multiplier * legit_pps
    name = f"attack-{kind}-{multiplier}"
    out: dict[str, Any] = {
        "mode": mode,
        "kind": kind,
        "multiplier": multiplier,
        "legit_cps": rate,
        "legit_pps": legit_pps,
        "flood_pps": flood_pps,
        "sources": config.attack_sources if kind != "none" else 0,
        "net": net if kind != "none" else None,
    }
    assert mode != "baseline"
    with bench.proxy(mode, name) as proxy:
        floods: list[_Flood] = []
        flood_pids: list[int] = []

        def start_flood() -> None:
            """Once the UAS is up (what leaks through the proxy reaches it), before the calls."""
            duration = calls / rate + GRACE_S + FLOOD_START_S
            argv = [
                sys.executable,
                "-m",
                "bench.flood",
                "--target",
                f"{LOOPBACK}:{proxy.outside_port}",
                "--kind",
                kind,
                "--rate",
                str(flood_pps),
                "--duration",
                f"{duration:.1f}",
                "--count",
                str(math.ceil(flood_pps * duration)),
                "--sources",
                str(config.attack_sources),
                "--net",
                net,
            ]
            if kind == "banned":
                argv += ["--prime", "scanner"]
            floods.append(_Flood(argv))
            flood_pids.append(floods[0].pid)
            out["flood_started"] = floods[0].wait_flooding(FLOOD_START_S)
            out["banned_at_start"] = _banned_sources(bench, mode, name, proxy, net)
            time.sleep(FLOOD_HEAD_START_S)

        try:
            step = bench.step(
                mode,
                rate,
                calls,
                GRACE_S,
                rtt=True,
                watch=False,
                probe_rate=config.load_probe_rate,
                uas_trace_err=False,
                extra_pids=flood_pids,  # read when the step ends: filled by start_flood
                before_uac=start_flood if kind != "none" else None,
            )
        finally:
            out["flood"] = floods[0].stop() if floods else None
        out["banned_at_end"] = (
            _banned_sources(bench, mode, name, proxy, net) if kind != "none" else None
        )
        if mode == "guarded-full":  # the monitoring, scraped once as Prometheus would
            out["metrics"] = bench.scrape(f"full-{name}")
    out["step"] = asdict(step)
    out.update(_summary(step.successful, calls, asdict(step), out["flood"]))
    _progress(out)
    return out


def _summary(
    successful: int, planned: int, step: Mapping[str, Any], flood: Mapping[str, Any] | None
) -> dict[str, Any]:
    probe = step.get("load_probe") or {}
    wall = step["wall_s"] or 1.0
    flood_in_window = 0.0
    if flood and flood.get("achieved_pps"):
        flood_in_window = float(flood["achieved_pps"]) * wall
    cpu = step["proxy_cpu_s"]
    datagrams = step["messages"] + flood_in_window
    return {
        "success_rate": successful / planned if planned else 0.0,
        "uac_failed": step["uac_failed"],
        "retransmissions": step["retransmissions"],
        "rtt_ms": step["rtt_ms"],
        "probe_completed": probe.get("completed"),
        "probe_planned": probe.get("calls_planned"),
        "probe_ringing_us": probe.get("ringing_us", {}),
        "proxy_cpu_pct": step["proxy_cpu_pct"],
        "proxy_cpu_s": cpu,
        "proxy_us_per_datagram": 1e6 * cpu / datagrams if cpu and datagrams else None,
        "proxy_socket_drops": step["proxy_socket_drops"],
        "udp_rcvbuf_errors": step["udp_rcvbuf_errors"],
        "leaked_to_uas": step["uas_unexpected"],
        "flood_achieved_pps": flood.get("achieved_pps") if flood else None,
        "flood_sent": flood.get("sent") if flood else None,
        "flood_replies": flood.get("replies") if flood else None,
        "flood_cpu_s": flood.get("cpu_s") if flood else None,
        "other_cpu_pct": step["other_cpu_pct"],
    }


def _progress(run: Mapping[str, Any]) -> None:
    p99 = run["probe_ringing_us"].get("p99")
    print(
        f"  {run['mode']:12s} {run['kind']:9s} {run['multiplier']:3d}x:"
        f" {run['success_rate'] * 100:.2f}% of {run['legit_cps']} calls/s ok,"
        f" {run['uac_failed']} failed, {run['retransmissions']} retrans,"
        f" probe p99 {_num(p99)} us, proxy {_num(run['proxy_cpu_pct'])}% CPU,"
        f" flood {_num(run['flood_achieved_pps'])}/s, drops {_num(run['proxy_socket_drops'])},"
        f" leaked {run['leaked_to_uas']}, banned {run.get('banned_at_start')}"
        f"->{run.get('banned_at_end')}",
        file=sys.stderr,
        flush=True,
    )


def attack(bench: Bench, config: CallsConfig, targets: Sequence[Mode]) -> dict[str, Any]:
    """Every target under every flood kind and size, plus a run without flood."""
    runs: list[dict[str, Any]] = []
    plan = [("none", 0)] + [(k, m) for k in config.attack_kinds for m in config.attack_multipliers]
    index = 0
    for mode in targets:
        for kind, multiplier in plan:
            index += 1
            net = f"127.{20 + index}.0"
            runs.append(_run(bench, config, mode, kind, multiplier, net))
            time.sleep(config.settle_s)
    return {
        "legit_cps": config.attack_rate,
        "legit_calls": config.attack_calls,
        "legit_pps": config.attack_rate * MESSAGES_PER_CALL,
        "sources": config.attack_sources,
        "targets": list(targets),
        "kinds": list(config.attack_kinds),
        "multipliers": list(config.attack_multipliers),
        "runs": runs,
        "goal": goal(runs),
    }


def goal(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Under a 50x flood from banned sources, legitimate calls keep >= 99.9 % success."""
    out: dict[str, Any] = {
        "success_goal": GOAL_SUCCESS,
        "kind": GOAL_KIND,
        "multiplier": GOAL_MULTIPLIER,
    }
    for run in runs:
        if run["kind"] == GOAL_KIND and run["multiplier"] == GOAL_MULTIPLIER:
            out[run["mode"]] = {
                "success_rate": run["success_rate"],
                "met": run["success_rate"] >= GOAL_SUCCESS,
            }
    return out


def markdown(data: Mapping[str, Any]) -> str:
    runs = data["runs"]
    out = [
        f"### Under attack: {data['legit_cps']} legitimate calls/s ({data['legit_pps']:,}"
        f" datagrams/s through the proxy), {data['legit_calls']:,} calls per run, floods from"
        f" {data['sources']} loopback sources",
        "",
        "| target | flood | x legit | flood pkts/s (achieved) | calls ok | success | failed |"
        " retrans | SIPp INVITE->200 p50/p99/max ms | probe INVITE->180 p50/p99 us |"
        " probe calls ok | proxy CPU % | us CPU/datagram | drops at proxy | flood replies |"
        " reached UAS | banned (start/end) | others CPU % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        step = r["step"]
        rtt = r["rtt_ms"]
        ringing = r["probe_ringing_us"]
        flood = f"{r['flood_pps']:,} ({_num(r['flood_achieved_pps'])})" if r["flood"] else "-"
        banned = (
            f"{_num(r.get('banned_at_start'))}/{_num(r.get('banned_at_end'))}"
            if r["kind"] != "none"
            else "-"
        )
        out.append(
            f"| {r['mode']} | {r['kind']} | {r['multiplier'] or '-'} | {flood} |"
            f" {step['successful']:,}/{step['calls_planned']:,} |"
            f" {100 * r['success_rate']:.2f}% | {r['uac_failed']} | {r['retransmissions']:,} |"
            f" {_num(rtt.get('p50'))}/{_num(rtt.get('p99'))}/{_num(rtt.get('max'))} |"
            f" {_num(ringing.get('p50'))}/{_num(ringing.get('p99'))} |"
            f" {_num(r['probe_completed'])}/{_num(r['probe_planned'])} |"
            f" {_num(r['proxy_cpu_pct'])} | {_num(r['proxy_us_per_datagram'], 1)} |"
            f" {_num(r['proxy_socket_drops'])} | {_num(r['flood_replies'])} |"
            f" {_num(r['leaked_to_uas'])} | {banned} | {_num(r['other_cpu_pct'])} |"
        )
    out.append("")
    g = data["goal"]
    for mode in data["targets"]:
        if mode in g:
            verdict = "met" if g[mode]["met"] else "NOT met"
            out.append(
                f"* {mode}: >= {100 * GOAL_SUCCESS:.1f}% of legitimate calls under a"
                f" {GOAL_MULTIPLIER}x flood from banned sources: measured"
                f" {100 * g[mode]['success_rate']:.2f}% -> {verdict}"
            )
    ratios = _ratios_md(runs)
    out += ["", *ratios] if ratios else []
    out.append("")
    return "\n".join(out)


def _ratios_md(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """sipguard against Kamailio, flood by flood: CPU and the probe's p99."""
    by = {(r["mode"], r["kind"], r["multiplier"]): r for r in runs}
    rows = []
    for (mode, kind, mult), r in by.items():
        ref = by.get(("kamailio", kind, mult))
        if mode == "kamailio" or ref is None:
            continue
        cpu = r["proxy_cpu_pct"]
        ref_cpu = ref["proxy_cpu_pct"]
        p99 = r["probe_ringing_us"].get("p99")
        ref_p99 = ref["probe_ringing_us"].get("p99")
        rows.append(
            f"| {mode} | {kind} | {mult or '-'} | {100 * r['success_rate']:.2f}% vs"
            f" {100 * ref['success_rate']:.2f}% |"
            f" {_x(cpu / ref_cpu if cpu and ref_cpu else None)} |"
            f" {_x(p99 / ref_p99 if p99 and ref_p99 else None)} |"
        )
    if not rows:
        return []
    return [
        "| mode | flood | x legit | success vs Kamailio's | proxy CPU x Kamailio |"
        " probe p99 x Kamailio |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
    ]
