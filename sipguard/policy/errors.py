"""Policy errors: every problem carries a `file:line:col` location, and all are reported at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Location", "PolicyError", "PolicyIssue"]


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """A position in a policy file. `line` and `column` are 1-based, as compilers print them."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem in a policy file; prints as `path:line:col: message`."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class PolicyError(Exception):
    """A policy that did not load. `issues` holds every problem found, sorted by position."""

    def __init__(self, issues: Iterable[PolicyIssue]) -> None:
        ordered = sorted(issues, key=lambda i: (i.location.line, i.location.column))
        super().__init__("\n".join(map(str, ordered)))
        self.issues: tuple[PolicyIssue, ...] = tuple(ordered)
