"""Expected outcomes for the published torture messages (shared/sip-torture/*/INDEX.md).

Two tables, keyed by file name:

* `PROXY_OUTCOME`: what sipguard as an inline stateless proxy must do with the message arriving
  from outside over UDP: "forward" (to the upstream), "drop" (silently), or the status code of the
  stateless reply it sends (400, 416, 420, 483, 501, 505). For the responses (unreason, noreason)
  "forward" assumes the response belongs to a request sipguard forwarded, i.e. an end-to-end test
  must first put sipguard's own Via on top; a response that is not sipguard's is dropped anyway.
  The lead reuses this table for the end-to-end tests.
* `PARSER`: what the SIP core does (tests/core/test_torture.py): `Valid(...)` messages parse with
  `strict=True` (parse_message + msg.validate()) and carry the given method, Request-URI, Via
  count, Call-ID and body length; `Invalid(hint, stage)` ones raise SipParseError with that
  status hint, either in parse_message ("parse") or only in msg.validate() ("validate").

Choices where INDEX.md allows either behaviour (documented here, tested in test_torture.py):

* lwsstart, trws, lwsruri (extra/embedded SP in the request line): rejected, 400. A firewall
  that forwards byte-identical messages cannot "accept but not propagate" the defect.
* ltgtruri (`<sip:...>` as Request-URI): rejected, 400 (not a URI: no scheme).
* badaspec (`< sip:... >` in To): rejected, 400 (LWS inside the addr-spec).
* baddn (unquoted `Bell, Alexander` display name): rejected, 400. The archive's copy also lacks
  the final blank line, so parse_message already refuses it; validate() would refuse the display
  name as well (test_accessors.py covers that case on its own).
* baddate (`Date: ... EST`): accepted and forwarded: sipguard never reads Date.
* badbranch (`branch=z9hG4bK` and nothing else): accepted; the proxy's own branch is derived
  from it deterministically, so forwarding is safe.
* inv2543 (RFC 2543 syntax, no Content-Length): accepted over UDP (body = rest of the datagram);
  over TCP the missing Content-Length is a framing error (test_framer.py).
* insuf (no From/To/Call-ID): "drop": INDEX says "ideally 400", but a response without those
  headers cannot be matched by the client, so sipguard does not build one (build_response_raw
  returns None). test (no Via, no CSeq, no SIP-Version): "drop" for the same reason.
* mismatch02 (unknown method, CSeq says INVITE): 501 (the RFC's preference), mismatch01 400.
* bcast, bigcode, scalarlg (responses): dropped, never forwarded.
* RFC 5118 ipv6-bad (`sip:2001:db8::10`): 400; the core never guesses the host/port split.
  parse_message accepts the request line (the scheme is fine); msg.validate() refuses the URI, so
  the proxy must validate a request before it looks at the Request-URI scheme (else it would
  answer 416).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["forward", "drop", 400, 416, 420, 483, 501, 505]


@dataclass(frozen=True, slots=True)
class Valid:
    """A message the core accepts (parse_message(strict=True) succeeds)."""

    method: bytes | None  # None for responses
    uri: bytes | None
    vias: int
    call_id: bytes
    body: int
    status: int | None = None


@dataclass(frozen=True, slots=True)
class Invalid:
    """A message the core refuses: SipParseError with `hint`, raised at `stage`."""

    hint: int
    stage: Literal["parse", "validate"] = "parse"


PROXY_OUTCOME: dict[str, Outcome] = {
    # RFC 4475 3.1.1 valid messages
    "wsinv.sip": "forward",
    "intmeth.sip": "forward",  # unknown method: sipguard forwards everything to the upstream
    "esc01.sip": "forward",
    "escnull.sip": "forward",
    "esc02.sip": "forward",
    "lwsdisp.sip": "forward",
    "longreq.sip": "forward",
    "dblreq.sip": "forward",  # the REGISTER only, without the 450 trailing octets
    "semiuri.sip": "forward",
    "transports.sip": "forward",
    "mpart01.sip": "forward",
    "unreason.sip": "forward",  # a response: only when sipguard's Via is on top
    "noreason.sip": "forward",  # idem
    # RFC 4475 3.1.2 invalid messages
    "badinv01.sip": 400,
    "clerr.sip": 400,
    "ncl.sip": 400,
    "scalar02.sip": 400,
    "scalarlg.sip": "drop",
    "quotbal.sip": 400,
    "ltgtruri.sip": 400,
    "lwsruri.sip": 400,
    "lwsstart.sip": 400,
    "trws.sip": 400,
    "escruri.sip": 400,
    "baddate.sip": "forward",
    "regbadct.sip": 400,
    "badaspec.sip": 400,
    "baddn.sip": 400,
    "badvers.sip": 505,
    "mismatch01.sip": 400,
    "mismatch02.sip": 501,
    "bigcode.sip": "drop",
    # RFC 4475 3.2 - 3.4
    "badbranch.sip": "forward",
    "insuf.sip": "drop",
    "unkscm.sip": 416,
    "novelsc.sip": 416,
    "unksm2.sip": "forward",
    "bext01.sip": 420,
    "invut.sip": "forward",
    "regaut01.sip": "forward",
    "multi01.sip": 400,
    "mcl01.sip": 400,
    "bcast.sip": "drop",
    "zeromf.sip": 483,
    "cparam01.sip": "forward",
    "cparam02.sip": "forward",
    "regescrt.sip": "forward",
    "sdp01.sip": "forward",
    "inv2543.sip": "forward",
    "test.sip": "drop",
    # RFC 5118
    "ipv6-good.sip": "forward",
    "ipv6-bad.sip": 400,
    "port-ambiguous.sip": "forward",
    "port-unambiguous.sip": "forward",
    "via-received-param-with-delim.sip": "forward",
    "via-received-param-no-delim.sip": "forward",
    "ipv6-in-sdp.sip": "forward",
    "mult-ip-in-header.sip": "forward",
    "mult-ip-in-sdp.sip": "forward",
    "ipv4-mapped-ipv6.sip": "forward",
    "ipv6-bug-abnf-3-colons.sip": "forward",
    "ipv6-correct-abnf-2-colons.sip": "forward",
}

RFC5118 = frozenset(
    {
        "ipv6-good.sip",
        "ipv6-bad.sip",
        "port-ambiguous.sip",
        "port-unambiguous.sip",
        "via-received-param-with-delim.sip",
        "via-received-param-no-delim.sip",
        "ipv6-in-sdp.sip",
        "mult-ip-in-header.sip",
        "mult-ip-in-sdp.sip",
        "ipv4-mapped-ipv6.sip",
        "ipv6-bug-abnf-3-colons.sip",
        "ipv6-correct-abnf-2-colons.sip",
    }
)


def folder(name: str) -> str:
    """The sub-folder of shared/sip-torture that holds `name`."""
    return "rfc5118" if name in RFC5118 else "rfc4475"


_H = b"SSG9559905523997077@hlau_4100"

PARSER: dict[str, Valid | Invalid] = {
    # -- RFC 4475 ---------------------------------------------------------------------------------
    "wsinv.sip": Valid(
        b"INVITE",
        b"sip:vivekg@chair-dnrc.example.com;unknownparam",
        3,
        b"wsinv.ndaksdj@192.0.2.1",
        150,
    ),
    "intmeth.sip": Valid(
        b"!interesting-Method0123456789_*+`.%indeed'~",
        b"sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        b"(doesn't-it)@example.com",
        1,
        b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
        0,
    ),
    "esc01.sip": Valid(
        b"INVITE",
        b"sip:sips%3Auser%40example.com@example.net",
        1,
        b"esc01.239409asdfakjkn23onasd0-3234",
        150,
    ),
    "escnull.sip": Valid(
        b"REGISTER", b"sip:example.com", 1, b"escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd", 0
    ),
    "esc02.sip": Valid(
        b"RE%47IST%45R",
        b"sip:registrar.example.com",
        1,
        b"esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
        0,
    ),
    "lwsdisp.sip": Valid(
        b"OPTIONS", b"sip:user@example.com", 1, b"lwsdisp.1234abcd@funky.example.com", 0
    ),
    "longreq.sip": Valid(
        b"INVITE",
        b"sip:user@example.com",
        34,
        b"longreq.one" + b"really" * 20 + b"longcallid",
        150,
    ),
    "dblreq.sip": Valid(
        b"REGISTER", b"sip:example.com", 1, b"dblreq.0ha0isndaksdj99sdfafnl3lk233412", 0
    ),
    "semiuri.sip": Valid(
        b"OPTIONS", b"sip:user;par=u%40example.net@example.com", 1, b"semiuri.0ha0isndaksdj", 0
    ),
    "transports.sip": Valid(
        b"OPTIONS", b"sip:user@example.com", 5, b"transports.kijh4akdnaqjkwendsasfdj", 0
    ),
    "mpart01.sip": Valid(
        b"MESSAGE",
        b"sip:kumiko@example.org",
        1,
        b"3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
        553,
    ),
    "unreason.sip": Valid(None, None, 1, b"unreason.1234ksdfak3j2erwedfsASdf", 154, status=200),
    "noreason.sip": Valid(None, None, 1, b"noreason.asndj203insdf99223ndf", 0, status=100),
    "badinv01.sip": Invalid(400, "validate"),  # `;;,;,,` in Via, `;;;;` in Contact
    "clerr.sip": Invalid(400),  # Content-Length 9999 > body (UDP)
    "ncl.sip": Invalid(400),  # Content-Length -999
    "scalar02.sip": Invalid(400),  # CSeq 36893488147419103232
    "scalarlg.sip": Invalid(400),  # response CSeq 9292394834772304023312
    "quotbal.sip": Invalid(400, "validate"),  # unterminated quoted display name in To
    "ltgtruri.sip": Invalid(400),  # <sip:...> as Request-URI
    "lwsruri.sip": Invalid(400),  # `sip:user@example.com; lr` in the request line
    "lwsstart.sip": Invalid(400),  # double SP in the request line
    "trws.sip": Invalid(400),  # request line ends with two SP
    "escruri.sip": Invalid(400, "validate"),  # ?Route= headers in the Request-URI
    "baddate.sip": Valid(
        b"INVITE", b"sip:user@example.com", 1, b"baddate.239423mnsadf3j23lj42--sedfnm234", 150
    ),
    "regbadct.sip": Invalid(400, "validate"),  # addr-spec Contact with ?headers outside <>
    "badaspec.sip": Invalid(400, "validate"),  # `< sip:... >`
    "baddn.sip": Invalid(400),  # no blank line in the archive copy (and an unquoted `,`)
    "badvers.sip": Invalid(505),  # SIP/7.0
    "mismatch01.sip": Invalid(400),  # OPTIONS vs CSeq INVITE
    "mismatch02.sip": Invalid(501),  # NEWMETHOD vs CSeq INVITE
    "bigcode.sip": Invalid(400),  # status code 4294967301
    "badbranch.sip": Valid(
        b"OPTIONS", b"sip:user@example.com", 1, b"badbranch.sadonfo23i420jv0as0derf3j3n", 0
    ),
    "insuf.sip": Invalid(400),  # no Call-ID, From, To
    "unkscm.sip": Valid(
        b"OPTIONS",
        b"nobodyKnowsThisScheme:totallyopaquecontent",
        1,
        b"unkscm.nasdfasser0q239nwsdfasdkl34",
        0,
    ),
    "novelsc.sip": Valid(
        b"OPTIONS", b"soap.beep://192.0.2.103:3002", 1, b"novelsc.asdfasser0q239nwsdfasdkl34", 0
    ),
    "unksm2.sip": Valid(
        b"REGISTER", b"sip:example.com", 1, b"unksm2.daksdj@hyphenated-host.example.com", 0
    ),
    "bext01.sip": Valid(b"OPTIONS", b"sip:user@example.com", 1, b"bext01.0ha0isndaksdj", 0),
    "invut.sip": Valid(
        b"INVITE", b"sip:user@example.com", 1, b"invut.0ha0isndaksdjadsfij34n23d", 40
    ),
    "regaut01.sip": Valid(b"REGISTER", b"sip:example.com", 1, b"regaut01.0ha0isndaksdj", 0),
    "multi01.sip": Invalid(400),  # two Call-ID, To, From, CSeq, Max-Forwards
    "mcl01.sip": Invalid(400),  # two Content-Length
    "bcast.sip": Valid(None, None, 2, b"bcast.0384840201234ksdfak3j2erwedfsASdf", 154, status=200),
    "zeromf.sip": Valid(
        b"OPTIONS", b"sip:user@example.com", 1, b"zeromf.jfasdlfnm2o2l43r5u0asdfas", 0
    ),
    "cparam01.sip": Valid(
        b"REGISTER", b"sip:example.com", 1, b"cparam01.70710@saturn.example.com", 0
    ),
    "cparam02.sip": Valid(
        b"REGISTER", b"sip:example.com", 1, b"cparam02.70710@saturn.example.com", 0
    ),
    "regescrt.sip": Valid(
        b"REGISTER", b"sip:example.com", 1, b"regescrt.k345asrl3fdbv@192.0.2.1", 0
    ),
    "sdp01.sip": Valid(b"INVITE", b"sip:user@example.com", 1, b"sdp01.ndaksdj9342dasdd", 150),
    "inv2543.sip": Valid(
        b"INVITE", b"sip:UserB@example.com", 1, b"inv2543.1717@ift.client.example.com", 105
    ),
    "test.sip": Invalid(400),  # request line without SIP-Version
    # -- RFC 5118 ---------------------------------------------------------------------------------
    "ipv6-good.sip": Valid(b"REGISTER", b"sip:[2001:db8::10]", 1, _H, 0),
    "ipv6-bad.sip": Invalid(400, "validate"),  # sip:2001:db8::10 without brackets
    "port-ambiguous.sip": Valid(b"REGISTER", b"sip:[2001:db8::10:5070]", 1, _H, 0),
    "port-unambiguous.sip": Valid(b"REGISTER", b"sip:[2001:db8::10]:5070", 1, _H, 0),
    "via-received-param-with-delim.sip": Valid(b"BYE", b"sip:[2001:db8::10]", 1, _H, 0),
    "via-received-param-no-delim.sip": Valid(
        b"OPTIONS", b"sip:[2001:db8::10]", 1, b"SSG95523997077@hlau_4100", 0
    ),
    "ipv6-in-sdp.sip": Valid(b"INVITE", b"sip:user@[2001:db8::10]", 1, _H, 251),
    "mult-ip-in-header.sip": Valid(b"BYE", b"sip:user@host.example.net", 3, b"997077@lau_4100", 0),
    "mult-ip-in-sdp.sip": Valid(b"INVITE", b"sip:user@[2001:db8::10]", 1, _H, 189),
    "ipv4-mapped-ipv6.sip": Valid(b"INVITE", b"sip:user@example.com", 2, _H, 245),
    "ipv6-bug-abnf-3-colons.sip": Valid(
        b"OPTIONS", b"sip:user@[2001:db8:::192.0.2.1]", 1, b"G9559905523997077@hlau_4100", 0
    ),
    "ipv6-correct-abnf-2-colons.sip": Valid(
        b"OPTIONS", b"sip:user@[2001:db8::192.0.2.1]", 1, b"G9559905523997077@hlau_4100", 0
    ),
}
