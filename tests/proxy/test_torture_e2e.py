"""Every RFC 4475 / RFC 5118 torture message through a running sipguard gives its INDEX verdict:
forwarded to the upstream, answered statelessly, or dropped; and the proxy still serves after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sipguard.core.sip import SipRequest, parse_message
from tests.core.torture_cases import PROXY_OUTCOME, folder
from tests.core.torture_paths import checksum_problems, load, torture_dir
from tests.proxy.guard import GuardHandle, policy_text, running_guard
from tests.proxy.stub import UdpPeer

pytestmark = pytest.mark.integration

QUIET = 0.3  # seconds of silence that count as "dropped": a loopback round trip takes < 1 ms


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GuardHandle, UdpPeer, UdpPeer]]:
    assert checksum_problems(torture_dir()) == []
    pbx, phone = UdpPeer(), UdpPeer()
    with running_guard(policy_text(pbx.url), tmp_path_factory.mktemp("torture")) as guard:
        yield guard, pbx, phone
    pbx.close()
    phone.close()


def _as_response_to_us(data: bytes, guard: GuardHandle, phone: UdpPeer) -> bytes:
    """Put sipguard's inside Via and the phone's Via on top of a torture response, so that it is a
    response to a request sipguard forwarded (anything else is dropped: tested elsewhere)."""
    inside = guard.info.inside
    ours = f"Via: SIP/2.0/UDP {inside.host}:{inside.port};branch=z9hG4bKsgtorture\r\n"
    theirs = f"Via: SIP/2.0/UDP 127.0.0.1:{phone.port};branch=z9hG4bKphone\r\n"
    start, _, rest = data.partition(b"\r\n")
    return start + b"\r\n" + (ours + theirs).encode() + rest


@pytest.mark.parametrize("name", sorted(PROXY_OUTCOME))
def test_torture_message_verdict(name: str, setup: tuple[GuardHandle, UdpPeer, UdpPeer]) -> None:
    guard, pbx, phone = setup
    pbx.drain(0.0)
    phone.drain(0.0)
    data = load(folder(name), name)
    expected = PROXY_OUTCOME[name]
    is_response = data.startswith(b"SIP/2.0 ")
    if is_response and expected == "forward":
        pbx.send(
            _as_response_to_us(data, guard, phone), (guard.info.inside.host, guard.info.inside.port)
        )
        got = phone.recv()
        assert got is not None, f"{name}: the response did not come out"
        assert got[0].split(b"\r\n", 1)[0] == data.split(b"\r\n", 1)[0]  # status line untouched
        return
    phone.send(data, guard.outside("udp"))
    if expected == "forward":
        got = pbx.recv()
        assert got is not None, f"{name}: not forwarded"
        forwarded = parse_message(got[0], strict=True)
        original = parse_message(data)
        assert isinstance(forwarded, SipRequest) and isinstance(original, SipRequest)
        assert (forwarded.method_raw, forwarded.call_id()) == (
            original.method_raw,
            original.call_id(),
        )
        assert forwarded.body == original.body
        assert len(forwarded.vias()) == len(original.vias()) + 1
        if name == "dblreq.sip":
            assert b"INVITE" not in got[0], "the trailing octets of the datagram were forwarded"
        assert phone.recv(0.0) is None
    elif expected == "drop":
        assert pbx.recv(QUIET) is None, f"{name}: forwarded"
        assert phone.recv(0.0) is None, f"{name}: answered"
    else:
        got = phone.recv()
        assert got is not None, f"{name}: no {expected} answer"
        assert got[0].startswith(b"SIP/2.0 %d " % expected), got[0][:60]
        assert pbx.recv(0.05) is None, f"{name}: forwarded as well"  # sent before the answer


def test_the_proxy_still_serves_after_all_torture(
    setup: tuple[GuardHandle, UdpPeer, UdpPeer],
) -> None:
    guard, pbx, phone = setup
    pbx.drain(0.0)
    invite = (
        b"OPTIONS sip:pbx@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKafter\r\n"
        % phone.port
        + b"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:pbx@example.com>\r\n"
        b"Call-ID: after-torture\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    phone.send(invite, guard.outside("udp"))
    got = pbx.recv()
    assert got is not None and parse_message(got[0]).call_id() == b"after-torture"
    assert guard.count("outside", "malformed") > 10  # the invalid ones were seen and counted
