"""Where the published torture messages are (shared/sip-torture), and their checksums.

The folder is `../shared/sip-torture` relative to the repository root, or $SIPGUARD_TORTURE_DIR.
A missing folder or a checksum mismatch fails the tests: it must never turn into a skip.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

# (sub-folder, checksum file): rfc5118's WIRE_SHA256SUMS covers the *.sip wire forms
SUM_FILES = (("rfc4475", "SHA256SUMS"), ("rfc5118", "WIRE_SHA256SUMS"))


def torture_dir() -> Path:
    """The torture folder; fails the calling test when it does not exist."""
    env = os.environ.get("SIPGUARD_TORTURE_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "sip-torture"
    if not (path / "rfc4475").is_dir() or not (path / "rfc5118").is_dir():
        pytest.fail(f"torture messages not found at {path} (set SIPGUARD_TORTURE_DIR)")
    return path


def checksum_problems(base: Path) -> list[str]:
    """Every file listed in the checksum files whose SHA-256 differs (or that is missing)."""
    problems: list[str] = []
    for folder, sums in SUM_FILES:
        listing = (base / folder / sums).read_text(encoding="ascii")
        for line in listing.splitlines():
            if not line.strip():
                continue
            digest, name = line.split(maxsplit=1)
            path = base / folder / name.lstrip("*")
            if not path.is_file():
                problems.append(f"{folder}/{name}: missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                problems.append(f"{folder}/{name}: SHA-256 mismatch")
    return problems


def message_names(folder: str) -> list[str]:
    """The *.sip files listed in a folder's checksum file (the set the RFC publishes)."""
    sums = dict(SUM_FILES)[folder]
    path = Path(__file__).resolve().parents[3] / "shared" / "sip-torture"
    env = os.environ.get("SIPGUARD_TORTURE_DIR")
    listing = (Path(env) if env else path) / folder / sums
    if not listing.is_file():
        return []  # test_checksums fails loudly in that case
    names = [ln.split(maxsplit=1)[1].lstrip("*") for ln in listing.read_text().splitlines() if ln]
    return sorted(n for n in names if n.endswith(".sip"))


def load(folder: str, name: str) -> bytes:
    """The bytes of one torture message (binary: never decoded or re-encoded)."""
    return (torture_dir() / folder / name).read_bytes()
