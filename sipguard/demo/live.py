"""The demo's running summary: what sipguard forwarded, blocked, banned and alerted, read from its
counters and engine stats (never per message: a few times a second), drawn in place on a terminal
and as plain lines otherwise."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sipguard.engine.engine import Engine
from sipguard.io.counters import Counters

__all__ = ["LiveView", "Snapshot", "count_lines", "format_counts", "parse_counts", "take_snapshot"]

_FORWARD = "forward"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One reading of the numbers the demo shows."""

    elapsed: float
    to_pbx: int  # messages from outside that sipguard forwarded to the PBX
    to_phones: int  # messages from the PBX that sipguard forwarded outward
    blocked: dict[str, int]  # messages not forwarded (dropped, or answered by sipguard), by reason
    bans_issued: dict[str, int]  # by reason
    bans_active: int
    alerts: int  # lines in the alerts file
    registrations: int = 0  # the toy PBX's 200s to REGISTER
    calls: int = 0  # the toy PBX's 200s to INVITE
    stage: str = ""  # what the demo is doing now

    @property
    def blocked_total(self) -> int:
        return sum(self.blocked.values())

    @property
    def bans_total(self) -> int:
        return sum(self.bans_issued.values())


def take_snapshot(
    counters: Counters,
    engine: Engine,
    *,
    elapsed: float,
    alerts_file: Path | None,
    registrations: int = 0,
    calls: int = 0,
    stage: str = "",
) -> Snapshot:
    to_pbx = to_phones = 0
    blocked: Counter[str] = Counter()
    for (side, _kind, action, reason), n in list(counters.messages.items()):
        if action != _FORWARD:
            blocked[reason] += n  # dropped or answered by sipguard itself, either side
        elif side == "outside":
            to_pbx += n
        else:
            to_phones += n
    stats = engine.stats()
    return Snapshot(
        elapsed=elapsed,
        to_pbx=to_pbx,
        to_phones=to_phones,
        blocked=dict(blocked),
        bans_issued=dict(stats.bans_issued),
        bans_active=stats.bans_active,
        alerts=count_lines(alerts_file),
        registrations=registrations,
        calls=calls,
        stage=stage,
    )


def count_lines(path: Path | None) -> int:
    """Complete lines in `path` (0 when it does not exist yet)."""
    if path is None:
        return 0
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(65536), b""))
    except FileNotFoundError:
        return 0


def format_counts(counts: Mapping[str, int]) -> str:
    """`a 3, b 1` sorted by count then name; the inverse of `parse_counts`."""
    items = sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v}" for k, v in items)


def parse_counts(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, number = part.strip().rpartition(" ")
        if name and number.isdigit():
            out[name] = int(number)
    return out


@dataclass(slots=True)
class _Style:
    color: bool

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def bold(self, text: str) -> str:
        return self.paint(text, "1")

    def green(self, text: str) -> str:
        return self.paint(text, "32")

    def red(self, text: str) -> str:
        return self.paint(text, "31")

    def yellow(self, text: str) -> str:
        return self.paint(text, "33")

    def dim(self, text: str) -> str:
        return self.paint(text, "2")


@dataclass(slots=True)
class LiveView:
    """Draws snapshots: in place on a terminal (`tty`), as a plain line when the numbers change
    otherwise. `note` prints a line of its own (drill progress) above the block."""

    out: TextIO
    tty: bool
    color: bool
    _drawn: int = 0
    _last_plain: tuple[object, ...] | None = None
    _last: Snapshot | None = None  # the block on screen (tty)
    _style: _Style = field(init=False)

    def __post_init__(self) -> None:
        self._style = _Style(self.color and self.tty)

    @property
    def style(self) -> _Style:
        return self._style

    def note(self, line: str) -> None:
        self._erase()
        self.out.write(line + "\n")
        self.out.flush()
        if self._last is not None:  # the block stays below the notes, on screen all the time
            self.show(self._last)

    def show(self, snap: Snapshot) -> None:
        if self.tty:
            self._last = snap
            self._erase()
            lines = self.block(snap)
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
            self._drawn = len(lines)
            return
        key = (
            snap.to_pbx,
            snap.to_phones,
            tuple(sorted(snap.blocked.items())),
            tuple(sorted(snap.bans_issued.items())),
            snap.alerts,
            snap.stage,
        )
        if key != self._last_plain:
            self._last_plain = key
            self.out.write(self.plain(snap) + "\n")
            self.out.flush()

    def finish(self) -> None:
        """Leave the last block on screen; later output goes below it."""
        self._drawn = 0
        self._last = None

    def plain(self, snap: Snapshot) -> str:
        blocked = format_counts(snap.blocked)
        return (
            f"[{snap.elapsed:5.1f}s] forwarded {snap.to_pbx + snap.to_phones}"
            f" | blocked {snap.blocked_total}{f' ({blocked})' if blocked else ''}"
            f" | bans {snap.bans_total} | alerts {snap.alerts}"
            f"{f' | {snap.stage}' if snap.stage else ''}"
        )

    def block(self, snap: Snapshot) -> list[str]:
        s = self._style
        blocked = format_counts(snap.blocked) or "-"
        bans = format_counts(snap.bans_issued) or "-"
        return [
            s.bold(f"sipguard demo  {snap.elapsed:5.1f}s  ") + s.dim(snap.stage),
            f"  forwarded   {s.green(f'{snap.to_pbx:>6}')} to the PBX, "
            f"{s.green(str(snap.to_phones))} to the phones"
            f"   (PBX: {snap.registrations} registrations, {snap.calls} calls answered)",
            f"  blocked     {s.red(f'{snap.blocked_total:>6}')}  {blocked}",
            f"  bans        {s.yellow(f'{snap.bans_total:>6}')}  {bans}"
            f"  ({snap.bans_active} active)",
            f"  alerts      {s.yellow(f'{snap.alerts:>6}')}",
        ]

    def _erase(self) -> None:
        if self.tty and self._drawn:
            self.out.write(f"\x1b[{self._drawn}A\x1b[J")
            self._drawn = 0


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)
