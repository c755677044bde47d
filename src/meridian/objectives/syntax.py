"""The Objective language's vocabulary and tree: attributes, functions, units, the nodes a
parsed rule is made of, how each node is written back as text, and :class:`ObjectiveError`.

Nodes are frozen dataclasses. Every value has a :class:`Kind`, checked when the rule is parsed,
so evaluation never meets a type error. :func:`render` writes a node in canonical form
(upper-case keywords, double-quoted strings, parentheses only where precedence needs them);
parsing the rendered text gives an equal node.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from meridian.errors import BadInput
from meridian.objectives.slos import Slo


class ObjectiveError(BadInput):
    """A rule that cannot be used. ``line``/``column`` (1-based) locate the offending token,
    ``expected`` says what would have been valid there, ``problem`` (may be "") what was wrong.

    ``str(exc)`` reads ``[problem; ]expected <expected> at <line>:<column>``, e.g.
    ``expected ',' or ')' after the pattern at 1:17``.
    """

    def __init__(self, expected: str, line: int, column: int, problem: str = "") -> None:
        self.expected = expected
        self.line = line
        self.column = column
        self.problem = problem
        message = f"expected {expected} at {line}:{column}"
        super().__init__(f"{problem}; {message}" if problem else message)

    def __reduce__(self) -> tuple[type[ObjectiveError], tuple[str, int, int, str]]:
        return type(self), (self.expected, self.line, self.column, self.problem)


class Kind(enum.Enum):
    """What a value is; the enum value is the phrase used in messages."""

    BOOL = "a boolean"
    NUMBER = "a number"
    SIZE = "a size"
    AGE = "an age"
    STRING = "a string"
    ID = "an owner or group"


ATTRIBUTES: dict[str, Kind] = {
    "PATH": Kind.STRING, "NAME": Kind.STRING, "EXTENSION": Kind.STRING, "SIZE": Kind.SIZE,
    "MODIFY_AGE": Kind.AGE, "ACCESS_AGE": Kind.AGE, "CREATE_AGE": Kind.AGE,
    "LAST_USE_AGE": Kind.AGE, "OWNER": Kind.ID, "GROUP": Kind.ID, "IS_FILE": Kind.BOOL,
    "IS_DIRECTORY": Kind.BOOL, "IS_SYMLINK": Kind.BOOL, "IS_OPEN": Kind.BOOL,
    "ORIGIN_SITE": Kind.STRING, "DATA_ORIGIN_LOCAL": Kind.BOOL, "DATA_ORIGIN_REMOTE": Kind.BOOL,
}
AGE_ATTRIBUTES = frozenset(name for name, kind in ATTRIBUTES.items() if kind is Kind.AGE)
FUNCTIONS: dict[str, str] = {"FNMATCH": "pattern", "MATCH_EXTENSION": "extension", "REGEX": "pattern"}
"""Function name → what its first argument (always a quoted string) is called in messages."""
KEYWORDS = frozenset({"IF", "THEN", "ELSE", "AND", "OR", "NOT", "SLO", "TRUE", "FALSE"})
SIZE_UNITS: dict[str, int] = {
    "BYTE": 1, "BYTES": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4,
    "KBYTE": 1024, "KBYTES": 1024, "MBYTE": 1024**2, "MBYTES": 1024**2,
    "GBYTE": 1024**3, "GBYTES": 1024**3, "TBYTE": 1024**4, "TBYTES": 1024**4,
}
TIME_UNITS: dict[str, int] = {
    "SECOND": 1, "SECONDS": 1, "MINUTE": 60, "MINUTES": 60, "HOUR": 3600, "HOURS": 3600,
    "DAY": 86400, "DAYS": 86400, "WEEK": 604800, "WEEKS": 604800,
}
UNIT_LIST = "BYTES, KB, MB, GB, TB, KBYTES, MBYTES, GBYTES, TBYTES, SECONDS, MINUTES, HOURS, DAYS, WEEKS"


class Matcher(Protocol):
    """The compiled first argument of a function: tells whether a subject string matches."""

    def __call__(self, subject: str) -> bool: ...


@dataclass(frozen=True)
class Literal:
    """A number (scaled by its unit: bytes or seconds), a string or TRUE/FALSE, as written."""

    value: float | str | bool
    kind: Kind
    source: str


@dataclass(frozen=True)
class Attribute:
    """An attribute of the file, by its upper-case name (a key of :data:`ATTRIBUTES`)."""

    name: str


@dataclass(frozen=True)
class Call:
    """FNMATCH, MATCH_EXTENSION or REGEX: a quoted first argument and a string subject."""

    function: str
    argument: str
    subject: Value
    matcher: Matcher = field(compare=False, repr=False)


@dataclass(frozen=True)
class Comparison:
    left: Value
    operator: str  # as written: == = != < <= > >=
    right: Value


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class And:
    operands: tuple[Condition, ...]  # two or more


@dataclass(frozen=True)
class Or:
    operands: tuple[Condition, ...]  # two or more


Value: TypeAlias = Literal | Attribute | Call
Condition: TypeAlias = Literal | Attribute | Call | Comparison | Not | And | Or


@dataclass(frozen=True)
class Branch:
    """IF/ELSE IF (``condition`` set) or ELSE / a bare ``{...}`` (``condition`` None).

    ``suffix`` is ``?TRUE``/``?ALWAYS`` if the condition was written with one (no effect)."""

    condition: Condition | None
    slos: tuple[Slo, ...]
    suffix: str = ""


@dataclass(frozen=True)
class Rule:
    """The branches in order; the first whose condition holds (or that has none) is chosen."""

    branches: tuple[Branch, ...]


def kind_of(node: Condition) -> Kind:
    """The kind of a node's value."""
    if isinstance(node, Literal):
        return node.kind
    if isinstance(node, Attribute):
        return ATTRIBUTES[node.name]
    return Kind.BOOL


def attribute_names(rule: Rule) -> frozenset[str]:
    """Every attribute named anywhere in the rule."""
    return frozenset(node.name for branch in rule.branches if branch.condition is not None
                     for node in _walk(branch.condition) if isinstance(node, Attribute))


def _walk(node: Condition) -> Iterator[Condition]:
    yield node
    if isinstance(node, Call):
        yield from _walk(node.subject)
    elif isinstance(node, Comparison):
        yield from _walk(node.left)
        yield from _walk(node.right)
    elif isinstance(node, Not):
        yield from _walk(node.operand)
    elif isinstance(node, (And, Or)):
        for operand in node.operands:
            yield from _walk(operand)


def render_string(value: str) -> str:
    """``value`` double-quoted, with ``\\`` and ``"`` escaped (the lexer reads it back as is)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(node: Condition) -> str:
    """The node in canonical form (see the module docstring)."""
    if isinstance(node, Literal):
        return node.source
    if isinstance(node, Attribute):
        return node.name
    if isinstance(node, Call):
        return f"{node.function}({render_string(node.argument)}, {render(node.subject)})"
    if isinstance(node, Comparison):
        return f"{render(node.left)} {node.operator} {render(node.right)}"
    if isinstance(node, Not):
        simple = isinstance(node.operand, (Literal, Attribute, Call, Not))
        return "NOT " + (render(node.operand) if simple else f"({render(node.operand)})")
    if isinstance(node, And):
        return " AND ".join(f"({render(o)})" if isinstance(o, Or) else render(o)
                            for o in node.operands)
    return " OR ".join(render(operand) for operand in node.operands)


def render_rule(rule: Rule) -> str:
    """The whole rule in canonical form, on one line."""
    parts: list[str] = []
    for index, branch in enumerate(rule.branches):
        actions = "{" + ", ".join(f"SLO('{slo.name}')" for slo in branch.slos) + "}"
        if branch.condition is None:
            parts.append(actions if index == 0 else f"ELSE {actions}")
        else:
            keyword = "IF" if index == 0 else "ELSE IF"
            parts.append(f"{keyword} {render(branch.condition)}{branch.suffix} THEN {actions}")
    return " ".join(parts)
