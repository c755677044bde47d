"""Hybrid logical clocks: timestamps that follow wall time but never go backwards.

A value packs the physical time in milliseconds and a logical counter:
``(ms << 16) | counter``. Comparing two values orders events as rule 5 of docs/design.md needs
(the later change wins a conflict); ``observe`` folds in a peer's clock so causally later
events always compare greater, whatever the two machines' wall clocks say.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_LOGICAL_BITS = 16
_LOGICAL_MASK = (1 << _LOGICAL_BITS) - 1


def pack(ms: int, logical: int) -> int:
    return (ms << _LOGICAL_BITS) | logical


def physical_ms(hlc: int) -> int:
    """The wall-clock part of a clock value, in milliseconds since the epoch."""
    return hlc >> _LOGICAL_BITS


class HybridClock:
    """Not thread-safe; one per store. ``wall_ms`` is injectable for tests."""

    def __init__(self, last: int = 0, wall_ms: Callable[[], int] | None = None) -> None:
        self._last = last
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)

    @property
    def last(self) -> int:
        return self._last

    def now(self) -> int:
        """A value greater than every value this clock has returned or observed."""
        wall = pack(self._wall_ms(), 0)
        self._last = wall if wall > self._last else self._last + 1
        return self._last

    def observe(self, remote: int) -> None:
        """Fold in a value seen from a peer, so the next ``now()`` is greater than it."""
        if remote > self._last:
            self._last = remote
