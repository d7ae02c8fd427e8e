"""The drill's SIP messages, as bytes: requests of the simulated user agents, digest answers to
challenges, ACKs for failed INVITEs, and the malformed burst (pure)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Leg",
    "ack_for",
    "build_request",
    "malformed_messages",
]


@dataclass(frozen=True, slots=True)
class Leg:
    """Who sends, to where: the attacker's bound address and the target's."""

    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int

    @property
    def dst(self) -> str:
        host = f"[{self.dst_ip}]" if ":" in self.dst_ip else self.dst_ip
        return f"{host}:{self.dst_port}"

    @property
    def src(self) -> str:
        host = f"[{self.src_ip}]" if ":" in self.src_ip else self.src_ip
        return f"{host}:{self.src_port}"


def build_request(
    method: str,
    leg: Leg,
    *,
    user: str | None,
    from_user: str,
    call_id: str,
    cseq: int = 1,
    branch: str,
    tag: str,
    user_agent: str | None,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A complete request from the attacker at `leg.src` to the target. `user`: the Request-URI
    and To user (a REGISTER's Request-URI has none, its To is `user`); a `+` number gets
    `;user=phone`."""
    phone = ";user=phone" if user is not None and user.startswith("+") else ""
    if method == "REGISTER":
        ruri = f"sip:{leg.dst}"
    else:
        ruri = f"sip:{user}@{leg.dst}{phone}" if user else f"sip:{leg.dst}"
    to_user = user or from_user
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {leg.src};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{from_user}@{leg.dst}>;tag={tag}",
        f"To: <sip:{to_user}@{leg.dst}{phone}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:{from_user}@{leg.src}>",
    ]
    if user_agent is not None:
        lines.append(f"User-Agent: {user_agent}")
    if method == "REGISTER":
        lines.append("Expires: 60")
    lines.extend(f"{name}: {value}" for name, value in extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ack_for(invite: bytes, to_header: bytes) -> bytes | None:
    """The ACK of a non-2xx final answer to `invite` (same branch, the answer's To with its
    tag); None when `invite` is not one of ours."""
    head = invite.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    first = head[0].split(b" ")
    if len(first) != 3 or first[0] != b"INVITE":
        return None
    keep = {b"via", b"max-forwards", b"from", b"call-id"}
    out = [b"ACK " + first[1] + b" SIP/2.0"]
    cseq = b"1"
    for line in head[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname in keep:
            out.append(line)
        elif lname == b"cseq":
            cseq = value.strip().split(b" ")[0]
    out.append(b"To: " + to_header)
    out.append(b"CSeq: " + cseq + b" ACK")
    out.append(b"Content-Length: 0")
    return b"\r\n".join(out) + b"\r\n\r\n"


def malformed_messages(leg: Leg, count: int) -> list[bytes]:
    """`count` datagrams that no SIP parser may accept, cycling through kinds of damage:
    binary junk, a request line only, no Via, a bad CSeq, a bad version, a header without a
    colon, a Content-Length beyond the datagram."""
    shapes: list[bytes] = []
    for i in range(count):
        call = f"drill-malformed-{i}@{leg.src_ip}"
        base = [
            f"OPTIONS sip:{leg.dst} SIP/2.0",
            f"Via: SIP/2.0/UDP {leg.src};branch=z9hG4bK-drill-m{i}",
            "Max-Forwards: 70",
            f"From: <sip:drill@{leg.dst}>;tag=m{i}",
            f"To: <sip:drill@{leg.dst}>",
            f"Call-ID: {call}",
            "CSeq: 1 OPTIONS",
        ]
        kind = i % 7
        if kind == 0:
            data = bytes((j * 37 + i * 11) % 256 for j in range(120))
        elif kind == 1:
            data = f"INVITE sip:{leg.dst} SIP/2.0\r\n\r\n".encode()
        elif kind == 2:
            data = _join([line for line in base if not line.startswith("Via")])
        elif kind == 3:
            data = _join([*base[:-1], "CSeq: many OPTIONS"])
        elif kind == 4:
            data = _join([base[0].replace("SIP/2.0", "SIP/7.3"), *base[1:]])
        elif kind == 5:
            data = _join([*base, "this line has no colon"])
        else:
            data = _join([*base, "Content-Length: 900"])
        shapes.append(data)
    return shapes


def _join(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
