"""RangeSet: unit cases, and Hypothesis properties against a naive set-of-offsets model."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meridian.content.ranges import RangeSet

LIMIT = 200  # offsets stay small so the set-of-offsets model is cheap

bounds = st.tuples(st.integers(0, LIMIT), st.integers(0, LIMIT)).map(lambda p: (min(p), max(p)))


def offsets_of(ranges: list[tuple[int, int]]) -> set[int]:
    return {offset for start, end in ranges for offset in range(start, end)}


def ranges_of(offsets: set[int]) -> list[tuple[int, int]]:
    """The canonical (merged, sorted) ranges of a set of offsets."""
    result: list[tuple[int, int]] = []
    for offset in sorted(offsets):
        if result and result[-1][1] == offset:
            result[-1] = (result[-1][0], offset + 1)
        else:
            result.append((offset, offset + 1))
    return result


def test_add_merges_overlapping_and_touching_ranges() -> None:
    ranges = RangeSet()
    assert ranges.add(10, 20) == 10
    assert ranges.add(30, 40) == 10
    assert ranges.add(20, 30) == 10  # touches both: one range
    assert list(ranges) == [(10, 40)]
    assert ranges.add(15, 35) == 0
    assert ranges.add(5, 45) == 10
    assert list(ranges) == [(5, 45)]
    assert ranges.total() == 40
    assert len(ranges) == 1


def test_empty_range_is_ignored_and_always_contained() -> None:
    ranges = RangeSet()
    assert ranges.add(7, 7) == 0
    assert list(ranges) == []
    assert ranges.contains(7, 7)
    assert ranges.missing(3, 3) == []


def test_missing_lists_the_gaps_in_order() -> None:
    ranges = RangeSet([(10, 20), (30, 40)])
    assert ranges.missing(0, 50) == [(0, 10), (20, 30), (40, 50)]
    assert ranges.missing(12, 18) == []
    assert ranges.missing(15, 35) == [(20, 30)]
    assert ranges.missing(20, 30) == [(20, 30)]
    assert not ranges.contains(15, 35)
    assert ranges.contains(30, 40)


def test_bad_ranges_are_refused() -> None:
    with pytest.raises(ValueError):
        RangeSet().add(5, 4)
    with pytest.raises(ValueError):
        RangeSet().add(-1, 4)
    with pytest.raises(ValueError):
        RangeSet().missing(9, 2)


def test_json_round_trip_and_malformed_input() -> None:
    ranges = RangeSet([(0, 4), (8, 16)])
    encoded = json.dumps(ranges.to_json())
    assert encoded == "[[0, 4], [8, 16]]"
    assert RangeSet.from_json(json.loads(encoded)) == ranges
    assert RangeSet.from_json([[8, 16], [0, 4], [2, 9]]) == RangeSet([(0, 16)])
    for bad in ({"a": 1}, [[1]], [[1, 2, 3]], [["1", 2]], [[True, 2]], [[5, 1]], [1, 2], None):
        with pytest.raises(ValueError):
            RangeSet.from_json(bad)


def test_equality_copy_and_full() -> None:
    ranges = RangeSet([(0, 5)])
    copy = ranges.copy()
    copy.add(5, 6)
    assert ranges == RangeSet.full(5)
    assert copy == RangeSet.full(6)
    assert ranges != copy
    assert ranges != [(0, 5)]


@given(st.lists(bounds, max_size=20))
def test_add_matches_the_offset_model(added: list[tuple[int, int]]) -> None:
    ranges = RangeSet()
    model: set[int] = set()
    for start, end in added:
        new = offsets_of([(start, end)]) - model
        assert ranges.add(start, end) == len(new)
        model |= new
    assert list(ranges) == ranges_of(model)
    assert ranges.total() == len(model)


@given(st.lists(bounds, max_size=20), bounds)
def test_contains_and_missing_match_the_offset_model(
    added: list[tuple[int, int]], query: tuple[int, int]
) -> None:
    ranges = RangeSet(added)
    model = offsets_of(added)
    start, end = query
    wanted = set(range(start, end))
    assert ranges.contains(start, end) == (wanted <= model)
    assert ranges.missing(start, end) == ranges_of(wanted - model)


@given(st.lists(bounds, max_size=20))
def test_order_of_adds_does_not_matter_and_json_round_trips(added: list[tuple[int, int]]) -> None:
    forwards = RangeSet(added)
    backwards = RangeSet(reversed(added))
    assert forwards == backwards
    assert RangeSet.from_json(json.loads(json.dumps(forwards.to_json()))) == forwards
