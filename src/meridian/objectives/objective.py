"""A parsed rule, :class:`Objective`, and the functions that make one: :func:`parse`,
:func:`parse_named`, and :func:`split_rules` for files of rules.

Pure: no I/O, no clock (the evaluation time comes in :class:`FileFacts`). Every problem with a
rule's text is an :class:`ObjectiveError` (a ``BadInput``) naming the line, the column and
what was expected there; nothing else is ever raised for any input text.
"""

from __future__ import annotations

from collections.abc import Iterable

from meridian.objectives.evaluate import Evaluation, evaluate_rule
from meridian.objectives.facts import FileFacts
from meridian.objectives.parser import Parser
from meridian.objectives.slos import (DEFAULT_GROUPS, Slo, canonical_slo, describe_known_slos,
                                      slo_problem)
from meridian.objectives.syntax import (AGE_ATTRIBUTES, Branch, ObjectiveError, Rule,
                                        attribute_names, render_rule)

_BLANK = " \t\r\f\v"


class Objective:
    """One parsed rule. ``text`` is the source as given; immutable; safe to share."""

    def __init__(self, text: str, rule: Rule) -> None:
        self.text = text
        self._rule = rule

    def evaluate(self, facts: FileFacts) -> Evaluation:
        """Which branch applies to this file, its SLOs, and why. Never raises."""
        return evaluate_rule(self._rule, facts)

    def uses_time(self) -> bool:
        """True if an age attribute appears: the outcome changes with time alone, so files
        must be re-evaluated periodically, not only when they change."""
        return bool(attribute_names(self._rule) & AGE_ATTRIBUTES)

    def slo_names(self) -> frozenset[str]:
        """Every (canonical) SLO name any branch of the rule can produce."""
        return frozenset(slo.name for branch in self._rule.branches for slo in branch.slos)

    def canonical_text(self) -> str:
        """The rule in canonical form on one line; ``parse`` of it gives an equal rule."""
        return render_rule(self._rule)

    def __eq__(self, other: object) -> bool:
        """Equal when the rules mean the same (same tree), whatever the spelling."""
        return isinstance(other, Objective) and self._rule == other._rule

    def __hash__(self) -> int:
        return hash(render_rule(self._rule))

    def __repr__(self) -> str:
        return f"Objective({self.text!r})"


def parse(text: str, groups: Iterable[str] = DEFAULT_GROUPS) -> Objective:
    """Parse one rule; SLO names are checked against the SLOs of ``groups`` (see
    ``known_slos``). Raises :class:`ObjectiveError` for any bad input, nothing else."""
    return Objective(text, Parser(text, groups).rule())


def parse_named(slo: str, when: str, groups: Iterable[str] = DEFAULT_GROUPS) -> Objective:
    """Hammerspace's named form: SLO ``slo`` applies when ``when`` holds; ``when`` may end in
    ``?TRUE`` or ``?ALWAYS``. Means ``IF when THEN {SLO('slo')}``, and ``.text`` is exactly
    that rule (suffix kept), so ``parse(obj.text)`` gives an equal objective.

    Error positions refer to ``when``; an unknown ``slo`` is reported at 1:1 of ``slo``."""
    groups = tuple(groups)
    problem = slo_problem(slo, groups)
    if problem is not None:
        raise ObjectiveError(describe_known_slos(groups), 1, 1, problem)
    condition, suffix = Parser(when, groups).condition()
    quoted = slo.replace("\\", "\\\\").replace("'", "\\'")
    text = f"IF {when.strip(_BLANK + chr(10))} THEN {{SLO('{quoted}')}}"
    return Objective(text, Rule((Branch(condition, (Slo(canonical_slo(slo)),), suffix),)))


def split_rules(text: str) -> list[str]:
    """The rules of a file: runs of non-blank lines separated by one or more blank lines
    (lines of only spaces and tabs count as blank). Each rule keeps its inner line breaks;
    a trailing carriage return is removed from each line."""
    rules: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line.strip(_BLANK):
            current.append(line)
        elif current:
            rules.append("\n".join(current))
            current = []
    if current:
        rules.append("\n".join(current))
    return rules
