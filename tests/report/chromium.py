"""Headless Chromium (Debian `chromium`) for the HTML report: the DOM after loading, console
messages, and a screenshot. No network: the file is loaded from disk, every host name resolves
nowhere, and the report's own Content-Security-Policy forbids fetching anything anyway.

Each call starts one Chromium in a session of its own with a fresh profile directory, waits for
it with a hard timeout, and on timeout kills that session (the browser and its helpers) by the
id of the process this module started.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.peers.require import need_binary

__all__ = ["Page", "console_messages", "load", "need_chromium", "screenshot"]

TIMEOUT_S: Final = 60.0
_FLAGS: Final = (
    "--headless=new",
    "--no-sandbox",  # tests may run as root in a container
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)


def need_chromium() -> str:
    return need_binary("chromium")


@dataclass(frozen=True)
class Page:
    dom: str  # the serialised DOM after load (--dump-dom)
    log: str  # Chromium's stderr: console messages appear as "CONSOLE" lines


def _run(binary: str, profile: Path, args: list[str]) -> tuple[str, str]:
    profile.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [binary, *_FLAGS, f"--user-data-dir={profile}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the session this call started, nothing else
        proc.communicate()
        raise
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err[-2000:]}"
    return out, err


def load(binary: str, html_file: Path, profile: Path) -> Page:
    out, err = _run(binary, profile, ["--dump-dom", html_file.resolve().as_uri()])
    return Page(out, err)


def screenshot(
    binary: str, html_file: Path, png: Path, profile: Path, size: tuple[int, int] = (1280, 2000)
) -> str:
    """Save a PNG of the page; returns Chromium's log."""
    png.parent.mkdir(parents=True, exist_ok=True)
    _, err = _run(
        binary,
        profile,
        [
            f"--screenshot={png.resolve()}",
            f"--window-size={size[0]},{size[1]}",
            html_file.resolve().as_uri(),
        ],
    )
    return err


def console_messages(log: str) -> list[str]:
    """The page's console output in Chromium's log: script errors, refused loads (CSP)."""
    return [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
