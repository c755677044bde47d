"""Objectives: the placement language of docs/objective-language.md — parse rules, evaluate
them against a file's facts, and combine a site's rules into the SLOs that apply. Pure: no I/O.

``parse``/``parse_named`` turn text into an :class:`Objective` or raise :class:`ObjectiveError`
(a ``BadInput``: line, column, what was expected). ``Objective.evaluate(FileFacts)`` gives an
:class:`Evaluation`; ``resolve`` combines a site's ordered rules into a :class:`Placement`.
"""

from __future__ import annotations

from meridian.objectives.language import *  # noqa: F403 - the package's face is language's
from meridian.objectives.language import __all__ as __all__
