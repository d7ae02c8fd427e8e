"""Detection proven against real attackers: SIPVicious and a SIPp office behind one address.

Kamailio (``tests/peers/kamailio.py``) is the PBX, in the mode that leaks which users exist
(``reveal_unknown_users=True``), so that the attacks work when nothing protects it; sipguard runs
in-process (``tests/proxy/guard.py``) with the real ``policies/default.yaml``, of which only the
addresses and the storage are replaced (:func:`policy_from_default`).

The helpers here edit the policy as YAML nodes (``yaml.compose`` / ``yaml.serialize``): scalars
keep their exact text (``NO`` stays Norway, ``1h`` stays a string), only comments are lost.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import pytest
import yaml

from tests.peers.kamailio import EXTENSIONS, KamailioProcess, start_kamailio
from tests.peers.sipp import SippConfig, Transport

__all__ = [
    "ATTACKER_IP",
    "DEFAULT_POLICY",
    "OFFICE_IP",
    "REPLACED_KEYS",
    "SkewedClock",
    "office_wave",
    "policy_from_default",
    "start_attack_pbx",
    "use_clock",
    "user_agent_rules",
    "write_users_csv",
]

DEFAULT_POLICY: Final = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"

# Attackers and the office come from loopback addresses of their own: 127.0.0.1 is sipguard's
# own address (always trusted) and is listed in the default policy's `trusted`.
ATTACKER_IP: Final = "127.0.0.7"
OFFICE_IP: Final = "127.0.0.20"

# Top-level keys that name addresses or files of a real deployment: replaced for a test.
REPLACED_KEYS: Final = ("listen", "upstream", "inside", "storage", "control", "metrics")

_STR: Final = "tag:yaml.org,2002:str"
_SEQ: Final = "tag:yaml.org,2002:seq"
_MAP: Final = "tag:yaml.org,2002:map"


def _scalar(text: str) -> yaml.ScalarNode:
    return yaml.ScalarNode(_STR, text)


def _key(pair: tuple[yaml.Node, yaml.Node]) -> str | None:
    key = pair[0]
    return key.value if isinstance(key, yaml.ScalarNode) else None


def _value(mapping: yaml.Node, name: str) -> yaml.Node | None:
    if not isinstance(mapping, yaml.MappingNode):
        return None
    for pair in mapping.value:
        if _key(pair) == name:
            node: yaml.Node = pair[1]
            return node
    return None


def _root(text: str) -> yaml.MappingNode:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        raise TypeError("a policy is a YAML mapping")
    return root


def _has_user_agent_match(rule: yaml.Node) -> bool:
    return _value(_value(rule, "match") or yaml.MappingNode(_MAP, []), "user_agent") is not None


def user_agent_rules(text: str) -> list[str]:
    """Names (or positions) of the rules in a policy text that match on User-Agent."""
    rules = _value(_root(text), "rules")
    if not isinstance(rules, yaml.SequenceNode):
        return []
    found: list[str] = []
    for index, rule in enumerate(rules.value):
        if _has_user_agent_match(rule):
            name = _value(rule, "name")
            found.append(name.value if isinstance(name, yaml.ScalarNode) else f"#{index}")
    return found


def policy_from_default(
    upstream: str,
    *,
    listen: Sequence[str] = ("udp://127.0.0.1:0",),
    storage: str = "sqlite:sipguard.db",
    drop_user_agent_rules: bool = False,
    base: Path = DEFAULT_POLICY,
) -> str:
    """The text of ``base`` (the shipped default policy) for a test: ``listen``, ``upstream`` and
    ``storage`` replaced (``storage`` relative to the policy file, i.e. the test's tmp dir),
    ``inside``, ``control`` and ``metrics`` removed (ephemeral inside port, control socket next
    to the store). ``drop_user_agent_rules`` removes every rule that matches on User-Agent, so
    that behaviour alone has to stop a scanner. Everything else (limits, bans, detectors) stays
    exactly as shipped."""
    root = _root(base.read_text(encoding="utf-8"))
    kept = [pair for pair in root.value if _key(pair) not in REPLACED_KEYS]
    listen_node = yaml.SequenceNode(_SEQ, [_scalar(url) for url in listen], flow_style=False)
    head: list[tuple[yaml.Node, yaml.Node]] = [
        (_scalar("listen"), listen_node),
        (_scalar("upstream"), _scalar(upstream)),
        (_scalar("storage"), _scalar(storage)),
    ]
    if drop_user_agent_rules:
        rules = _value(root, "rules")
        if isinstance(rules, yaml.SequenceNode):
            rules.value = [rule for rule in rules.value if not _has_user_agent_match(rule)]
            if not rules.value:
                rules.flow_style = True
    root.value = head + kept
    text: str = yaml.serialize(root, Dumper=yaml.SafeDumper, width=100)
    return text


def start_attack_pbx(
    tmp_path: Path, binary: str, *, extra_users: Mapping[str, str] | None = None
) -> KamailioProcess:
    """Kamailio as a PBX that SIPVicious can enumerate and crack: the three numeric
    :data:`~tests.peers.kamailio.EXTENSIONS` (plus ``extra_users``), unknown users answered 404,
    UDP only (SIPVicious speaks nothing else)."""
    return start_kamailio(
        tmp_path,
        tcp=False,
        extra_users={**EXTENSIONS, **(extra_users or {})},
        reveal_unknown_users=True,
        binary=binary,
    )


class SkewedClock:
    """Wall-clock time plus an offset the test moves forward: sipguard's token buckets, windows
    and bans see an outage of ten minutes pass at once, and nothing sleeps."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.calls = 0  # proves that sipguard reads this clock

    def __call__(self) -> float:
        self.calls += 1
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self.offset += seconds


def use_clock(monkeypatch: pytest.MonkeyPatch, clock: SkewedClock) -> None:
    """Make ``tests.proxy.guard.running_guard`` start sipguard with ``clock``."""
    import sipguard.app
    import tests.proxy.guard

    monkeypatch.setattr(
        tests.proxy.guard, "serve", functools.partial(sipguard.app.serve, clock=clock)
    )


def write_users_csv(path: Path, users: Mapping[str, str]) -> Path:
    """A SIPp injection file for ``register_auth_inf.xml``: ``SEQUENTIAL``, then per phone
    ``user;[authentication username=user password=password]`` (``[field0]``, ``[field1]``)."""
    lines = ["SEQUENTIAL"]
    for user, password in users.items():
        for text in (user, password):
            if not text or any(c in text for c in "; ]\r\n"):
                raise ValueError(f"{text!r}: no ';', ']', blanks or newlines in users, passwords")
        lines.append(f"{user};[authentication username={user} password={password}]")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def office_wave(
    guard_address: tuple[str, int],
    users_csv: Path,
    phones: int,
    *,
    rate: float,
    label: str,
    local_ip: str = OFFICE_IP,
    transport: Transport = "un",
    timeout_s: float = 30.0,
    expires: int = 3600,
) -> SippConfig:
    """``phones`` phones behind one address register at once: one SIPp, one call (and, with
    ``-t un``, one socket: a NAT port) per phone, each REGISTER / 401 / REGISTER with digest /
    200, at ``rate`` phones per second."""
    return SippConfig(
        scenario="register_auth_inf.xml",
        remote=guard_address,
        local_ip=local_ip,
        transport=transport,
        calls=phones,
        rate=rate,
        timeout_s=timeout_s,
        keys={"expires": str(expires)},
        label=label,
        extra_args=("-inf", str(users_csv)),
    )
