"""SLO names: which ones a site knows, their canonical spelling, and which ones contradict.

A site has volume groups; each group ``G`` gives three placement SLOs, ``place-on-G``,
``confine-to-G`` and ``exclude-from-G``. Every site also knows the built-ins ``keep-online``,
``do-not-move``, ``prefetch-sequence`` and the alias ``confine-to-site`` (which means
``confine-to-local-volumes``). Names are case-insensitive; the canonical form is lower-case
with aliases resolved. Everything here is pure.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_GROUPS: tuple[str, ...] = ("local-volumes", "shared-object-volumes")
"""The volume groups every site has from the start (and all that ``objective test`` knows)."""

LOCAL_GROUP = "local-volumes"
RETENTION_DAYS: dict[str, float] = {"1-hour": 1 / 24, "1-day": 1.0, "1-week": 7.0, "1-month": 30.0}
RETENTION_SLOS: dict[str, float] = {f"{kind}-{span}": days for kind in ("versioning", "undelete")
                                    for span, days in RETENTION_DAYS.items()}
"""How long each undo SLO keeps earlier contents (versioning-*) and removed files (undelete-*)
of matching files, in days: at least that long, never less than ``[namespace] trash_days``."""
BUILTIN_SLOS: tuple[str, ...] = ("keep-online", "do-not-move", "prefetch-sequence")
ALIASES: dict[str, str] = {"confine-to-site": "confine-to-local-volumes"}
PLACEMENT_PREFIXES: tuple[str, ...] = ("place-on-", "confine-to-", "exclude-from-")
LATER_SLOS: tuple[str, ...] = ("keep-versions",)
"""SLOs the language names but Meridian does not implement yet: refused, never ignored."""

_DO_NOT_MOVE_CONFLICTS = frozenset(
    {"place-on-local-volumes", "exclude-from-local-volumes", "prefetch-sequence"})


@dataclass(frozen=True)
class Slo:
    """One SLO a rule asks for: its canonical name (lower-case, alias resolved) and arguments."""

    name: str
    args: tuple[object, ...] = ()


def known_slos(groups: Iterable[str] = DEFAULT_GROUPS) -> frozenset[str]:
    """Every SLO name (lower-case, aliases included) valid at a site with these volume groups."""
    names = set(BUILTIN_SLOS) | set(ALIASES) | set(RETENTION_SLOS)
    for group in groups:
        if group:
            names.update(prefix + group.lower() for prefix in PLACEMENT_PREFIXES)
    return frozenset(names)


def canonical_slo(name: str) -> str:
    """``name`` lower-cased with its alias resolved (``confine-to-site`` → ``confine-to-local-volumes``)."""
    lower = name.lower()
    return ALIASES.get(lower, lower)


def describe_known_slos(groups: Iterable[str] = DEFAULT_GROUPS) -> str:
    """A short sentence naming the valid SLOs, for error messages."""
    listed = ", ".join(group.lower() for group in groups if group) or "none"
    return (f"place-on-, confine-to- or exclude-from- and a volume group ({listed}), "
            f"or {', '.join(BUILTIN_SLOS)}, versioning-/undelete-1-hour … 1-month or "
            f"confine-to-site")


def slo_problem(name: str, groups: Iterable[str] = DEFAULT_GROUPS) -> str | None:
    """None if ``name`` is a usable SLO at a site with ``groups``; otherwise what is wrong with it."""
    lower = name.lower()
    known = known_slos(groups)
    if lower in known:
        return None
    if any(lower.startswith(later) for later in LATER_SLOS):
        return f"the SLO '{name}' is not supported yet"
    close = difflib.get_close_matches(lower, sorted(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown SLO '{name}'{hint}"


def contradicts(first: str, second: str) -> bool:
    """True if SLOs ``first`` and ``second`` cannot both hold (symmetric; names in any case).

    The pairs: ``place-on-X`` / ``exclude-from-X``; ``confine-to-X`` / ``place-on-Y``,
    ``confine-to-Y`` (X ≠ Y) and ``exclude-from-X``; ``do-not-move`` / ``place-on-local-volumes``,
    ``exclude-from-local-volumes``, ``prefetch-sequence``; ``keep-online`` /
    ``exclude-from-local-volumes``. A name never contradicts itself.
    """
    a, b = canonical_slo(first), canonical_slo(second)
    return a != b and (_contradicts_one_way(a, b) or _contradicts_one_way(b, a))


def _split_placement(name: str) -> tuple[str, str]:
    """(prefix, group) for a placement SLO, (name, "") for a built-in."""
    for prefix in PLACEMENT_PREFIXES:
        if name.startswith(prefix):
            return prefix, name[len(prefix):]
    return name, ""


def _contradicts_one_way(a: str, b: str) -> bool:
    (kind_a, group_a), (kind_b, group_b) = _split_placement(a), _split_placement(b)
    if kind_a == "place-on-" and kind_b == "exclude-from-":
        return group_a == group_b
    if kind_a == "confine-to-" and kind_b in ("place-on-", "confine-to-"):
        return group_a != group_b
    if kind_a == "confine-to-" and kind_b == "exclude-from-":
        return group_a == group_b
    if a == "do-not-move":
        return b in _DO_NOT_MOVE_CONFLICTS
    if a == "keep-online":
        return b == f"exclude-from-{LOCAL_GROUP}"
    return False
