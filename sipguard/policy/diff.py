"""What changed between two policies, in the words of the YAML, for the audit trail of reloads.

    limits.INVITE.rate: 30/min -> 60/min
    rules: added deny-cn; removed old-scanners; changed sip-scanners (action, ban)
    fraud.quiet_hours: added
    alerts (changed)

Values are shown for numbers, durations, rates, enums, booleans, short strings and country or
method sets; never for alert sinks (URLs with tokens, HMAC secrets) or `secret`-like fields.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from sipguard.policy.model import Policy, Rate, Rule, field_meta
from sipguard.policy.units import format_duration

__all__ = ["Change", "policy_changes"]

SHOWN = 40  # characters of a value shown
_HIDDEN_GRAMMARS = frozenset({"secret", "http_url"})
_HIDDEN_FIELDS = frozenset({"alerts"})  # sinks carry URLs with tokens and secrets: named only


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One difference: `section` is the top-level field name (e.g. `storage_path`), `text` says
    what changed, with the YAML path."""

    section: str
    text: str


def policy_changes(old: Policy, new: Policy) -> list[Change]:
    """Every difference between `old` and `new`, in the order of the model's fields."""
    out: list[Change] = []
    for name, (_, meta) in field_meta(Policy).items():
        if meta.internal:
            continue
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        key = meta.key or name
        out.extend(Change(name, text) for text in _diff(key, before, after, meta.yaml, name))
    return out


def _diff(path: str, old: Any, new: Any, grammar: str | None, name: str) -> list[str]:
    if name in _HIDDEN_FIELDS:
        return [f"{path} (changed)"]
    if name == "rules":
        return [_rules(old, new)]
    either = dataclasses.is_dataclass(old) or dataclasses.is_dataclass(new)
    if (old is None or new is None) and either:
        return [f"{path}: {'added' if old is None else 'removed'}"]
    if (
        dataclasses.is_dataclass(old)
        and type(old) is type(new)
        and not isinstance(old, Rate)
        and not isinstance(old, type)
    ):
        lines: list[str] = []
        for field, (_, meta) in field_meta(type(old)).items():
            a, b = getattr(old, field), getattr(new, field)
            if a != b and not meta.internal:
                lines.extend(_diff(f"{path}.{meta.key or field}", a, b, meta.yaml, field))
        return lines or [path]
    shown_old, shown_new = _show(old, grammar), _show(new, grammar)
    if shown_old is None or shown_new is None:
        return [f"{path} (changed)"]
    return [f"{path}: {shown_old} -> {shown_new}"]


def _rules(old: tuple[Rule, ...], new: tuple[Rule, ...]) -> str:
    before = {r.name: r for r in old}
    after = {r.name: r for r in new}
    parts = []
    added = [n for n in after if n not in before]
    removed = [n for n in before if n not in after]
    changed = [
        f"{n} ({', '.join(_fields_changed(before[n], after[n]))})"
        for n in after
        if n in before and before[n] != after[n]
    ]
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    if changed:
        parts.append("changed " + ", ".join(changed))
    kept_before = [n for n in before if n in after]
    kept_after = [n for n in after if n in before]
    if kept_before != kept_after:
        parts.append("order changed")
    return "rules: " + ("; ".join(parts) if parts else "changed")


def _fields_changed(old: Rule, new: Rule) -> list[str]:
    return [
        f.name for f in dataclasses.fields(Rule) if getattr(old, f.name) != getattr(new, f.name)
    ]


def _item(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return ": ".join(_item(v) for v in value)
    return str(value)


def _show(value: Any, grammar: str | None) -> str | None:
    """A short rendering of a value, or None when it must not (or cannot) be shown."""
    if grammar in _HIDDEN_GRAMMARS:
        return None
    if value is None:
        return "off" if grammar == "retention" else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, float) and grammar in ("duration", "retention"):
        return format_duration(value)
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, Rate):
        return f"{value.count}/{format_duration(value.per_seconds)}"
    if isinstance(value, str):
        text = value
    elif isinstance(value, frozenset | tuple):
        items = [_item(v) for v in value]
        text = "[" + ", ".join(sorted(items) if isinstance(value, frozenset) else items) + "]"
    else:
        text = str(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."
