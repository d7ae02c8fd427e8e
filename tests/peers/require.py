"""Find the binary of a real SIP peer, or skip (or fail) the test that needs it.

A test that needs SIPp, Kamailio or SIPVicious calls :func:`need_binary`. When the binary is
missing the test is skipped, unless the environment variable ``SIPGUARD_REQUIRE_PEERS`` is ``1``
(CI sets it after installing the peers): then the test fails, so a broken install cannot pass as
a row of skips.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Final

import pytest

__all__ = ["INSTALL_HINTS", "REQUIRE_PEERS_ENV", "need_binary", "peers_required"]

REQUIRE_PEERS_ENV: Final = "SIPGUARD_REQUIRE_PEERS"

INSTALL_HINTS: Final[dict[str, str]] = {
    "sipp": "apt-get install -y sip-tester",
    "kamailio": "apt-get install -y kamailio",
    "sipvicious_svmap": "pip install -e .[dev]  (PyPI sipvicious)",
    "sipvicious_svwar": "pip install -e .[dev]  (PyPI sipvicious)",
    "sipvicious_svcrack": "pip install -e .[dev]  (PyPI sipvicious)",
    "chromium": "apt-get install -y chromium  (opens the HTML report)",
}

# kamailio lives in sbin, which is not on every user's PATH; console scripts of the venv are
# not on PATH when pytest runs as `.venv/bin/python -m pytest` without activating the venv.
_EXTRA_DIRS: Final = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def peers_required() -> bool:
    """True when a missing peer must fail the test instead of skipping it."""
    return os.environ.get(REQUIRE_PEERS_ENV, "").strip() == "1"


def _find(name: str) -> str | None:
    found = shutil.which(name)
    if found is not None:
        return found
    extra = os.pathsep.join([str(Path(sys.executable).parent), *_EXTRA_DIRS])
    return shutil.which(name, path=extra)


def need_binary(name: str) -> str:
    """Return the path of executable ``name``; skip the test (or fail it) when it is missing."""
    path = _find(name)
    if path is not None:
        return path
    hint = INSTALL_HINTS.get(name, "install it")
    message = f"{name!r} not found on PATH ({hint})"
    if peers_required():
        pytest.fail(f"{message}; {REQUIRE_PEERS_ENV}=1 demands every peer", pytrace=False)
    pytest.skip(message)
