"""Combining the rules of a site for one file: every matching rule's SLOs apply, and where two
contradict (``slos.contradicts``) the rule listed first wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meridian.objectives.evaluate import Evaluation
from meridian.objectives.facts import FileFacts
from meridian.objectives.objective import Objective
from meridian.objectives.slos import Slo, contradicts


@dataclass(frozen=True)
class RuleResult:
    """One rule's part in a placement. ``overridden``: names of this rule's SLOs dropped
    because an SLO of an earlier rule contradicts them; ``overridden_by``: the id of that
    earlier rule, one per entry of ``overridden``."""

    rule_id: str
    evaluation: Evaluation
    overridden: tuple[str, ...]
    overridden_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Placement:
    """The effective SLOs for one file (rule order, duplicates once, contradictions
    resolved) and each rule's result, in the order given."""

    slos: tuple[Slo, ...]
    results: tuple[RuleResult, ...]


def resolve(rules: Sequence[tuple[str, Objective]], facts: FileFacts) -> Placement:
    """Evaluate every ``(rule_id, objective)`` in the site's order and combine their SLOs.

    An SLO equal to one already in effect is dropped silently (duplicates collapse); one that
    contradicts an SLO already in effect is dropped and recorded in its rule's
    ``overridden``. SLOs that were dropped never override anything. Pure; never raises."""
    in_effect: list[tuple[Slo, str]] = []
    results: list[RuleResult] = []
    for rule_id, objective in rules:
        evaluation = objective.evaluate(facts)
        dropped: list[str] = []
        winners: list[str] = []
        for slo in evaluation.slos:
            if any(slo == kept for kept, _ in in_effect):
                continue
            winner = next((owner for kept, owner in in_effect if contradicts(kept.name, slo.name)),
                          None)
            if winner is None:
                in_effect.append((slo, rule_id))
            else:
                dropped.append(slo.name)
                winners.append(winner)
        results.append(RuleResult(rule_id, evaluation, tuple(dropped), tuple(winners)))
    return Placement(tuple(slo for slo, _ in in_effect), tuple(results))
