"""Evaluation of a parsed rule against one file's :class:`FileFacts`, with the reason why.

Pure and total: kinds were checked by the parser, so evaluation never raises. Conditions
short-circuit left to right, and the explanation names exactly the operands that decided:
for AND, the first false operand (or all, when true); for OR, the first true one (or all, when
false). Attribute values are shown as they were read, e.g.
``FNMATCH("./a/*.clip", PATH) is true: PATH is "./a/x.clip"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from meridian.objectives.facts import FileFacts
from meridian.objectives.slos import Slo
from meridian.objectives.syntax import (ATTRIBUTES, And, Attribute, Call, Comparison, Condition,
                                        Kind, Literal, Not, Or, Rule, Value, render,
                                        render_string)


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one rule for one file.

    ``matched``: a branch was chosen (an IF/ELSE IF whose condition holds, an ELSE, or a rule
    without condition) — also when that branch is ``{}``. ``slos``: that branch's SLOs (empty
    if none was chosen). ``why``: a human explanation of the decision."""

    matched: bool
    slos: tuple[Slo, ...]
    why: str


@dataclass(frozen=True)
class _Principal:
    """OWNER or GROUP: the numeric id and the name if known."""

    id: int
    name: str | None


_Scalar: TypeAlias = float | str | bool | _Principal

_READERS: dict[str, Callable[[FileFacts], _Scalar]] = {
    "PATH": lambda f: f.path,
    "NAME": lambda f: f.name,
    "EXTENSION": lambda f: f.extension,
    "SIZE": lambda f: f.size,
    "MODIFY_AGE": lambda f: f.now - f.mtime,
    "ACCESS_AGE": lambda f: f.now - f.atime,
    "CREATE_AGE": lambda f: f.now - f.ctime,
    "LAST_USE_AGE": lambda f: f.now - f.last_use_time,
    "OWNER": lambda f: _Principal(f.uid, f.owner),
    "GROUP": lambda f: _Principal(f.gid, f.group),
    "IS_FILE": lambda f: f.kind == "file",
    "IS_DIRECTORY": lambda f: f.kind == "directory",
    "IS_SYMLINK": lambda f: f.kind == "symlink",
    "IS_OPEN": lambda f: f.is_open,
    "ORIGIN_SITE": lambda f: f.origin_site,
    "DATA_ORIGIN_LOCAL": lambda f: f.origin_site == f.this_site,
    "DATA_ORIGIN_REMOTE": lambda f: f.origin_site != f.this_site,
}


def evaluate_rule(rule: Rule, facts: FileFacts) -> Evaluation:
    """Choose the first branch whose condition holds (or that has none); see :class:`Evaluation`."""
    rejected: list[str] = []
    for index, branch in enumerate(rule.branches):
        if branch.condition is None:
            why = ("no condition: the rule always applies" if index == 0
                   else "ELSE: " + " and ".join(rejected))
            return Evaluation(True, branch.slos, why)
        holds, why = explain(branch.condition, facts)
        if holds:
            if rejected:
                why = f"ELSE IF {why} (after: {' and '.join(rejected)})"
            return Evaluation(True, branch.slos, why)
        rejected.append(why)
    return Evaluation(False, (), " and ".join(rejected))


def explain(condition: Condition, facts: FileFacts) -> tuple[bool, str]:
    """Whether ``condition`` holds for ``facts``, and a sentence saying why."""
    if isinstance(condition, And):
        return _explain_chain(condition.operands, facts, decisive=False)
    if isinstance(condition, Or):
        return _explain_chain(condition.operands, facts, decisive=True)
    if isinstance(condition, Not):
        holds, why = explain(condition.operand, facts)
        return not holds, f"{render(condition)} is {_truth(not holds)}: {why}"
    if isinstance(condition, Attribute):
        holds = bool(_value(condition, facts))
        return holds, f"{condition.name} is {_truth(holds)}"
    holds = bool(_value(condition, facts))
    operands: tuple[Value, ...] = ()
    if isinstance(condition, Call):
        operands = (condition.subject,)
    elif isinstance(condition, Comparison):
        operands = (condition.left, condition.right)
    details = [_detail(operand, facts) for operand in operands]
    shown = ", ".join(detail for detail in details if detail)
    return holds, f"{render(condition)} is {_truth(holds)}" + (f": {shown}" if shown else "")


def _explain_chain(operands: tuple[Condition, ...], facts: FileFacts,
                   decisive: bool) -> tuple[bool, str]:
    """AND (``decisive`` False: the first false operand decides) or OR (first true decides)."""
    reasons: list[str] = []
    for operand in operands:
        holds, why = explain(operand, facts)
        if holds is decisive:
            return holds, why
        reasons.append(why)
    return not decisive, " and ".join(reasons)


def _detail(operand: Value, facts: FileFacts) -> str:
    if isinstance(operand, Attribute):
        return f"{operand.name} is {_describe(operand.name, _value(operand, facts))}"
    if isinstance(operand, Call):
        return explain(operand, facts)[1]
    return ""


def _value(node: Condition, facts: FileFacts) -> _Scalar:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Attribute):
        return _READERS[node.name](facts)
    if isinstance(node, Call):
        subject = _value(node.subject, facts)
        return node.matcher(subject if isinstance(subject, str) else str(subject))
    if isinstance(node, Comparison):
        return _compare(_value(node.left, facts), node.operator, _value(node.right, facts))
    return explain(node, facts)[0]


def _compare(left: _Scalar, operator: str, right: _Scalar) -> bool:
    if isinstance(left, _Principal) or isinstance(right, _Principal):
        return _compare_principal(left, operator, right)
    if isinstance(left, (str, bool)) or isinstance(right, (str, bool)):
        return (left == right) is (operator in ("==", "="))
    return _ordered(float(left), operator, float(right))


def _compare_principal(left: _Scalar, operator: str, right: _Scalar) -> bool:
    if not isinstance(left, _Principal):  # a literal on the left: mirror the comparison
        mirrored = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(operator, operator)
        return _compare_principal(right, mirrored, left)
    if isinstance(right, str):
        same = right == left.name or right == str(left.id)
        return same is (operator in ("==", "="))
    other = right.id if isinstance(right, _Principal) else float(right)
    return _ordered(float(left.id), operator, float(other))


def _ordered(left: float, operator: str, right: float) -> bool:
    if operator in ("==", "="):
        return left == right
    if operator == "!=":
        return left != right
    if operator == "<":
        return left < right
    if operator == "<=":
        return left <= right
    if operator == ">":
        return left > right
    return left >= right


def _describe(name: str, value: _Scalar) -> str:
    kind = ATTRIBUTES[name]
    if isinstance(value, _Principal):
        return f"{value.id} ({value.name})" if value.name else str(value.id)
    if isinstance(value, bool):
        return _truth(value)
    if isinstance(value, str):
        return render_string(value)
    if kind is Kind.SIZE:
        return f"{_number(value)} bytes" + _scaled(value, _SIZE_STEPS)
    return f"{_number(value)} seconds" + _scaled(value, _TIME_STEPS)


_SIZE_STEPS = ((1024.0**4, "TB"), (1024.0**3, "GB"), (1024.0**2, "MB"), (1024.0, "KB"))
_TIME_STEPS = ((604800.0, "weeks"), (86400.0, "days"), (3600.0, "hours"), (60.0, "minutes"))


def _scaled(value: float, steps: tuple[tuple[float, str], ...]) -> str:
    for size, unit in steps:
        if abs(value) >= size:
            amount = f"{value / size:.3g}"
            return f" ({amount} {unit.rstrip('s') if amount == '1' else unit})"
    return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _truth(value: bool) -> str:
    return "true" if value else "false"
