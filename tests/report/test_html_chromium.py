"""The HTML report in a real browser: headless Chromium loads the file with no network, the page
logs nothing to its console (no script error, nothing refused by its Content-Security-Policy),
the charts are in the rendered DOM, and a screenshot is kept as a test artefact
(var/test-artifacts/report/)."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Final

import pytest

from sipguard.report import render
from tests.report.chromium import console_messages, load, need_chromium, screenshot
from tests.report.test_aggregate import report

pytestmark = [pytest.mark.peers, pytest.mark.timeout(180)]

ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "report"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def check_in_chromium(html: str, name: str, tmp_path: Path) -> Path:
    """Load, check, screenshot; returns the PNG."""
    binary = need_chromium()
    page_file = ARTIFACTS / f"{name}.html"
    page_file.parent.mkdir(parents=True, exist_ok=True)
    page_file.write_text(html, encoding="utf-8")
    page = load(binary, page_file, tmp_path / "profile-dom")
    assert console_messages(page.log) == []
    dom = page.dom
    charts = re.findall(r'<svg[^>]*class="chart"[^>]*id="([^"]+)"', dom)
    assert {"chart-traffic", "chart-events", "chart-blocked", "chart-countries"} <= set(charts)
    assert len(re.findall(r'<rect class="bar', dom)) >= 10
    assert "<script" not in dom
    png = ARTIFACTS / f"{name}.png"
    png.unlink(missing_ok=True)
    log = screenshot(binary, page_file, png, tmp_path / "profile-shot")
    assert console_messages(log) == []
    data = png.read_bytes()
    assert png_size(data) == (1280, 2000)
    assert len(data) > 30_000  # a rendered page, not a blank one (blank: about 5 KB)
    return png


def test_the_html_report_opens_in_chromium_with_its_charts(tmp_path: Path) -> None:
    check_in_chromium(render(report(), "html"), "synthetic", tmp_path)


def test_the_console_check_does_see_errors(tmp_path: Path) -> None:
    """The negative control: a script error and a refused load do show in the log read."""
    binary = need_chromium()
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><script>throw new Error('boom')</script></body></html>"
    )
    messages = console_messages(load(binary, bad, tmp_path / "profile").log)
    assert any("boom" in m for m in messages)
