"""Sets of half-open byte ranges ``[start, end)``, kept merged and sorted.

A partial instance records with a :class:`RangeSet` which bytes of its content are already on
local disk; the mover asks it which sub-ranges of a read are still missing.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator


def _check_range(start: int, end: int) -> None:
    if start < 0 or end < start:
        raise ValueError(f"bad byte range [{start}, {end})")


class RangeSet:
    """A set of byte offsets, stored as sorted, disjoint, non-touching ranges ``[start, end)``.

    Overlapping or touching ranges are merged when added, so two sets that hold the same
    offsets are equal and iterate the same ranges. Empty ranges are never stored.

    Not thread-safe: the owner (a volume's index) holds its lock around every call.
    """

    __slots__ = ("_starts", "_ends", "_total")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._total = 0
        for start, end in ranges:
            self.add(start, end)

    @classmethod
    def full(cls, size: int) -> RangeSet:
        """The set holding every offset of a content of ``size`` bytes."""
        return cls([(0, size)])

    def add(self, start: int, end: int) -> int:
        """Add ``[start, end)``; return how many of its bytes were not already present.

        Idempotent. Raises ValueError if ``start < 0`` or ``end < start``.
        """
        _check_range(start, end)
        if start == end:
            return 0
        first = bisect.bisect_left(self._ends, start)  # first range ending at or after start
        stop = bisect.bisect_right(self._starts, end)  # first range starting after end
        covered = 0
        new_start, new_end = start, end
        if first < stop:
            for s, e in zip(self._starts[first:stop], self._ends[first:stop], strict=True):
                covered += max(0, min(e, end) - max(s, start))
            new_start = min(start, self._starts[first])
            new_end = max(end, self._ends[stop - 1])
        self._starts[first:stop] = [new_start]
        self._ends[first:stop] = [new_end]
        added = (end - start) - covered
        self._total += added
        return added

    def contains(self, start: int, end: int) -> bool:
        """True if every offset of ``[start, end)`` is present (always True for an empty range)."""
        _check_range(start, end)
        if start == end:
            return True
        index = bisect.bisect_right(self._starts, start) - 1
        return index >= 0 and self._ends[index] >= end

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The sub-ranges of ``[start, end)`` that are not present, in order, merged."""
        _check_range(start, end)
        gaps: list[tuple[int, int]] = []
        cursor = start
        index = bisect.bisect_right(self._ends, start)  # first range ending after start
        while cursor < end and index < len(self._starts) and self._starts[index] < end:
            if self._starts[index] > cursor:
                gaps.append((cursor, self._starts[index]))
            cursor = max(cursor, self._ends[index])
            index += 1
        if cursor < end:
            gaps.append((cursor, end))
        return gaps

    def total(self) -> int:
        """How many bytes are present."""
        return self._total

    def copy(self) -> RangeSet:
        """An independent copy."""
        other = RangeSet()
        other._starts = list(self._starts)
        other._ends = list(self._ends)
        other._total = self._total
        return other

    def to_json(self) -> list[list[int]]:
        """The ranges as a JSON-ready list of ``[start, end]`` pairs, sorted."""
        return [[s, e] for s, e in zip(self._starts, self._ends, strict=True)]

    @classmethod
    def from_json(cls, value: object) -> RangeSet:
        """Parse what :meth:`to_json` wrote. Raises ValueError on anything malformed.

        Unsorted or overlapping pairs are accepted and merged.
        """
        if not isinstance(value, list):
            raise ValueError("byte ranges must be a list of [start, end] pairs")
        result = cls()
        for pair in value:
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
            ):
                raise ValueError(f"bad byte range {pair!r}: expected [start, end]")
            result.add(pair[0], pair[1])
        return result

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(list(zip(self._starts, self._ends, strict=True)))

    def __len__(self) -> int:
        """The number of disjoint ranges (not bytes: see :meth:`total`)."""
        return len(self._starts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RangeSet):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"RangeSet({list(self)!r})"
