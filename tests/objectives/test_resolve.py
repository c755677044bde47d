"""Combining a site's rules: all SLOs of all matching rules apply; the rule listed first wins a
contradiction, and the loser is recorded (docs/objective-language.md, Contradictions)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meridian.objectives import FileFacts, Objective, Slo, contradicts, parse, resolve

FILE = FileFacts("./shots/sh010.clip", size=10)


def rule(*slos: str, when: str = "") -> Objective:
    actions = "{" + ", ".join(f"SLO('{name}')" for name in slos) + "}"
    return parse(f"IF {when} THEN {actions}" if when else actions)


def test_the_rule_listed_first_wins_a_contradiction_and_the_loser_is_recorded() -> None:
    rules = [("a", rule("place-on-local-volumes")), ("b", rule("exclude-from-local-volumes",
                                                               "prefetch-sequence"))]
    placement = resolve(rules, FILE)
    assert placement.slos == (Slo("place-on-local-volumes"), Slo("prefetch-sequence"))
    first, second = placement.results
    assert (first.rule_id, first.overridden) == ("a", ())
    assert (second.rule_id, second.overridden, second.overridden_by) == (
        "b", ("exclude-from-local-volumes",), ("a",))
    assert second.evaluation.slos == (Slo("exclude-from-local-volumes"), Slo("prefetch-sequence"))

    swapped = resolve(list(reversed(rules)), FILE)
    assert swapped.slos == (Slo("exclude-from-local-volumes"), Slo("prefetch-sequence"))
    assert swapped.results[1].overridden == ("place-on-local-volumes",)


def test_duplicates_collapse_without_being_overridden() -> None:
    placement = resolve([("a", rule("confine-to-site")), ("b", rule("confine-to-local-volumes")),
                         ("c", rule("keep-online", "confine-to-local-volumes"))], FILE)
    assert placement.slos == (Slo("confine-to-local-volumes"), Slo("keep-online"))
    assert all(result.overridden == () for result in placement.results)


def test_rules_that_do_not_match_contribute_and_override_nothing() -> None:
    placement = resolve([("big", rule("exclude-from-local-volumes", when="SIZE > 1MB")),
                         ("all", rule("place-on-local-volumes"))], FILE)
    assert placement.slos == (Slo("place-on-local-volumes"),)
    assert [r.evaluation.matched for r in placement.results] == [False, True]
    assert placement.results[1].overridden == ()


def test_a_dropped_slo_overrides_nothing_after_it() -> None:
    placement = resolve([("a", rule("place-on-local-volumes")),
                         ("b", rule("exclude-from-local-volumes")),
                         ("c", rule("keep-online"))], FILE)
    assert placement.slos == (Slo("place-on-local-volumes"), Slo("keep-online"))
    assert [r.overridden for r in placement.results] == [(), ("exclude-from-local-volumes",), ()]


def test_no_rules_no_slos() -> None:
    assert resolve([], FILE).slos == () and resolve([], FILE).results == ()


@pytest.mark.parametrize("first, second", [
    ("place-on-local-volumes", "exclude-from-local-volumes"),
    ("place-on-shared-object-volumes", "exclude-from-shared-object-volumes"),
    ("confine-to-local-volumes", "place-on-shared-object-volumes"),
    ("confine-to-site", "place-on-shared-object-volumes"),
    ("confine-to-local-volumes", "confine-to-shared-object-volumes"),
    ("confine-to-shared-object-volumes", "place-on-local-volumes"),
    ("confine-to-local-volumes", "exclude-from-local-volumes"),
    ("do-not-move", "place-on-local-volumes"),
    ("do-not-move", "exclude-from-local-volumes"),
    ("do-not-move", "prefetch-sequence"),
    ("keep-online", "exclude-from-local-volumes"),
])
def test_contradicting_pairs(first: str, second: str) -> None:
    assert contradicts(first, second) and contradicts(second, first)
    placement = resolve([("1", rule(first)), ("2", rule(second))], FILE)
    assert len(placement.slos) == 1 and placement.results[1].overridden


@pytest.mark.parametrize("first, second", [
    ("place-on-local-volumes", "place-on-shared-object-volumes"),
    ("place-on-local-volumes", "keep-online"),
    ("confine-to-local-volumes", "place-on-local-volumes"),
    ("confine-to-site", "confine-to-local-volumes"),
    ("do-not-move", "keep-online"),
    ("prefetch-sequence", "exclude-from-local-volumes"),
    ("exclude-from-local-volumes", "exclude-from-shared-object-volumes"),
])
def test_compatible_pairs(first: str, second: str) -> None:
    assert not contradicts(first, second) and not contradicts(second, first)


SLO_NAMES = ["place-on-local-volumes", "exclude-from-local-volumes", "confine-to-local-volumes",
             "place-on-shared-object-volumes", "exclude-from-shared-object-volumes",
             "confine-to-shared-object-volumes", "keep-online", "do-not-move",
             "prefetch-sequence"]
_consistent_sets = st.lists(st.sampled_from(SLO_NAMES), max_size=3, unique=True).filter(
    lambda names: not any(contradicts(a, b) for a, b in itertools.combinations(names, 2)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_consistent_sets, st.booleans()), max_size=6))
def test_resolve_keeps_a_consistent_set_and_accounts_for_every_slo(
        specs: list[tuple[list[str], bool]]) -> None:
    rules = [(f"r{i}", rule(*names, when="IS_FILE" if applies else "IS_DIRECTORY"))
             for i, (names, applies) in enumerate(specs)]
    placement = resolve(rules, FILE)
    effective = [slo.name for slo in placement.slos]
    assert len(effective) == len(set(effective))
    assert not any(contradicts(a, b) for a, b in itertools.combinations(effective, 2))
    expected: list[str] = []  # first-listed wins, replayed by hand
    for (names, applies), result in zip(specs, placement.results):
        lost = [n for n in names if applies and n not in expected
                and any(contradicts(n, kept) for kept in expected)]
        assert list(result.overridden) == lost
        expected += [n for n in names if applies and n not in expected and n not in lost]
        assert result.evaluation.matched is applies
    assert effective == expected
