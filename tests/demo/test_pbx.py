"""The demo's toy PBX: digest auth and registrar behaviour over real loopback sockets."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncio_dgram
import pytest
import pytest_asyncio

from sipguard.core.sip import Hdr, SipResponse, parse_message
from sipguard.core.sip.digest import (
    DigestResponse,
    authorization,
    expected_response,
    parse_challenge,
    parse_digest,
    verify,
)
from sipguard.demo.pbx import REALM, ToyPbx
from sipguard.demo.phones import Phone

pytestmark = pytest.mark.integration

ACCOUNTS = {"101": "pw-101", "102": "pw-102"}
CLIENT = "127.0.1.201"
WAIT = 2.0


# ---- digest, pure ----------------------------------------------------------------------------


def test_the_rfc_2617_example_digest() -> None:
    # RFC 2617 section 3.5 (with the errata: the response below is the correct one)
    assert (
        expected_response(
            username="Mufasa",
            realm="testrealm@host.com",
            password="Circle Of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_parse_digest_reads_quoted_and_token_values() -> None:
    params = parse_digest(b'Digest realm="a \\"b\\"", nonce="n1", algorithm=MD5, qop="auth"')
    assert params == {"realm": 'a "b"', "nonce": "n1", "algorithm": "MD5", "qop": "auth"}
    assert parse_digest(b"Basic dXNlcjpwdw==") is None
    assert parse_digest(b'Digest realm="unterminated') is None


def test_an_answer_made_by_authorization_verifies_and_a_wrong_password_does_not() -> None:
    offer = parse_challenge(b'Digest realm="r", nonce="abc", algorithm=MD5, qop="auth"')
    assert offer is not None and offer.qop == "auth"
    value = authorization(
        offer, username="101", password="pw", method="REGISTER", uri="sip:x", cnonce="c1"
    )
    answer = DigestResponse.parse(value)
    assert answer is not None
    assert verify(answer, "pw", "REGISTER")
    assert not verify(answer, "pw2", "REGISTER")
    assert not verify(answer, "pw", "INVITE")  # the method is part of the digest


# ---- the PBX over loopback -------------------------------------------------------------------


class Client:
    """A bare UDP client: sends requests as text, returns the PBX's answers."""

    def __init__(self, stream: asyncio_dgram.aio.DatagramServer, pbx: tuple[str, int]) -> None:
        self.stream = stream
        self.pbx = pbx
        self.port = int(stream.sockname[1])

    def request(
        self,
        method: str,
        user: str | None = "101",
        *,
        to_user: str | None = None,
        from_user: str = "101",
        call_id: str | None = None,
        cseq: int = 1,
        branch: str | None = None,
        headers: tuple[str, ...] = (),
        to_tag: str | None = None,
    ) -> bytes:
        uri = f"sip:{user}@127.0.0.1" if user else "sip:127.0.0.1"
        branch = branch or "z9hG4bK" + secrets.token_hex(6)
        to_uri = f"sip:{to_user or user or from_user}@127.0.0.1"
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {CLIENT}:{self.port};branch={branch}",
            "Max-Forwards: 70",
            f"From: <sip:{from_user}@127.0.0.1>;tag=f{cseq}",
            f"To: <{to_uri}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {call_id or secrets.token_hex(6)}",
            f"CSeq: {cseq} {method}",
            *headers,
            "Content-Length: 0",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def send(self, data: bytes) -> None:
        await self.stream.send(data, self.pbx)

    async def answer(self, wait: float = WAIT) -> SipResponse:
        async with asyncio.timeout(wait):
            data, _ = await self.stream.recv()
        msg = parse_message(data)
        assert isinstance(msg, SipResponse)
        return msg

    async def final(self, data: bytes) -> list[SipResponse]:
        """Send `data`; every answer up to and including the final one."""
        await self.send(data)
        got = [await self.answer()]
        while got[-1].status < 200:
            got.append(await self.answer(WAIT + 1))
        return got

    async def nothing(self, wait: float = 0.3) -> bool:
        try:
            await self.answer(wait)
        except TimeoutError:
            return True
        return False


@pytest_asyncio.fixture
async def pbx() -> AsyncIterator[ToyPbx]:
    toy = ToyPbx(ACCOUNTS, ring_time=0.05)
    await toy.start()
    try:
        yield toy
    finally:
        toy.close()


@pytest_asyncio.fixture
async def client(pbx: ToyPbx) -> AsyncIterator[Client]:
    stream = await asyncio_dgram.bind((CLIENT, 0))
    try:
        yield Client(stream, pbx.address)
    finally:
        stream.close()


def credentials(
    answer: SipResponse, method: str, *, user: str = "101", password: str = "pw-101"
) -> str:
    header = Hdr.WWW_AUTHENTICATE if answer.status == 401 else Hdr.PROXY_AUTHENTICATE
    offer = parse_challenge(answer.get(header) or b"")
    assert offer is not None
    value = authorization(
        offer, username=user, password=password, method=method, uri="sip:127.0.0.1", cnonce="cn"
    )
    name = "Authorization" if answer.status == 401 else "Proxy-Authorization"
    return f"{name}: {value.decode()}"


async def registered(client: Client, *, contact: str, expires: int = 300) -> SipResponse:
    headers = (f"Contact: <{contact}>", f"Expires: {expires}")
    [challenge] = await client.final(
        client.request("REGISTER", None, to_user="101", headers=headers)
    )
    assert challenge.status == 401
    auth = credentials(challenge, "REGISTER")
    [ok] = await client.final(
        client.request("REGISTER", None, to_user="101", cseq=2, headers=(*headers, auth))
    )
    return ok


@pytest.mark.asyncio
async def test_register_is_challenged_then_accepted_with_the_binding(
    pbx: ToyPbx, client: Client
) -> None:
    contact = f"sip:101@{CLIENT}:{client.port}"
    [challenge] = await client.final(
        client.request("REGISTER", None, to_user="101", headers=(f"Contact: <{contact}>",))
    )
    assert challenge.status == 401
    offer = parse_challenge(challenge.get(Hdr.WWW_AUTHENTICATE) or b"")
    assert offer is not None and offer.realm == REALM and offer.qop == "auth"
    assert challenge.to_addr().tag  # a final answer carries a To tag

    ok = await registered(client, contact=contact, expires=300)
    assert ok.status == 200
    [binding] = ok.contacts()
    assert binding.uri == contact.encode()
    assert binding.param(b"expires") == b"300"
    assert pbx.registered("101") == [contact.encode()]
    assert pbx.stats.registrations == 1 and pbx.stats.challenges == 2


@pytest.mark.asyncio
async def test_expires_zero_removes_the_binding(pbx: ToyPbx, client: Client) -> None:
    contact = f"sip:101@{CLIENT}:{client.port}"
    assert (await registered(client, contact=contact)).status == 200
    ok = await registered(client, contact=contact, expires=0)
    assert ok.status == 200 and ok.contacts() == []
    assert pbx.registered("101") == []


@pytest.mark.asyncio
async def test_a_wrong_password_is_403_and_a_made_up_nonce_a_stale_401(
    pbx: ToyPbx, client: Client
) -> None:
    [challenge] = await client.final(client.request("REGISTER", None, to_user="101"))
    wrong = credentials(challenge, "REGISTER", password="guess")
    [refused] = await client.final(
        client.request("REGISTER", None, to_user="101", cseq=2, headers=(wrong,))
    )
    assert refused.status == 403
    offer = parse_challenge(challenge.get(Hdr.WWW_AUTHENTICATE) or b"")
    assert offer is not None
    made_up = wrong.replace(offer.nonce, "0" * len(offer.nonce))
    [stale] = await client.final(
        client.request("REGISTER", None, to_user="101", cseq=3, headers=(made_up,))
    )
    assert stale.status == 401
    offer = parse_challenge(stale.get(Hdr.WWW_AUTHENTICATE) or b"")
    assert offer is not None and offer.stale
    assert pbx.stats.auth_failures == 2
    assert pbx.registered("101") == []


@pytest.mark.asyncio
async def test_credentials_of_another_account_do_not_register_this_one(client: Client) -> None:
    [challenge] = await client.final(client.request("REGISTER", None, to_user="101"))
    other = credentials(challenge, "REGISTER", user="102", password="pw-102")
    [refused] = await client.final(
        client.request("REGISTER", None, to_user="101", cseq=2, headers=(other,))
    )
    assert refused.status == 403


@pytest.mark.asyncio
async def test_unknown_users_are_404_without_credentials_and_403_with(
    pbx: ToyPbx, client: Client
) -> None:
    [nobody] = await client.final(client.request("REGISTER", None, to_user="999"))
    assert nobody.status == 404  # what an enumeration sweep hears
    [challenge] = await client.final(client.request("REGISTER", None, to_user="101"))
    guess = credentials(challenge, "REGISTER", user="999", password="x")
    [refused] = await client.final(
        client.request("REGISTER", None, to_user="999", cseq=2, headers=(guess,))
    )
    assert refused.status == 403  # what a brute force hears
    [options] = await client.final(client.request("OPTIONS", "999"))
    assert options.status == 404
    [options] = await client.final(client.request("OPTIONS", "101"))
    assert options.status == 200
    assert pbx.stats.not_found == 2


@pytest.mark.asyncio
async def test_a_retransmission_gets_the_same_answer(pbx: ToyPbx, client: Client) -> None:
    data = client.request("REGISTER", None, to_user="101", branch="z9hG4bKsame")
    [first] = await client.final(data)
    [again] = await client.final(data)
    assert again.raw == first.raw
    assert pbx.stats.challenges == 1


@pytest.mark.asyncio
async def test_a_call_is_challenged_with_407_then_rings_and_is_answered(
    pbx: ToyPbx, client: Client
) -> None:
    call = "call-1"
    [challenge] = await client.final(client.request("INVITE", "102", call_id=call))
    assert challenge.status == 407
    assert challenge.get(Hdr.PROXY_AUTHENTICATE) is not None
    await client.send(client.request("ACK", "102", call_id=call, to_tag="x"))
    auth = credentials(challenge, "INVITE")
    rr = "Record-Route: <sip:127.0.0.1:5999;lr>"
    answers = await client.final(
        client.request("INVITE", "102", call_id=call, cseq=2, headers=(auth, rr))
    )
    assert [a.status for a in answers] == [100, 180, 200]
    ok = answers[-1]
    assert ok.get(Hdr.RECORD_ROUTE) == b"<sip:127.0.0.1:5999;lr>"
    assert ok.contacts() and ok.body.startswith(b"v=0")
    assert ok.to_addr().tag == answers[1].to_addr().tag  # one dialog
    tag = (ok.to_addr().tag or b"").decode()
    await client.send(client.request("ACK", "102", call_id=call, cseq=2, to_tag=tag))
    assert await client.nothing()  # ACK is never answered
    [bye] = await client.final(client.request("BYE", "102", call_id=call, cseq=3, to_tag=tag))
    assert bye.status == 200
    [again] = await client.final(client.request("BYE", "102", call_id=call, cseq=4, to_tag=tag))
    assert again.status == 481  # the call is over
    assert (pbx.stats.calls_answered, pbx.stats.calls_ended) == (1, 1)


@pytest.mark.asyncio
async def test_cancel_stops_the_ringing_with_487(client: Client) -> None:
    slow = ToyPbx(ACCOUNTS, ring_time=5.0)
    await slow.start()
    try:
        client.pbx = slow.address
        [challenge] = await client.final(client.request("INVITE", "102", call_id="c2"))
        auth = credentials(challenge, "INVITE")
        invite = client.request(
            "INVITE", "102", call_id="c2", cseq=2, branch="z9hG4bKring", headers=(auth,)
        )
        await client.send(invite)
        assert [(await client.answer()).status for _ in range(2)] == [100, 180]
        await client.send(
            client.request("CANCEL", "102", call_id="c2", cseq=2, branch="z9hG4bKring")
        )
        got = sorted([(await client.answer()).status for _ in range(2)])
        assert got == [200, 487]
        [late] = await client.final(
            client.request("CANCEL", "102", call_id="c9", cseq=1, branch="z9hG4bKnone")
        )
        assert late.status == 481
    finally:
        slow.close()


@pytest.mark.asyncio
async def test_unknown_extensions_and_methods(client: Client) -> None:
    [missing] = await client.final(client.request("INVITE", "555"))
    assert missing.status == 404
    [outside] = await client.final(client.request("INVITE", "0201234567"))
    assert outside.status == 407  # a number goes "out": the caller must log in first
    [message] = await client.final(client.request("MESSAGE", "102"))
    assert message.status == 405 and message.get(Hdr.ALLOW) is not None


@pytest.mark.asyncio
async def test_garbage_is_ignored(client: Client) -> None:
    await client.send(b"\x00\x01 not sip at all\r\n\r\n")
    assert await client.nothing()


@pytest.mark.asyncio
async def test_a_demo_phone_registers_and_calls(pbx: ToyPbx) -> None:
    async with Phone("101", "pw-101", ip=CLIENT, proxy=pbx.address) as phone:
        assert await phone.register() == 200
        call = await phone.call("102", talk=0.0)
        assert call.answered and call.ended
        assert call.statuses == [407, 200, 200]
        phone.password = "wrong"
        assert await phone.register() == 403
    assert pbx.stats.calls_ended == 1
