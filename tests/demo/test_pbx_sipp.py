"""The toy PBX as SIPp sees it: a real UAC registers and calls with digest authentication."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sipguard.demo.pbx import ToyPbx
from tests.peers.sipp import SippConfig, run

pytestmark = [pytest.mark.integration, pytest.mark.peers]

ACCOUNTS = {"101": "pw-101", "102": "pw-102"}


class PbxThread:
    """The toy PBX on its own event loop in a thread (SIPp runs as a blocking subprocess)."""

    def __init__(self) -> None:
        self.pbx = ToyPbx(ACCOUNTS, ring_time=0.05)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="toy-pbx", daemon=True)

    def _main(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.pbx.start()
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                self.pbx.close()

        asyncio.run(serve())

    def __enter__(self) -> ToyPbx:
        self._thread.start()
        assert self._ready.wait(10), "the toy PBX did not start"
        return self.pbx

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive()


@pytest.fixture
def pbx() -> Iterator[ToyPbx]:
    with PbxThread() as toy:
        yield toy


def test_sipp_registers_with_digest_auth(tmp_path: Path, sipp_bin: str, pbx: ToyPbx) -> None:
    config = SippConfig(
        scenario="register_auth.xml",
        remote=pbx.address,
        service="101",
        auth_password="pw-101",
        calls=1,
        timeout_s=15,
        trace_msg=True,
        label="register",
    )
    result = run(tmp_path, config, binary=sipp_bin)
    assert result.ok, result.describe()
    messages = result.files.messages.read_text()
    assert "SIP/2.0 401 Unauthorized" in messages
    assert "SIP/2.0 200 OK" in messages
    assert pbx.stats.registrations == 1
    assert len(pbx.registered("101")) == 1

    wrong = run(tmp_path, replace(config, auth_password="guess", label="wrong"), binary=sipp_bin)
    assert not wrong.ok and wrong.successful == 0
    assert "SIP/2.0 403 Forbidden" in wrong.files.messages.read_text()
    assert pbx.stats.auth_failures == 1


def test_sipp_calls_through_the_407_challenge(tmp_path: Path, sipp_bin: str, pbx: ToyPbx) -> None:
    config = SippConfig(
        scenario="uac_call_auth.xml",
        remote=pbx.address,
        service="102",
        auth_user="101",
        auth_password="pw-101",
        calls=3,
        rate=20,
        timeout_s=15,
        label="caller",
    )
    result = run(tmp_path, config, binary=sipp_bin)
    assert result.ok, result.describe()
    assert result.successful == 3
    assert (pbx.stats.calls_answered, pbx.stats.calls_ended) == (3, 3)
