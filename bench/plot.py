"""The PNG plots of a run, beside its JSON: rate against latency per mode, and the attack runs.

matplotlib is optional (the ``bench`` extra: ``pip install -e .[bench]``); without it
:func:`plot` returns None and the run goes on. The data are the throughput steps' load probe
(INVITE -> 180 through the proxy, microseconds, timed while SIPp drives the step's rate) and, when
the attack scenario ran, each run's success rate and probe p99.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["plot"]

COLOURS = {
    "baseline": "#555555",
    "relay": "#8c8c8c",
    "guarded": "#1f77b4",
    "guarded-full": "#d62728",
    "kamailio": "#2ca02c",
}


def plot(report: Mapping[str, Any], path: Path) -> Path | None:
    """Write ``path`` (rate vs latency) and ``<stem>-attack.png``; None without matplotlib or
    without a throughput scenario."""
    try:
        import matplotlib as mpl  # optional: the bench extra

        mpl.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:
        return None
    scenarios = report.get("scenarios", {})
    data = scenarios.get("throughput")
    if not data:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharex=True)
    for mode in data["modes"]:
        steps = data[mode]["steps"]
        colour = COLOURS.get(mode, "black")
        for ax, pct in zip(axes, ("p50", "p99"), strict=True):
            ok = [
                (s["target_cps"], s["load_probe"]["ringing_us"][pct])
                for s in steps
                if s["ok"] and s.get("load_probe", {}).get("ringing_us", {}).get(pct) is not None
            ]
            bad = [
                (s["target_cps"], s["load_probe"]["ringing_us"][pct])
                for s in steps
                if not s["ok"]
                and s.get("load_probe", {}).get("ringing_us", {}).get(pct) is not None
            ]
            if ok:
                ax.plot(*zip(*ok, strict=True), marker="o", color=colour, label=mode)
            if bad:
                ax.plot(*zip(*bad, strict=True), marker="x", linestyle="", color=colour)
    machine = report.get("machine", {})
    rates = sorted({s["target_cps"] for mode in data["modes"] for s in data[mode]["steps"]})
    for ax, pct in zip(axes, ("p50", "p99"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(rates, [f"{r:,}" for r in rates], rotation=45, fontsize=8)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("calls/s driven by SIPp (6 datagrams per call through the proxy)")
        ax.set_ylabel(f"INVITE -> 180 {pct}, microseconds (load probe)")
        ax.set_title(f"Latency under load, {pct} (x: step not sustained)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"sipguard bench {report.get('started_utc', '')}: {machine.get('nproc', '?')} CPUs"
        f" shared by SIPp, the proxy and the bench; Kamailio {machine.get('kamailio')}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    attack = scenarios.get("attack")
    if attack and attack.get("runs"):
        _plot_attack(attack, path.with_name(path.stem + "-attack.png"))
    return path


def _plot_attack(data: Mapping[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    runs = data["runs"]
    labels = [f"{r['kind']}\n{r['multiplier']}x" if r["multiplier"] else "none" for r in runs]
    targets = list(data["targets"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    width = 0.8 / max(1, len(targets))
    order = [lab for i, lab in enumerate(labels) if lab not in labels[:i]]
    for offset, mode in enumerate(targets):
        mine = [(labels[i], r) for i, r in enumerate(runs) if r["mode"] == mode]
        xs = [order.index(lab) + offset * width for lab, _ in mine]
        colour = COLOURS.get(mode, "black")
        axes[0].bar(xs, [100 * r["success_rate"] for _, r in mine], width, color=colour, label=mode)
        axes[1].bar(
            xs,
            [r["probe_ringing_us"].get("p99") or 0 for _, r in mine],
            width,
            color=colour,
            label=mode,
        )
        axes[2].bar(xs, [r["proxy_cpu_pct"] or 0 for _, r in mine], width, color=colour, label=mode)
    titles = (
        "legitimate calls completed, %",
        "probe INVITE -> 180 p99, microseconds",
        "proxy CPU, % of one core",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xticks([i + width * (len(targets) - 1) / 2 for i in range(len(order))])
        ax.set_xticklabels(order, fontsize=8)
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylim(min(90.0, *(100 * r["success_rate"] for r in runs)) - 1, 100.5)
    axes[1].set_yscale("log")
    fig.suptitle(
        f"Under attack: {data['legit_cps']} legitimate calls/s, floods at multiples of"
        f" {data['legit_pps']} datagrams/s from {data['sources']} sources",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
