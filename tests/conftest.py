"""Shared fixtures. The real-peer helpers live in tests/peers/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.kamailio import KamailioProcess, start_kamailio
from tests.peers.require import need_binary


@pytest.fixture
def sipp_bin() -> str:
    """Path of sipp; skips the test (fails under SIPGUARD_REQUIRE_PEERS=1) when missing."""
    return need_binary("sipp")


@pytest.fixture
def kamailio_bin() -> str:
    """Path of kamailio; skips the test (fails under SIPGUARD_REQUIRE_PEERS=1) when missing."""
    return need_binary("kamailio")


@pytest.fixture
def kamailio_pbx(kamailio_bin: str, tmp_path: Path) -> Iterator[KamailioProcess]:
    """The test PBX (registrar with digest auth, users alice/bob/carol) on a free loopback port,
    UDP and TCP; stopped at teardown even when the test fails."""
    pbx = start_kamailio(tmp_path, binary=kamailio_bin)
    try:
        yield pbx
    finally:
        pbx.stop()
