"""The demo's running summary: drawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import io

from sipguard.demo.live import LiveView, Snapshot, format_counts, parse_counts


def snap(blocked: int = 0, stage: str = "") -> Snapshot:
    return Snapshot(
        elapsed=1.5,
        to_pbx=10,
        to_phones=9,
        blocked={"banned": blocked, "rule": 1} if blocked else {},
        bans_issued={"rule": 1},
        bans_active=1,
        alerts=2,
        stage=stage,
    )


def test_counts_are_printed_largest_first_and_read_back() -> None:
    counts = {"rule": 1, "banned": 88, "malformed": 60, "zero": 0}
    text = format_counts(counts)
    assert text == "banned 88, malformed 60, rule 1"
    assert parse_counts(text) == {"banned": 88, "malformed": 60, "rule": 1}
    assert parse_counts("") == {}


def test_on_a_terminal_the_block_is_redrawn_in_place_below_the_notes() -> None:
    out = io.StringIO()
    view = LiveView(out, tty=True, color=True)
    view.show(snap())
    view.note("a note")
    view.show(snap(blocked=5))
    text = out.getvalue()
    block = len(view.block(snap()))
    assert text.count(f"\x1b[{block}A\x1b[J") == 2  # erased before the note and before the redraw
    assert text.index("a note") < text.rindex("blocked")
    assert "\x1b[31m" in text  # red for blocked
    view.finish()
    view.note("after")
    assert out.getvalue().endswith("after\n")  # no block drawn again after finish


def test_plain_output_is_one_line_per_change_without_colour() -> None:
    out = io.StringIO()
    view = LiveView(out, tty=False, color=True)
    view.show(snap())
    view.show(snap())  # nothing changed: nothing printed
    view.show(snap(blocked=3, stage="drill 1/12 scanner-ua"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "\x1b[" not in out.getvalue()
    assert lines[1] == (
        "[  1.5s] forwarded 19 | blocked 4 (banned 3, rule 1) | bans 1 | alerts 2"
        " | drill 1/12 scanner-ua"
    )
