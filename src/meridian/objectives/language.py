"""The Objective language's public face: everything callers need, importable from here (or from
``meridian.objectives``). Pure: parse and evaluate, no I/O.

- :func:`parse` / :func:`parse_named` → :class:`Objective`, or :class:`ObjectiveError`
  (a ``BadInput``: line, column, what was expected) — never any other exception.
- :meth:`Objective.evaluate` (:class:`FileFacts`) → :class:`Evaluation` (matched, SLOs, why).
- :func:`resolve` combines a site's ordered rules into a :class:`Placement`.
- :func:`known_slos` / :data:`DEFAULT_GROUPS`: the SLO names a site accepts.

The implementation is split by job: ``lexer`` and ``parser`` (text → ``syntax`` tree),
``matching`` (FNMATCH, MATCH_EXTENSION, REGEX), ``evaluate``, ``slos``, ``facts``, ``resolve``.
"""

from __future__ import annotations

from meridian.objectives.evaluate import Evaluation
from meridian.objectives.facts import FileFacts
from meridian.objectives.objective import Objective, parse, parse_named, split_rules
from meridian.objectives.resolve import Placement, RuleResult, resolve
from meridian.objectives.slos import (DEFAULT_GROUPS, Slo, canonical_slo, contradicts,
                                      known_slos)
from meridian.objectives.syntax import ObjectiveError

__all__ = [
    "DEFAULT_GROUPS",
    "Evaluation",
    "FileFacts",
    "Objective",
    "ObjectiveError",
    "Placement",
    "RuleResult",
    "Slo",
    "canonical_slo",
    "contradicts",
    "known_slos",
    "parse",
    "parse_named",
    "resolve",
    "split_rules",
]
