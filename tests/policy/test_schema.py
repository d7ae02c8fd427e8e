"""The JSON Schema: generated from the model, deterministic, committed, and true to the loader.

Validation uses a tiny structural validator (the subset of draft 2020-12 the generator emits), so
the venv needs no `jsonschema` package.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sipguard.policy import Policy
from sipguard.policy.model import field_meta, yaml_keys
from sipguard.policy.schema import GRAMMARS, policy_schema, schema_json

ROOT = Path(__file__).parents[2]
SCHEMA_FILE = ROOT / "policies" / "schema.json"
README = ROOT / "policies" / "README.md"
GOOD = sorted((Path(__file__).parent / "good").glob("*.yaml"))


# ------------------------------------------------------------------------- a tiny validator


def _type_ok(value: Any, name: str) -> bool:
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
    }
    return bool(checks[name](value))


def validate(
    value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$"
) -> list[str]:
    """Errors of `value` against `schema`; handles what `schema.py` emits, nothing more."""
    known = {
        "$ref", "type", "enum", "pattern", "minLength", "minimum", "maximum", "exclusiveMinimum",
        "properties",
        "required", "additionalProperties", "propertyNames", "minProperties", "items", "minItems",
        "uniqueItems", "anyOf", "oneOf", "description", "default", "title", "$schema", "$defs",
    }  # fmt: skip
    unknown = set(schema) - known
    assert not unknown, f"validator does not know {unknown}"
    errors: list[str] = []
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        errors += validate(value, root["$defs"][name], root, path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, t) for t in types):
            return [*errors, f"{path}: not {types}: {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not one of the enum: {value!r}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match {schema['pattern']}: {value!r}")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: too short")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: above {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(f"{path}: not above {schema['exclusiveMinimum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{path}: missing {k}" for k in schema.get("required", []) if k not in value]
        if len(value) < schema.get("minProperties", 0):
            errors.append(f"{path}: too few properties")
        for key, item in value.items():
            if "propertyNames" in schema:
                errors += validate(str(key), schema["propertyNames"], root, f"{path}.<key>")
            if key in props:
                errors += validate(item, props[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unknown key {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate(item, schema["additionalProperties"], root, f"{path}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: too few items")
        if schema.get("uniqueItems") and len({json.dumps(v) for v in value}) != len(value):
            errors.append(f"{path}: repeated items")
        for i, item in enumerate(value):
            if "items" in schema:
                errors += validate(item, schema["items"], root, f"{path}[{i}]")
    if "anyOf" in schema:
        results = [validate(value, s, root, path) for s in schema["anyOf"]]
        if all(results):
            errors.append(f"{path}: matches none of anyOf: {results}")
    if "oneOf" in schema:
        results = [validate(value, s, root, path) for s in schema["oneOf"]]
        if sum(not r for r in results) != 1:
            errors.append(f"{path}: matches {sum(not r for r in results)} of oneOf: {results}")
    return errors


_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")


def yaml12(node: yaml.Node) -> Any:
    """YAML as a YAML 1.2 core-schema tool (an editor) sees it: `NO` is a string."""
    if isinstance(node, yaml.MappingNode):
        return {yaml12(k): yaml12(v) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [yaml12(v) for v in node.value]
    assert isinstance(node, yaml.ScalarNode)
    text = node.value
    if node.style is not None:
        return text
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return text.lower() == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def as_data(text: str) -> Any:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    assert root is not None
    return yaml12(root)


# ---------------------------------------------------------------------------------- the tests


def test_schema_generation_is_deterministic() -> None:
    assert schema_json() == schema_json()
    assert list(policy_schema()["$defs"]) == sorted(policy_schema()["$defs"])


def test_committed_schema_is_up_to_date() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_json(), (
        "regenerate: python -m sipguard.policy.schema > policies/schema.json"
    )


def test_module_main_prints_the_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sipguard.policy.schema"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout == schema_json()


#: Model dataclasses that YAML spells as one string (`udp://...`, `10/min`, `HOST:PORT`).
VALUE_TYPES = {"Endpoint", "HostPort", "Rate"}


def _model_classes() -> dict[str, type[Any]]:
    """Every dataclass of the model that YAML spells as a mapping."""
    found: dict[str, type[Any]] = {}

    def visit(cls: type[Any]) -> None:
        found[cls.__name__] = cls
        for hint, _ in field_meta(cls).values():
            for inner in [hint, *_args(hint)]:
                is_class = isinstance(inner, type) and dataclasses.is_dataclass(inner)
                if is_class and inner.__name__ not in found:
                    visit(inner)

    visit(Policy)
    return {name: cls for name, cls in found.items() if name not in VALUE_TYPES}


def _args(hint: Any) -> list[Any]:
    out = []
    for arg in getattr(hint, "__args__", ()):
        out += [arg, *_args(arg)]
    return out


def test_every_model_key_is_in_the_schema() -> None:
    defs = policy_schema()["$defs"]
    top = policy_schema()
    for name, cls in _model_classes().items():
        body = top if cls is Policy else defs[name]
        assert list(body["properties"]) == list(yaml_keys(cls)), name
        assert body["additionalProperties"] is False


def test_every_reference_resolves() -> None:
    schema = policy_schema()
    text = json.dumps(schema)
    for name in re.findall(r'"#/\$defs/([^"]+)"', text):
        assert name in schema["$defs"], name
    for name in GRAMMARS:
        assert name in schema["$defs"], f"grammar {name} is never used"


def test_patterns_compile() -> None:
    for pattern in re.findall(r'"pattern": ("(?:[^"\\]|\\.)*")', schema_json()):
        re.compile(json.loads(pattern))


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_policies_validate_against_the_schema(path: Path) -> None:
    data = as_data(path.read_text(encoding="utf-8"))
    schema = policy_schema()
    assert validate(data, schema, schema) == []


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("upstream: udp://10.0.0.5:5060\nupstrem: x\n", "unknown key 'upstrem'"),
        ("listen: [udp://0.0.0.0:5060]\n", "missing upstream"),
        ("upstream: udp://10.0.0.5:5060\nbans: {max: 30}\n", "$.bans.max"),
        ("upstream: udp://10.0.0.5:5060\nbans: {max: 1:30}\n", "$.bans.max"),
        ("upstream: udp://10.0.0.5:5060\nfraud: {home_country: usa}\n", "$.fraud.home_country"),
        ("upstream: udp://10.0.0.5:5060\nlimits: {SUBSCRIBE: {rate: 1/s}}\n", "'SUBSCRIBE'"),
        ("upstream: udp://10.0.0.5:5060\nlimits: {INVITE: {burst: 3}}\n", "missing rate"),
        ("upstream: udp://10.0.0.5:5060\nalerts: [{min_severity: info}]\n", "oneOf"),
        ("upstream: sip:10.0.0.5\n", "$.upstream"),
    ],
)
def test_bad_policies_fail_the_schema(text: str, needle: str) -> None:
    schema = policy_schema()
    errors = validate(as_data(text), schema, schema)
    assert any(needle in e for e in errors), errors


def test_readme_documents_every_key() -> None:
    readme = README.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([^`]+)`", readme, flags=re.M))
    missing = {
        f"{name}.{key}"
        for name, cls in _model_classes().items()
        for key in yaml_keys(cls)
        if key not in rows
    }
    assert missing == set()


def test_readme_examples_load() -> None:
    """Every ```yaml block of policies/README.md loads (given an upstream where it has none)."""
    from sipguard.policy import load_policy_text

    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 5
    for block in blocks:
        text = (
            block
            if re.search(r"^upstream:", block, flags=re.M)
            else ("upstream: udp://10.0.0.5:5060\n" + block)
        )
        load_policy_text(text, "README.md")
