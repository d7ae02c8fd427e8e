"""SIP messages of one call, as bytes and parsed, for the fraud tests (RFC 5737 addresses only).

`Call("c1")` is a call from account `1001` (a phone at 198.51.100.7) to the PBX at 192.0.2.5; its
methods build the INVITE, the PBX's responses, BYEs from either side and the CANCEL, with the tags,
Call-ID and CSeq a real dialog would have.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipguard.core.sip import SipRequest, SipResponse, parse_message

PBX = b"pbx.example.net"


def parse_request(data: bytes) -> SipRequest:
    msg = parse_message(data, datagram=True, strict=True)
    assert isinstance(msg, SipRequest)
    return msg


def parse_response(data: bytes) -> SipResponse:
    msg = parse_message(data, datagram=True, strict=True)
    assert isinstance(msg, SipResponse)
    return msg


@dataclass
class Call:
    name: str
    to: str = "sip:0201234567@pbx.example.net;user=phone"
    account: str = "1001"
    cseq: int = 1

    @property
    def call_id(self) -> bytes:
        return self.name.encode() + b"@198.51.100.7"

    @property
    def caller_tag(self) -> bytes:
        return b"from-" + self.name.encode()

    @property
    def callee_tag(self) -> bytes:
        return b"to-" + self.name.encode()

    def _uri(self) -> bytes:
        return self.to.encode()

    def invite_bytes(self, *, cseq: int | None = None, to_tag: bool = False) -> bytes:
        seq = self.cseq if cseq is None else cseq
        tag = b";tag=" + self.callee_tag if to_tag else b""
        user = self.account.encode()
        return (
            b"INVITE " + self._uri() + b" SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-" + self.name.encode()
            + b"-%d;rport\r\n" % seq
            + b"Max-Forwards: 70\r\n"
            b"From: <sip:" + user + b"@" + PBX + b">;tag=" + self.caller_tag + b"\r\n"
            b"To: <" + self._uri() + b">" + tag + b"\r\n"
            b"Call-ID: " + self.call_id + b"\r\n"
            b"CSeq: %d INVITE\r\n" % seq
            + b"Contact: <sip:" + user + b"@198.51.100.7:5060>\r\n"
            b"Content-Length: 0\r\n"
            b"\r\n"
        )  # fmt: skip

    def invite(self, *, cseq: int | None = None, to_tag: bool = False) -> SipRequest:
        return parse_request(self.invite_bytes(cseq=cseq, to_tag=to_tag))

    def response(self, status: int, *, cseq: int | None = None) -> SipResponse:
        """The PBX's answer to the INVITE with `cseq` (default: the call's)."""
        seq = self.cseq if cseq is None else cseq
        tag = b";tag=" + self.callee_tag if status > 100 else b""
        user = self.account.encode()
        data = (
            b"SIP/2.0 %d Whatever\r\n" % status
            + b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-" + self.name.encode()
            + b"-%d;rport=5060\r\n" % seq
            + b"From: <sip:" + user + b"@" + PBX + b">;tag=" + self.caller_tag + b"\r\n"
            b"To: <" + self._uri() + b">" + tag + b"\r\n"
            b"Call-ID: " + self.call_id + b"\r\n"
            b"CSeq: %d INVITE\r\n" % seq
            + b"Content-Length: 0\r\n"
            b"\r\n"
        )  # fmt: skip
        return parse_response(data)

    def bye(self, *, from_callee: bool = False, cseq: int = 2) -> SipRequest:
        """A BYE from the caller (From is the caller) or from the callee (From and To swap)."""
        user = self.account.encode()
        caller = b"<sip:" + user + b"@" + PBX + b">;tag=" + self.caller_tag
        callee = b"<" + self._uri() + b">;tag=" + self.callee_tag
        src, dst = (callee, caller) if from_callee else (caller, callee)
        data = (
            b"BYE sip:" + user + b"@198.51.100.7:5060 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK-bye-" + self.name.encode() + b"\r\n"
            b"Max-Forwards: 70\r\n"
            b"From: " + src + b"\r\n"
            b"To: " + dst + b"\r\n"
            b"Call-ID: " + self.call_id + b"\r\n"
            b"CSeq: %d BYE\r\n" % cseq
            + b"Content-Length: 0\r\n"
            b"\r\n"
        )  # fmt: skip
        return parse_request(data)

    def cancel(self) -> SipRequest:
        user = self.account.encode()
        data = (
            b"CANCEL " + self._uri() + b" SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-" + self.name.encode()
            + b"-%d;rport\r\n" % self.cseq
            + b"Max-Forwards: 70\r\n"
            b"From: <sip:" + user + b"@" + PBX + b">;tag=" + self.caller_tag + b"\r\n"
            b"To: <" + self._uri() + b">\r\n"
            b"Call-ID: " + self.call_id + b"\r\n"
            b"CSeq: %d CANCEL\r\n" % self.cseq
            + b"Content-Length: 0\r\n"
            b"\r\n"
        )  # fmt: skip
        return parse_request(data)
