"""The in-memory account of one local volume: its instances, LRU clock, pins, open handles and
byte totals. No I/O; :class:`~meridian.content.volume.LocalVolume` keeps it in step with disk.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from meridian.content.ranges import RangeSet


@dataclass(eq=False)
class IndexEntry:
    """One instance. ``ranges`` is None once complete; for a partial instance it holds the
    bytes present (fsync'd in the data file).

    ``tick`` orders use (higher = more recent). The two locks serve partial instances and are
    taken *before* the volume's lock, never while holding it: ``ranges_lock`` serialises
    writes of the ``.ranges`` file, ``finish_lock`` serialises :meth:`finish_partial`.
    ``ranges_version`` counts changes to ``ranges``; ``saved_version`` is the change last
    written to the ``.ranges`` file.
    """

    hash: str
    size: int
    ranges: RangeSet | None
    tick: int
    last_used: float
    ranges_version: int = 0
    saved_version: int = 0
    ranges_lock: threading.Lock = field(default_factory=threading.Lock)
    finish_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def complete(self) -> bool:
        return self.ranges is None

    @property
    def present_bytes(self) -> int:
        return self.size if self.ranges is None else self.ranges.total()


class InstanceIndex:
    """Instances by hash plus the byte totals that capacity is checked against.

    ``pinned`` and ``open_counts`` are kept by hash, independent of the instances, so a pin or
    an open handle taken before the content arrives protects it once it does.

    No I/O. Not thread-safe: the owning volume holds its lock around every call.
    """

    def __init__(self) -> None:
        self.entries: dict[str, IndexEntry] = {}
        self.pinned: set[str] = set()
        self.open_counts: dict[str, int] = {}
        self.staging_bytes = 0
        self.reserved_bytes = 0
        self.complete_bytes = 0
        self.partial_bytes = 0
        self._clock = 0

    @property
    def used(self) -> int:
        """Bytes counted against capacity, including reservations of writes in flight."""
        return self.staging_bytes + self.reserved_bytes + self.complete_bytes + self.partial_bytes

    def get(self, content_hash: str) -> IndexEntry | None:
        return self.entries.get(content_hash)

    def touch(self, entry: IndexEntry, when: float | None = None) -> None:
        """Mark ``entry`` as the most recently used instance."""
        self._clock += 1
        entry.tick = self._clock
        entry.last_used = time.time() if when is None else when

    def add(
        self, content_hash: str, size: int, ranges: RangeSet | None, last_used: float | None = None
    ) -> IndexEntry:
        """Add an instance (complete if ``ranges`` is None) as the most recently used one.
        The caller has checked that ``content_hash`` is not indexed yet."""
        assert content_hash not in self.entries, content_hash
        entry = IndexEntry(content_hash, size, ranges, 0, 0.0)
        self.touch(entry, last_used)
        self.entries[content_hash] = entry
        if ranges is None:
            self.complete_bytes += size
        else:
            self.partial_bytes += ranges.total()
        return entry

    def make_complete(self, entry: IndexEntry) -> None:
        """Turn a partial entry into a complete one (its data file became the content file)."""
        self.partial_bytes -= entry.present_bytes
        entry.ranges = None
        self.complete_bytes += entry.size
        self.touch(entry)

    def record(self, entry: IndexEntry, start: int, end: int) -> int:
        """Record bytes ``[start, end)`` as present in a partial entry; returns the new bytes."""
        assert entry.ranges is not None
        added = entry.ranges.add(start, end)
        if added:
            self.partial_bytes += added
            entry.ranges_version += 1
        return added

    def forget(self, entry: IndexEntry) -> None:
        """Drop an entry whose files are already gone. Idempotent."""
        if self.entries.get(entry.hash) is not entry:
            return
        del self.entries[entry.hash]
        if entry.ranges is None:
            self.complete_bytes -= entry.size
        else:
            self.partial_bytes -= entry.ranges.total()

    def open_count(self, content_hash: str) -> int:
        return self.open_counts.get(content_hash, 0)

    def add_ref(self, content_hash: str) -> None:
        self.open_counts[content_hash] = self.open_counts.get(content_hash, 0) + 1

    def drop_ref(self, content_hash: str) -> bool:
        """Drop one open handle; False if there was none."""
        count = self.open_counts.get(content_hash, 0)
        if count <= 0:
            return False
        if count == 1:
            del self.open_counts[content_hash]
        else:
            self.open_counts[content_hash] = count - 1
        return True

    def eviction_candidates(self) -> list[IndexEntry]:
        """Instances neither pinned nor open that hold bytes, least recently used first.
        Whether a complete one may go (is it in the bucket?) is for the caller to ask."""
        candidates = [
            entry
            for entry in self.entries.values()
            if entry.hash not in self.pinned
            and self.open_count(entry.hash) == 0
            and entry.present_bytes > 0
        ]
        candidates.sort(key=lambda entry: entry.tick)
        return candidates

    def blocked_counts(self) -> tuple[int, int]:
        """(pinned, open): how many local instances eviction may not touch, and why."""
        pinned = sum(1 for h in self.entries if h in self.pinned)
        opened = sum(1 for h in self.entries if h not in self.pinned and self.open_count(h) > 0)
        return pinned, opened
