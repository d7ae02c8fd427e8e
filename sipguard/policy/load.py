"""Policy YAML -> `Policy`, read from the node tree so every issue has a `file:line:col`.

`yaml.compose()` gives nodes with positions and the raw scalar text; nothing is ever resolved by
YAML 1.1 (`NO` stays Norway, `1:30` stays a string, `0755` is not octal). A small `_Reader` walks
the nodes: its converters record an issue and return None instead of raising, so one pass reports
every problem. Duplicate keys, unknown keys (with a "did you mean"), wrong types, bad values and
rules that can never match are all errors; `PolicyError` carries them all. Only
`load_policy_file` touches the file system.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.reader import ReaderError

from sipguard.policy.countries import COUNTRY_CODES, country_hint
from sipguard.policy.errors import Location, PolicyError, PolicyIssue
from sipguard.policy.model import (
    BUILTIN_GEO,
    DEFAULT_LISTEN,
    DEFAULT_STORAGE_PATH,
    SIP_METHODS,
    AccountAction,
    AuthSpec,
    BanSpec,
    CountryMatch,
    Destinations,
    Endpoint,
    EnumerationAction,
    EnumerationPolicy,
    Exceed,
    FileSink,
    FraudAction,
    FraudPerAccount,
    FraudSpec,
    GeoSpec,
    KnownSources,
    Limits,
    LimitSpec,
    LoginCheck,
    LoginPolicy,
    Match,
    Network,
    NetworkMatch,
    NumberType,
    PerAccountAuth,
    Policy,
    QuietHours,
    Rate,
    Records,
    Rule,
    RuleAction,
    Severity,
    Spikes,
    SyslogFormat,
    SyslogSink,
    Transport,
    UnknownCountry,
    WebhookSink,
    yaml_keys,
)
from sipguard.policy.units import (
    format_duration,
    parse_advertise,
    parse_clock,
    parse_digits,
    parse_duration,
    parse_endpoint,
    parse_host_port,
    parse_http_url,
    parse_network,
    parse_rate,
    parse_rule_name,
    parse_storage,
    parse_timezone,
    suggest,
)

__all__ = ["load_policy_file", "load_policy_text"]

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)
Node = yaml.Node
Converter = Callable[[Node], Any]

#: Longest Unix socket path (sun_path is 108 bytes on Linux, with the trailing NUL).
MAX_SOCKET_PATH = 107
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLEANS = ("true", "false")
_INT = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_MERGE_TAG = "tag:yaml.org,2002:merge"
NEVER = "empty list: the rule can never match"
_NO_DESTINATION = "empty list: no call could go anywhere (leave out 'allow' to allow all)"


# ---------------------------------------------------------------------------------- entry points


def load_policy_file(path: str | Path) -> Policy:
    """Read and validate a policy file. Raises `PolicyError` with every issue (also when the file
    cannot be read or is not UTF-8)."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError([_issue(name, 1, 1, f"cannot read: {exc.strerror or exc}")]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PolicyError([_issue(name, line, col, "not UTF-8 text")]) from exc
    return load_policy_text(text, name, base_dir=os.path.dirname(os.path.abspath(name)))


def load_policy_text(text: str, path: str = "<policy>", *, base_dir: str | None = None) -> Policy:
    """Validate policy text. `path` names it in messages; relative paths in it resolve against
    `base_dir` (default: the directory part of `path`). Raises `PolicyError` with every issue."""
    if base_dir is None:
        base_dir = "" if path.startswith("<") else os.path.dirname(path)
    reader = _Reader(path, base_dir)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise PolicyError([_syntax_issue(path, exc)]) from None
    except RecursionError:
        raise PolicyError([_issue(path, 1, 1, "nested too deeply")]) from None
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        message = f"unacceptable character #x{ord(char):04x}: {exc.reason}"
        raise PolicyError([_issue(path, line, col, message)]) from None
    if root is None:
        raise PolicyError([_issue(path, 1, 1, "empty policy: 'upstream' is required")])
    policy = _policy(reader, root, hashlib.sha256(text.encode("utf-8")).hexdigest())
    if reader.issues or policy is None:
        raise PolicyError(reader.unique_issues())
    return policy


def _issue(path: str, line: int, col: int, message: str) -> PolicyIssue:
    return PolicyIssue(Location(path, line, col), message)


def _syntax_issue(path: str, exc: yaml.MarkedYAMLError) -> PolicyIssue:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    message = exc.problem or exc.context or "yaml syntax error"
    if exc.problem and exc.context:
        ctx = exc.context_mark
        where = f" at {ctx.line + 1}:{ctx.column + 1}" if ctx is not None else ""
        message = f"{exc.problem} ({exc.context}{where})"
    return _issue(path, line, col, message)


# ---------------------------------------------------------------------------------------- reader


def _describe(node: Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if _is_null(node):
        return "nothing"
    return f"{node.value!r}"


def _is_null(node: Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.style is None and node.value in _NULLS


class _Reader:
    """Walks composed YAML nodes. Every converter records an issue and returns None on bad input."""

    def __init__(self, file: str, base_dir: str) -> None:
        self.file = file
        self.base_dir = base_dir
        self.issues: list[PolicyIssue] = []

    # -- issues

    def loc(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)

    def at(self, node: Node) -> str:
        """`line:col` of a node, for messages that point at a second place."""
        mark = node.start_mark
        return f"{mark.line + 1}:{mark.column + 1}"

    def error(self, node: Node, message: str) -> None:
        self.issues.append(PolicyIssue(self.loc(node), message))

    def unique_issues(self) -> list[PolicyIssue]:
        """Issues without repeats (a node reached twice through YAML aliases reports once)."""
        return list(dict.fromkeys(self.issues))

    def convert(self, node: Node, parse: Callable[[str], T]) -> T | None:
        """Run a text grammar over a scalar; its `ValueError` becomes an issue at the node."""
        text = self.scalar_str(node)
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            self.error(node, str(exc))
            return None

    # -- structure

    def mapping(
        self, node: Node, allowed: Collection[str], *, known: str = ""
    ) -> dict[str, Node] | None:
        """A mapping's key -> value nodes. Flags non-mappings, duplicate and unknown keys (with a
        suggestion); the value of a flagged key is left out."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"expected a mapping, got {_describe(node)}")
            return None
        out: dict[str, Node] = {}
        first: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self.error(key_node, "merge keys ('<<') are not supported")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, "keys must be strings")
                continue
            key = key_node.value
            if key in first:
                self.error(key_node, f"duplicate key {key!r}")  # the words of STYLE.md C14
                continue
            first[key] = key_node
            if key not in allowed:
                hint = suggest(key, allowed)
                tail = f" (did you mean {hint!r}?)" if hint else f" ({known})" if known else ""
                self.error(key_node, f"unknown key {key!r}{tail}")
                continue
            out[key] = value_node
        return out

    def fields(
        self, node: Node, cls: type[Any], converters: Mapping[str, Converter], *, known: str = ""
    ) -> tuple[dict[str, Any], dict[str, Node]] | None:
        """Read a section into keyword arguments for `cls`. `converters` is keyed by YAML key and
        must cover exactly the keys `cls` declares. Returns (kwargs by field name, value nodes by
        YAML key); a value that did not convert is left out, so the dataclass default applies."""
        keys = yaml_keys(cls)
        assert set(converters) == set(keys), (cls, set(converters) ^ set(keys))
        nodes = self.mapping(node, keys, known=known)
        if nodes is None:
            return None
        kwargs: dict[str, Any] = {}
        for key, value_node in nodes.items():
            value = converters[key](value_node)
            if value is not None:
                kwargs[keys[key]] = value
        return kwargs, nodes

    def require(self, node: Node, nodes: Mapping[str, Node], *keys: str) -> bool:
        """Flag missing required keys at the mapping; True when all are present. A key that is
        there but was flagged (a duplicate, or a misspelling of it) is not reported again."""
        written = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
        if any(k.tag == _MERGE_TAG for k, _ in node.value):
            written.extend(keys)  # a merge key was flagged: what it held is unknown
        ok = True
        for key in keys:
            if key in nodes:
                continue
            ok = False
            if not any(w == key or suggest(w, [key]) == key for w in written):
                self.error(node, f"missing key {key!r}")
        return ok

    def seq(
        self, node: Node, *, scalar_ok: bool = True, empty: str | None = "empty list"
    ) -> list[Node] | None:
        """A list's item nodes; a single scalar counts as a list of one when `scalar_ok`."""
        if isinstance(node, yaml.SequenceNode):
            if not node.value and empty is not None:
                self.error(node, empty)
                return None
            return list(node.value)
        if scalar_ok and isinstance(node, yaml.ScalarNode) and not _is_null(node):
            return [node]
        self.error(node, f"expected a list, got {_describe(node)}")
        return None

    def items(
        self,
        node: Node,
        convert: Callable[[Node], T | None],
        *,
        scalar_ok: bool = True,
        empty: str | None = "empty list",
    ) -> list[T] | None:
        """Convert every item of a list; None if the list or an item is bad. Repeats are flagged."""
        item_nodes = self.seq(node, scalar_ok=scalar_ok, empty=empty)
        if item_nodes is None:
            return None
        out: list[T] = []
        seen: dict[Any, Node] = {}
        ok = True
        for item in item_nodes:
            value = convert(item)
            if value is None:
                ok = False
                continue
            if value in seen:
                self.error(item, f"listed twice: {item.value!r} (first at {self.at(seen[value])})")
                ok = False
                continue
            seen[value] = item
            out.append(value)
        return out if ok else None

    # -- scalars

    def scalar_str(self, node: Node) -> str | None:
        """The raw text of a scalar, exactly as written (no YAML 1.1 resolution)."""
        if not isinstance(node, yaml.ScalarNode) or _is_null(node):
            self.error(node, f"expected a string, got {_describe(node)}")
            return None
        return str(node.value)

    def text(self, node: Node) -> str | None:
        value = self.scalar_str(node)
        if value is not None and not value.strip():
            self.error(node, "empty string")
            return None
        return value

    def _plain_number(self, node: Node, pattern: re.Pattern[str], noun: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or _is_null(node):
            self.error(node, f"expected {noun}, got {_describe(node)}")
            return None
        if node.style is not None:
            self.error(node, f"not {noun}: {node.value!r} (a quoted string)")
            return None
        if not pattern.fullmatch(node.value):
            self.error(node, f"not {noun}: {node.value!r}")
            return None
        return str(node.value)

    def _range(self, node: Node, value: float, lo: float | None, hi: float | None) -> bool:
        if lo is not None and value < lo:
            self.error(node, f"must be at least {lo:g}: {node.value}")
            return False
        if hi is not None and value > hi:
            self.error(node, f"must be at most {hi:g}: {node.value}")
            return False
        return True

    def integer(self, node: Node, lo: int | None = None, hi: int | None = None) -> int | None:
        """A plain decimal integer (`0755` is 755, never octal)."""
        raw = self._plain_number(node, _INT, "an integer")
        if raw is None or len(raw.lstrip("-")) > 12:
            if raw is not None:
                self.error(node, f"integer too large: {raw}")
            return None
        value = int(raw)
        return value if self._range(node, value, lo, hi) else None

    def number(self, node: Node, lo: float | None = None, hi: float | None = None) -> float | None:
        raw = self._plain_number(node, _NUMBER, "a number")
        if raw is None or len(raw) > 24:
            if raw is not None:
                self.error(node, f"number too large: {raw}")
            return None
        value = float(raw)
        return value if self._range(node, value, lo, hi) else None

    def duration(self, node: Node, *, positive: bool = True) -> float | None:
        value = self.convert(node, parse_duration)
        if value is not None and positive and value <= 0.0:
            self.error(node, f"must be longer than 0s: {node.value!r}")
            return None
        return value

    def boolean(self, node: Node) -> bool | None:
        """`true` or `false`, unquoted (YAML 1.1's `yes`, `on`, `y` are errors, not guesses)."""
        if isinstance(node, yaml.ScalarNode) and node.style is None and node.value in _BOOLEANS:
            return bool(node.value == "true")
        self.error(node, f"expected true or false, got {_describe(node)}")
        return None

    def rate(self, node: Node) -> Rate | None:
        return self.convert(node, parse_rate)

    def choice(self, node: Node, enum_type: type[E], noun: str) -> E | None:
        """An enum member by its value (`drop` -> `RuleAction.DROP`)."""
        text = self.scalar_str(node)
        if text is None:
            return None
        values = [m.value for m in enum_type]
        if text in values:
            return enum_type(text)
        hint = suggest(text, values)
        if hint is not None:
            self.error(node, f"unknown {noun} {text!r} (did you mean {hint!r}?)")
        else:
            self.error(node, f"unknown {noun} {text!r} (expected one of: {', '.join(values)})")
        return None

    def country(self, node: Node) -> str | None:
        text = self.scalar_str(node)
        if text is None:
            return None
        if text in COUNTRY_CODES:
            return text
        hint = country_hint(text)
        tail = f" (did you mean {hint!r}?)" if hint else ""
        self.error(node, f"not a country code: {text!r}{tail}")
        return None

    def countries(self, node: Node, empty: str | None = NEVER) -> frozenset[str] | None:
        found = self.items(node, self.country, empty=empty)
        return frozenset(found) if found is not None else None

    def network(self, node: Node) -> Network | None:
        net: Network | None = self.convert(node, parse_network)
        return net

    def networks(self, node: Node, empty: str | None = NEVER) -> tuple[Network, ...] | None:
        found: list[Network] | None = self.items(node, self.network, empty=empty)
        return tuple(found) if found is not None else None

    def endpoint(self, node: Node) -> Endpoint | None:
        return self.convert(node, parse_endpoint)

    def path(self, node: Node) -> str | None:
        """A file path; a relative one resolves against the policy file's directory."""
        text = self.text(node)
        if text is None:
            return None
        if "\0" in text:
            self.error(node, "path contains a NUL character")
            return None
        if text.endswith("/"):
            self.error(node, f"not a file path (ends with '/'): {text!r}")
            return None
        return self.resolve(text)

    def resolve(self, path: str) -> str:
        if os.path.isabs(path):
            return os.path.normpath(path)
        return os.path.normpath(os.path.join(self.base_dir, path))


# ---------------------------------------------------------------------------------------- sections


def _policy(r: _Reader, root: Node, sha256: str) -> Policy | None:
    keys = yaml_keys(Policy)
    top = r.mapping(root, keys)
    if top is None:
        return None
    kw: dict[str, Any] = {"source_path": r.file, "source_sha256": sha256}
    bans = _bans(r, top["bans"]) if "bans" in top else BanSpec()
    kw["bans"] = bans
    listen = _listen(r, top["listen"]) if "listen" in top else DEFAULT_LISTEN
    if listen is not None:
        kw["listen"] = listen
    upstream = None
    if r.require(root, top, "upstream"):
        upstream = _upstream(r, top["upstream"], listen or ())
    if "inside" in top:
        kw["inside"] = _inside(r, top["inside"], upstream)
    if "advertise" in top:
        kw["advertise"] = r.convert(top["advertise"], parse_advertise)
    if "trusted" in top:
        kw["trusted"] = r.networks(top["trusted"], empty=None)
    storage = _storage(r, top["storage"]) if "storage" in top else DEFAULT_STORAGE_PATH
    if storage is not None:
        kw["storage_path"] = storage
    kw["control_path"] = _control(r, top, storage or DEFAULT_STORAGE_PATH)
    if "geo" in top:
        kw["geo"] = _geo(r, top["geo"])
    if "rules" in top:
        kw["rules"] = _rules(r, top["rules"], bans, listen or ())
    if "limits" in top:
        kw["limits"] = _limits(r, top["limits"], bans)
    kw["auth"] = _auth(r, top["auth"], bans) if "auth" in top else AuthSpec(ban=bans.default)
    if "enumeration" in top:
        kw["enumeration"] = _enumeration(r, top["enumeration"], bans)
    if "logins" in top:
        kw["logins"] = _logins(r, top["logins"])
    if "fraud" in top:
        kw["fraud"] = _fraud(r, top["fraud"])
    if "alerts" in top:
        kw["alerts"] = _alerts(r, top["alerts"])
    if "metrics" in top:
        kw["metrics"] = r.convert(top["metrics"], parse_host_port)
    if "records" in top:
        kw["records"] = _records(r, top["records"])
    if upstream is None or r.issues:
        return None
    kw = {k: v for k, v in kw.items() if v is not None}
    return Policy(upstream=upstream, **kw)


def _listen(r: _Reader, node: Node) -> tuple[Endpoint, ...] | None:
    found = r.items(node, r.endpoint, empty="empty list: sipguard would listen nowhere")
    return tuple(found) if found is not None else None


def _upstream(r: _Reader, node: Node, listen: Iterable[Endpoint]) -> Endpoint | None:
    ep = r.convert(node, lambda t: parse_endpoint(t, zero_port_ok=False))
    if ep is None:
        return None
    addr = ipaddress.ip_address(ep.host)
    if addr.is_unspecified:
        r.error(node, f"upstream cannot be the unspecified address {ep.host}")
        return None
    for lst in listen:
        if lst.transport is not ep.transport or lst.port != ep.port:
            continue
        lhost = ipaddress.ip_address(lst.host)
        wildcard = lhost.is_unspecified and lhost.version == addr.version and addr.is_loopback
        if lhost == addr or wildcard:
            r.error(node, f"upstream is sipguard's own listen address {lst.url} (a loop)")
            return None
    return ep


def _inside(r: _Reader, node: Node, upstream: Endpoint | None) -> Endpoint | None:
    ep = r.endpoint(node)
    if ep is None or upstream is None:
        return ep
    if ep.transport is not upstream.transport:
        r.error(
            node,
            f"inside is {ep.transport.value} but upstream is {upstream.transport.value}",
        )
        return None
    if ipaddress.ip_address(ep.host).version != ipaddress.ip_address(upstream.host).version:
        r.error(node, "inside and upstream are different IP versions")
        return None
    return ep


def _storage(r: _Reader, node: Node) -> str | None:
    raw = r.convert(node, parse_storage)
    if raw is None:
        return None
    if "\0" in raw or raw.endswith("/"):
        r.error(node, f"not a file path: {raw!r}")
        return None
    return r.resolve(raw)


def _control(r: _Reader, top: Mapping[str, Node], storage: str) -> str | None:
    node: Node | None
    if "control" in top:
        node = top["control"]
        path = r.path(node)
    else:
        node = top.get("storage")
        path = os.path.join(os.path.dirname(storage), "sipguard.sock")
    if path is None:
        return None
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH and node is not None:
        what = (
            "control socket path" if "control" in top else "control socket path next to the store"
        )
        r.error(node, f"{what} is too long ({size} bytes, at most {MAX_SOCKET_PATH}): {path}")
        return None
    return path


def _geo(r: _Reader, node: Node) -> GeoSpec | None:
    got = r.fields(
        node,
        GeoSpec,
        {
            "database": lambda n: r.convert(n, _geo_database(r)),
            "overrides": lambda n: _geo_overrides(r, n),
            "max_age_days": lambda n: r.integer(n, 0),
            "unknown_country": lambda n: r.choice(n, UnknownCountry, "value"),
        },
    )
    return GeoSpec(**got[0]) if got is not None else None


def _geo_database(r: _Reader) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text == BUILTIN_GEO:
            return text
        if not text.endswith(".mmdb"):
            raise ValueError(f"not 'builtin' or a .mmdb file: {text!r}")
        return r.resolve(text)

    return parse


def _geo_overrides(r: _Reader, node: Node) -> tuple[tuple[Network, str], ...] | None:
    if isinstance(node, yaml.MappingNode) and not node.value:
        r.error(node, "empty mapping")
        return None
    if not isinstance(node, yaml.MappingNode):
        r.error(node, f"expected a mapping of CIDR: country, got {_describe(node)}")
        return None
    out: list[tuple[Network, str]] = []
    seen: dict[Network, Node] = {}
    ok = True
    for key_node, value_node in node.value:
        net = r.network(key_node)
        cc = r.country(value_node)
        if net is None or cc is None:
            ok = False
            continue
        if net in seen:
            r.error(key_node, f"duplicate network {key_node.value!r} (first at {r.at(seen[net])})")
            ok = False
            continue
        seen[net] = key_node
        out.append((net, cc))
    return tuple(out) if ok else None


# -- rules


def _rules(
    r: _Reader, node: Node, bans: BanSpec, listen: Iterable[Endpoint]
) -> tuple[Rule, ...] | None:
    items = r.seq(node, scalar_ok=False, empty=None)
    if items is None:
        return None
    transports = {ep.transport for ep in listen}
    rules: list[Rule] = []
    names: dict[str, Node] = {}
    earlier: list[tuple[Rule, Node]] = []
    ok = True
    for item in items:
        rule = _rule(r, item, bans, transports)
        if rule is None:
            ok = False
            continue
        name_node = _value_node(item, "name")
        if rule.name in names:
            r.error(
                name_node, f"duplicate rule name {rule.name!r} (first at {r.at(names[rule.name])})"
            )
            ok = False
            continue
        names[rule.name] = name_node
        for prev, prev_node in earlier:
            if prev.match.is_catch_all:
                r.error(
                    name_node,
                    f"rule {rule.name!r} can never match: rule {prev.name!r} at "
                    f"{r.at(prev_node)} matches every message",
                )
                ok = False
                break
            if prev.match == rule.match:
                r.error(
                    name_node,
                    f"rule {rule.name!r} can never match: rule {prev.name!r} at "
                    f"{r.at(prev_node)} has the same match",
                )
                ok = False
                break
        earlier.append((rule, name_node))
        rules.append(rule)
    return tuple(rules) if ok else None


def _value_node(mapping: Node, key: str) -> Node:
    assert isinstance(mapping, yaml.MappingNode)
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v  # type: ignore[no-any-return]
    return mapping  # pragma: no cover - callers only ask for keys they read


def _rule(r: _Reader, node: Node, bans: BanSpec, transports: set[Transport]) -> Rule | None:
    got = r.fields(
        node,
        Rule,
        {
            "name": lambda n: r.convert(n, parse_rule_name),
            "match": lambda n: _match(r, n, transports),
            "action": lambda n: r.choice(n, RuleAction, "action"),
            "status": lambda n: r.integer(n, 400, 699),
            "ban": r.duration,
        },
    )
    if got is None:
        return None
    kw, nodes = got
    present = r.require(node, nodes, "name", "action")
    action = kw.get("action")
    if "status" in nodes and action is not None and action is not RuleAction.REJECT:
        r.error(_key_node(node, "status"), "'status' only applies to action 'reject'")
        return None
    if "ban" in nodes and action is not None and action is not RuleAction.BAN:
        r.error(_key_node(node, "ban"), "'ban' only applies to action 'ban'")
        return None
    if not present or len(kw) != len(nodes):
        return None
    if action is RuleAction.REJECT:
        kw.setdefault("status", 403)
    if action is RuleAction.BAN:
        if "ban" not in kw:
            kw["ban"] = bans.default
        elif not _within_max(r, nodes["ban"], kw["ban"], bans):
            return None
    return Rule(**kw)


def _key_node(mapping: Node, key: str) -> Node:
    assert isinstance(mapping, yaml.MappingNode)
    for k, _ in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k
    return mapping  # pragma: no cover


def _within_max(r: _Reader, node: Node, seconds: float, bans: BanSpec) -> bool:
    if seconds > bans.max:
        r.error(node, f"ban {node.value} is longer than bans.max ({format_duration(bans.max)})")
        return False
    return True


def _match(r: _Reader, node: Node, transports: set[Transport]) -> Match | None:
    got = r.fields(
        node,
        Match,
        {
            "method": lambda n: _methods(r, n),
            "country": lambda n: _country_match(r, n),
            "network": lambda n: _network_match(r, n),
            "user_agent": lambda n: _user_agent(r, n),
            "account": lambda n: _strings(r, n),
            "transport": lambda n: r.choice(n, Transport, "transport"),
        },
    )
    if got is None:
        return None
    kw, nodes = got
    if isinstance(node, yaml.MappingNode) and not node.value:
        r.error(node, "empty match: leave out 'match' to match every message")
        return None
    if len(kw) != len(nodes):
        return None
    transport = kw.get("transport")
    if transport is not None and transports and transport not in transports:
        r.error(
            nodes["transport"],
            f"no {transport.value} listen address: the rule can never match",
        )
        return None
    return Match(**kw)


def _methods(r: _Reader, node: Node) -> frozenset[str] | None:
    def method(item: Node) -> str | None:
        text = r.scalar_str(item)
        if text is None:
            return None
        if text in SIP_METHODS:
            return text
        hint = suggest(text, SIP_METHODS)
        tail = f" (did you mean {hint!r}?)" if hint else ""
        r.error(item, f"unknown method {text!r}{tail}")
        return None

    found = r.items(node, method, empty=NEVER)
    return frozenset(found) if found is not None else None


def _strings(r: _Reader, node: Node) -> frozenset[str] | None:
    found = r.items(node, r.text, empty=NEVER)
    return frozenset(found) if found is not None else None


def _in_not(
    r: _Reader, node: Node, cls: type[Any], convert: Callable[[Node], T | None], what: str
) -> tuple[dict[str, Any], dict[str, Node]] | None:
    """A country or network match: a plain list (the `in` part), or `{in: ..., not: ...}`. The
    converted fields and their nodes, or None after reporting what is wrong."""
    if not isinstance(node, yaml.MappingNode):
        include = convert(node)
        return ({"include": include}, {}) if include is not None else None
    got = r.fields(node, cls, {"in": convert, "not": lambda n: _not_list(r, n, convert)})
    if got is None:
        return None
    kw, nodes = got
    if not nodes:
        r.error(node, f"empty {what} match: use 'in' and/or 'not'")
        return None
    if len(kw) != len(nodes):
        return None
    return kw, nodes


def _country_match(r: _Reader, node: Node) -> CountryMatch | None:
    got = _in_not(r, node, CountryMatch, r.countries, "country")
    if got is None:
        return None
    kw, nodes = got
    countries_in: frozenset[str] = kw.get("include") or frozenset()
    countries_not: frozenset[str] = kw.get("exclude", frozenset())
    both = sorted(countries_in & countries_not)
    if both:
        for cc in both:
            r.error(_item_node(nodes["not"], cc), f"country {cc!r} is both in 'in' and 'not'")
        return None
    return CountryMatch(**kw)


def _not_list(r: _Reader, node: Node, convert: Callable[[Node], T | None]) -> T | None:
    if isinstance(node, yaml.SequenceNode) and not node.value:
        r.error(node, "empty 'not' list excludes nothing: leave it out")
        return None
    return convert(node)


def _item_node(seq: Node, text: str) -> Node:
    if isinstance(seq, yaml.SequenceNode):
        for item in seq.value:
            if isinstance(item, yaml.ScalarNode) and item.value == text:
                return item
    return seq


def _network_match(r: _Reader, node: Node) -> NetworkMatch | None:
    got = _in_not(r, node, NetworkMatch, r.networks, "network")
    if got is None:
        return None
    kw, nodes = got
    nets_in: tuple[Network, ...] = kw.get("include") or ()
    nets_not: tuple[Network, ...] = kw.get("exclude", ())
    ok = True
    in_nodes = nodes.get("in")
    for net in nets_in:
        for ex in nets_not:
            if _subnet_of(net, ex):
                where = _item_node(in_nodes, str(net)) if in_nodes is not None else node
                r.error(where, f"network '{net}' is inside excluded '{ex}': it can never match")
                ok = False
                break
    return NetworkMatch(**kw) if ok else None


def _subnet_of(a: Network, b: Network) -> bool:
    if isinstance(a, ipaddress.IPv4Network) and isinstance(b, ipaddress.IPv4Network):
        return a.subnet_of(b)
    if isinstance(a, ipaddress.IPv6Network) and isinstance(b, ipaddress.IPv6Network):
        return a.subnet_of(b)
    return False


def _user_agent(r: _Reader, node: Node) -> re.Pattern[bytes] | None:
    if isinstance(node, yaml.MappingNode):
        got = r.mapping(node, ("regex",), known="the only key here is 'regex'")
        if got is None:
            return None
        if not r.require(node, got, "regex"):
            return None
        regex_node = got["regex"]
        text = r.text(regex_node)
        if text is None:
            return None
        try:
            pattern = re.compile(text.encode("utf-8"), re.IGNORECASE)
        except re.error as exc:
            r.error(regex_node, f"bad regex: {exc}")
            return None
        if pattern.search(b"") is not None:
            r.error(regex_node, f"regex {text!r} matches every user agent")
            return None
        return pattern

    def substring(item: Node) -> str | None:
        text = r.scalar_str(item)
        if text == "":
            r.error(item, "empty substring: it would match every user agent")
            return None
        return text

    found = r.items(node, substring, empty=NEVER)
    if found is None:
        return None
    alternation = b"|".join(re.escape(s.encode("utf-8")) for s in found)
    return re.compile(alternation, re.IGNORECASE)


# -- limits, auth, bans


def _limits(r: _Reader, node: Node, bans: BanSpec) -> Limits | None:
    def spec(name: str) -> Converter:
        return lambda n: _limit(r, n, bans, name)

    got = r.fields(
        node,
        Limits,
        {
            "REGISTER": spec("REGISTER"),
            "INVITE": spec("INVITE"),
            "OPTIONS": spec("OPTIONS"),
            "other": spec("other"),
            "malformed": spec("malformed"),
            "global": spec("global"),
            "ipv6_prefix": lambda n: r.integer(n, 0, 128),
        },
        known="limits are per REGISTER, INVITE, OPTIONS, other, malformed, global",
    )
    return Limits(**got[0]) if got is not None else None


def _limit(r: _Reader, node: Node, bans: BanSpec, name: str) -> LimitSpec | None:
    got = r.fields(
        node,
        LimitSpec,
        {
            "rate": r.rate,
            "burst": lambda n: r.integer(n, 1),
            "exceed": lambda n: r.choice(n, Exceed, "exceed action"),
            "ban_after": lambda n: r.integer(n, 1),
            "within": r.duration,
            "ban": r.duration,
        },
    )
    if got is None:
        return None
    kw, nodes = got
    present = r.require(node, nodes, "rate")
    ok = present and len(kw) == len(nodes)
    for key in ("ban_after", "ban", "within"):
        if key in nodes and name == "global":
            r.error(
                _key_node(node, key),
                f"{key!r} does not apply to 'global' (no single source to ban)",
            )
            ok = False
        elif key in ("ban", "within") and key in nodes and "ban_after" not in nodes:
            r.error(_key_node(node, key), f"{key!r} needs 'ban_after'")
            ok = False
    if "ban" in kw and not _within_max(r, nodes["ban"], kw["ban"], bans):
        ok = False
    if name == "malformed" and kw.get("exceed") is Exceed.REJECT:
        r.error(
            nodes["exceed"],
            "'exceed: reject' does not apply to 'malformed': past the limit garbage is never "
            "answered (a reply would reflect a flood of spoofed packets)",
        )
        ok = False
    if not ok:
        return None
    kw.setdefault("burst", kw["rate"].count)
    if "ban_after" in kw:
        kw.setdefault("ban", bans.default)
    return LimitSpec(**kw)


def _auth(r: _Reader, node: Node, bans: BanSpec) -> AuthSpec | None:
    def per_account(n: Node) -> PerAccountAuth | None:
        got = r.fields(
            n,
            PerAccountAuth,
            {
                "failures": lambda v: r.integer(v, 1),
                "within": r.duration,
                "action": lambda v: r.choice(v, AccountAction, "action"),
            },
        )
        return PerAccountAuth(**got[0]) if got is not None else None

    def known_sources(n: Node) -> KnownSources | None:
        got = r.fields(
            n,
            KnownSources,
            {"memory": r.duration, "distinct_accounts": lambda v: r.integer(v, 1)},
        )
        return KnownSources(**got[0]) if got is not None else None

    got = r.fields(
        node,
        AuthSpec,
        {
            "failures": lambda n: r.integer(n, 1),
            "within": r.duration,
            "ban": r.duration,
            "per_account": per_account,
            "known_sources": known_sources,
        },
    )
    if got is None:
        return None
    kw, nodes = got
    if "ban" in kw and not _within_max(r, nodes["ban"], kw["ban"], bans):
        return None
    kw.setdefault("ban", bans.default)
    return AuthSpec(**kw)


def _enumeration(r: _Reader, node: Node, bans: BanSpec) -> EnumerationPolicy | None:
    got = r.fields(
        node,
        EnumerationPolicy,
        {
            "distinct_users": lambda n: r.integer(n, 2),
            "within": r.duration,
            "ban": r.duration,
            "action": lambda n: r.choice(n, EnumerationAction, "action"),
        },
    )
    if got is None:
        return None
    kw, nodes = got
    action = kw.get("action")
    if "ban" in nodes and action is EnumerationAction.ALERT:
        r.error(_key_node(node, "ban"), "'ban' only applies to action 'ban'")
        return None
    if "ban" in kw and not _within_max(r, nodes["ban"], kw["ban"], bans):
        return None
    return EnumerationPolicy(**kw) if len(kw) == len(nodes) else None


def _logins(r: _Reader, node: Node) -> LoginPolicy | None:
    def check(n: Node) -> LoginCheck | None:
        return r.choice(n, LoginCheck, "value")

    got = r.fields(
        node,
        LoginPolicy,
        {
            "new_country": check,
            "new_hour": check,
            "timezone": lambda n: r.convert(n, parse_timezone),
            "learn": lambda n: r.integer(n, 1),
        },
    )
    if got is None:
        return None
    kw, nodes = got
    return LoginPolicy(**kw) if len(kw) == len(nodes) else None


def _records(r: _Reader, node: Node) -> Records | None:
    def retention(n: Node) -> float | None:
        if isinstance(n, yaml.ScalarNode) and n.value == "off" and n.style is None:
            return _OFF
        text = r.scalar_str(n)
        if text is None:
            return None
        try:
            seconds = parse_duration(text)
        except ValueError:
            r.error(n, f"expected a duration (e.g. 400d) or off, got {text!r}")
            return None
        if seconds <= 0.0:
            r.error(n, f"must be longer than 0s (or off): {text!r}")
            return None
        return seconds

    got = r.fields(
        node,
        Records,
        {
            "events": r.duration,
            "rollups": retention,
            "pseudonymise_numbers": r.boolean,
        },
    )
    if got is None:
        return None
    kw, nodes = got
    if kw.get("rollups") is _OFF:
        kw["rollups"] = None
    return Records(**kw) if len(kw) == len(nodes) else None


_OFF = -1.0  # `off` read, as a float that no duration can be


def _bans(r: _Reader, node: Node) -> BanSpec:
    got = r.fields(
        node,
        BanSpec,
        {
            "default": r.duration,
            "escalation": lambda n: r.number(n, 1.0, 1000.0),
            "max": r.duration,
            "jitter": lambda n: r.duration(n, positive=False),
        },
    )
    if got is None:
        return BanSpec()
    kw, nodes = got
    spec = BanSpec(**kw)
    if spec.default > spec.max:
        where = nodes.get("default") or nodes["max"]
        r.error(
            where,
            f"bans.default ({format_duration(spec.default)}) is longer than "
            f"bans.max ({format_duration(spec.max)})",
        )
    return spec


# -- fraud


def _fraud(r: _Reader, node: Node) -> FraudSpec | None:
    def action(n: Node) -> FraudAction | None:
        return r.choice(n, FraudAction, "action")

    def destinations(n: Node) -> Destinations | None:
        got = r.fields(
            n,
            Destinations,
            {
                "allow": lambda v: r.countries(v, _NO_DESTINATION),
                "deny_types": lambda v: _number_types(r, v),
                "action": action,
            },
        )
        return Destinations(**got[0]) if got is not None else None

    def per_account(n: Node) -> FraudPerAccount | None:
        got = r.fields(
            n,
            FraudPerAccount,
            {
                "concurrent_calls": lambda v: r.integer(v, 1),
                "calls_per_minute": lambda v: r.integer(v, 1),
                "calls_per_hour": lambda v: r.integer(v, 1),
                "action": action,
            },
        )
        if got is None:
            return None
        kw, nodes = got
        minute, hour = kw.get("calls_per_minute"), kw.get("calls_per_hour")
        if minute is not None and hour is not None and minute >= hour:
            r.error(
                nodes["calls_per_minute"],
                f"calls_per_minute ({minute}) is not below calls_per_hour ({hour}): "
                "it can never trigger",
            )
            return None
        return FraudPerAccount(**kw)

    def quiet_hours(n: Node) -> QuietHours | None:
        got = r.fields(
            n,
            QuietHours,
            {
                "from": lambda v: r.convert(v, parse_clock),
                "to": lambda v: r.convert(v, parse_clock),
                "timezone": lambda v: r.convert(v, parse_timezone),
                "international": action,
            },
        )
        if got is None:
            return None
        kw, nodes = got
        if not r.require(n, nodes, "from", "to", "timezone") or len(kw) != len(nodes):
            return None
        if kw["start"] == kw["end"]:
            r.error(nodes["to"], "quiet hours are empty: 'from' equals 'to'")
            return None
        return QuietHours(**kw)

    got = r.fields(
        node,
        FraudSpec,
        {
            "home_country": r.country,
            "destinations": destinations,
            "per_account": per_account,
            "quiet_hours": quiet_hours,
            "outside_line_prefix": lambda n: r.convert(n, parse_digits),
            "spikes": lambda n: _spikes(r, n),
        },
    )
    if got is None:
        return None
    kw, nodes = got
    home = kw.get("home_country")
    ok = len(kw) == len(nodes)
    if "home_country" not in nodes:
        for key in ("quiet_hours", "outside_line_prefix"):
            if key in nodes:
                r.error(_key_node(node, key), f"{key!r} needs 'home_country'")
                ok = False
    dest: Destinations | None = kw.get("destinations")
    if home is not None and dest is not None and dest.allow is not None and home not in dest.allow:
        allow_node = _value_node(nodes["destinations"], "allow")
        r.error(allow_node, f"home country {home!r} is not allowed: no national call could go out")
        ok = False
    return FraudSpec(**kw) if ok else None


#: Shortest and longest spike interval: shorter buckets are noise, longer ones react too late.
SPIKE_INTERVAL = (60.0, 86400.0)


def _spikes(r: _Reader, node: Node) -> Spikes | None:
    def interval(n: Node) -> float | None:
        value = r.duration(n)
        lo, hi = SPIKE_INTERVAL
        if value is not None and not lo <= value <= hi:
            r.error(n, f"must be from 1m to 1d: {n.value!r}")
            return None
        return value

    def above(n: Node, lo: float, hi: float) -> float | None:
        value = r.number(n, None, hi)
        if value is not None and value <= lo:
            r.error(n, f"must be greater than {lo:g}: {n.value}")
            return None
        return value

    got = r.fields(
        node,
        Spikes,
        {
            "interval": interval,
            "factor": lambda n: above(n, 1.0, 1000.0),
            "min_calls": lambda n: r.integer(n, 1),
            "alpha": lambda n: above(n, 0.0, 1.0),
            "action": lambda n: r.choice(n, FraudAction, "action"),
        },
    )
    if got is None:
        return None
    kw, nodes = got
    return Spikes(**kw) if len(kw) == len(nodes) else None


def _number_types(r: _Reader, node: Node) -> frozenset[NumberType] | None:
    found = r.items(node, lambda n: r.choice(n, NumberType, "number type"), empty=None)
    return frozenset(found) if found is not None else None


# -- alerts


_SINK_KEYS = {"webhook": WebhookSink, "syslog": SyslogSink, "file": FileSink}


def _alerts(r: _Reader, node: Node) -> tuple[WebhookSink | SyslogSink | FileSink, ...] | None:
    items = r.seq(node, scalar_ok=False, empty=None)
    if items is None:
        return None
    out: list[WebhookSink | SyslogSink | FileSink] = []
    ok = True
    for item in items:
        sink = _sink(r, item)
        if sink is None:
            ok = False
        else:
            out.append(sink)
    return tuple(out) if ok else None


def _sink(r: _Reader, node: Node) -> WebhookSink | SyslogSink | FileSink | None:
    if not isinstance(node, yaml.MappingNode):
        r.error(node, f"expected a mapping, got {_describe(node)}")
        return None
    kinds = [
        k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode) and k.value in _SINK_KEYS
    ]
    if not kinds:
        r.error(node, "alert sink needs one of 'webhook', 'syslog', 'file'")
        return None
    if len(set(kinds)) > 1:
        r.error(node, f"alert sink has both {kinds[0]!r} and {kinds[1]!r}: use one per list item")
        return None
    kind = kinds[0]

    def severity(n: Node) -> Severity | None:
        return r.choice(n, Severity, "severity")

    converters: dict[str, Converter]
    if kind == "webhook":
        converters = {
            "webhook": lambda n: r.convert(n, parse_http_url),
            "min_severity": severity,
            "secret": r.text,
        }
    elif kind == "syslog":
        converters = {
            "syslog": lambda n: r.convert(
                n, lambda t: parse_endpoint(t, hostname_ok=True, zero_port_ok=False)
            ),
            "format": lambda n: r.choice(n, SyslogFormat, "format"),
            "min_severity": severity,
        }
    else:
        converters = {"file": r.path, "min_severity": severity}
    known = f"a {kind} sink has {', '.join(converters)}"
    got = r.fields(node, _SINK_KEYS[kind], converters, known=known)
    if got is None:
        return None
    kw, nodes = got
    if len(kw) != len(nodes):
        return None
    sink: WebhookSink | SyslogSink | FileSink = _SINK_KEYS[kind](**kw)
    return sink
