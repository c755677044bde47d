"""Keeping a local volume within its capacity: reserve room, evict least-recently-used.

docs/design.md, rules 6 and 7: a volume never holds more than its capacity (beyond files open for
writing), and eviction takes, least recently used first, only instances that are evictable:
not pinned, not open, and — for complete instances — known to be complete in the bucket
(the composition root answers that through ``is_evictable``). Partial instances are caches
and may go whenever they are neither pinned nor open.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from meridian.content.durable import unlink_if_present, volume_error
from meridian.content.index import IndexEntry, InstanceIndex
from meridian.content.layout import VolumeLayout
from meridian.content.records import (
    REFUSED_NOT_LOCAL,
    REFUSED_ONLY_COPY,
    REFUSED_OPEN,
    REFUSED_PINNED,
    EvictResult,
)
from meridian.errors import NoSpace
from meridian.testpoints import reached

_MAX_STALLED_ROUNDS = 3  # eviction rounds that freed nothing (others kept using the victims)


@dataclass(frozen=True)
class _Victim:
    entry: IndexEntry
    tick: int
    complete: bool
    present_bytes: int


class CapacityGuard:
    """Reserves room on one volume, evicting as needed.

    Shares the volume's lock and index. ``is_evictable`` is called *without* the lock held
    (it may ask the metadata store), so every choice is re-checked under the lock before a
    file is deleted. Thread-safe.
    """

    def __init__(
        self,
        *,
        name: str,
        capacity: int | None,
        layout: VolumeLayout,
        lock: threading.Lock,
        index: InstanceIndex,
        is_evictable: Callable[[str], bool],
    ) -> None:
        self.name = name
        self.capacity = capacity
        self._layout = layout
        self._lock = lock
        self._index = index
        self._is_evictable = is_evictable

    def hold_room(self, nbytes: int) -> None:
        """Make room for ``nbytes`` more bytes and count them as reserved until the caller
        releases them (``index.reserved_bytes -= nbytes`` under the lock).

        Evicts least-recently-used evictable instances, only as many as needed and only if
        enough can go. Raises NoSpace, having evicted nothing, when they cannot; its message
        names the volume, the capacity, the bytes used and what blocked eviction. Call without
        holding the lock.
        """
        if nbytes <= 0:
            return
        stalled_rounds = 0
        while True:
            with self._lock:
                used = self._index.used
                if self.capacity is None or used + nbytes <= self.capacity:
                    self._index.reserved_bytes += nbytes
                    return
                shortfall = used + nbytes - self.capacity
                candidates = [
                    _Victim(entry, entry.tick, entry.complete, entry.present_bytes)
                    for entry in self._index.eviction_candidates()
                ]
                pinned, opened = self._index.blocked_counts()
            victims, not_in_bucket = self._choose_victims(candidates, shortfall)
            if victims is None or stalled_rounds >= _MAX_STALLED_ROUNDS:
                raise NoSpace(
                    f"volume {self.name!r} is full: capacity {self.capacity} bytes, "
                    f"{used} used, {nbytes} more needed; cannot evict enough "
                    f"({pinned} pinned, {opened} open, {not_in_bucket} not yet in the bucket)"
                )
            with self._lock:
                freed = sum(self._evict_if_unchanged_locked(victim) for victim in victims)
            stalled_rounds = 0 if freed else stalled_rounds + 1

    def release(self, nbytes: int) -> None:
        """Give back bytes reserved by :meth:`hold_room`. Call without holding the lock."""
        if nbytes > 0:
            with self._lock:
                self._index.reserved_bytes -= nbytes

    def evict(self, content_hash: str) -> EvictResult:
        """Evict one instance if the rules allow, whatever its recency; otherwise say why not
        (one of the ``REFUSED_*`` reasons). Call without holding the lock."""
        while True:
            with self._lock:
                entry = self._index.get(content_hash)
                refusal = self._refusal_locked(content_hash, entry)
                if refusal is not None or entry is None:
                    return EvictResult(content_hash, False, reason=refusal or REFUSED_NOT_LOCAL)
                complete = entry.complete
            if complete and not self._is_evictable(content_hash):
                return EvictResult(content_hash, False, reason=REFUSED_ONLY_COPY)
            with self._lock:
                if self._index.get(content_hash) is not entry or entry.complete != complete:
                    continue  # it changed while we asked: look again
                refusal = self._refusal_locked(content_hash, entry)
                if refusal is not None:
                    return EvictResult(content_hash, False, reason=refusal)
                freed = self.delete_locked(entry)
            return EvictResult(content_hash, True, freed=freed)

    def delete_locked(self, entry: IndexEntry) -> int:
        """Delete an instance's files, then forget it; returns the bytes freed. Caller holds
        the lock and has checked that nobody has it open. Raises ContentError/NoSpace
        (translated OSError) with the instance still indexed if a file cannot be deleted."""
        freed = entry.present_bytes
        try:
            if entry.complete:
                unlink_if_present(self._layout.content_path(entry.hash))
                reached("volume.evicting")
            else:
                unlink_if_present(self._layout.partial_ranges_path(entry.hash))
                reached("volume.evicting")  # a partial's data without its ranges
                unlink_if_present(self._layout.partial_data_path(entry.hash))
        except OSError as exc:
            raise volume_error(exc, f"deleting instance {entry.hash}") from exc
        self._index.forget(entry)
        return freed

    def _refusal_locked(self, content_hash: str, entry: IndexEntry | None) -> str | None:
        if entry is None:
            return REFUSED_NOT_LOCAL
        if content_hash in self._index.pinned:
            return REFUSED_PINNED
        if self._index.open_count(content_hash) > 0:
            return REFUSED_OPEN
        return None

    def _choose_victims(
        self, candidates: list[_Victim], shortfall: int
    ) -> tuple[list[_Victim] | None, int]:
        """The least-recently-used prefix of evictable candidates that frees ``shortfall``
        bytes (None if all of them together cannot), and how many complete candidates were
        skipped because they are not yet in the bucket."""
        chosen: list[_Victim] = []
        freed = 0
        not_in_bucket = 0
        for victim in candidates:
            if victim.complete and not self._is_evictable(victim.entry.hash):
                not_in_bucket += 1
                continue
            chosen.append(victim)
            freed += victim.present_bytes
            if freed >= shortfall:
                return chosen, not_in_bucket
        return None, not_in_bucket

    def _evict_if_unchanged_locked(self, victim: _Victim) -> int:
        entry = victim.entry
        if (
            self._index.get(entry.hash) is not entry
            or entry.tick != victim.tick
            or entry.complete != victim.complete
            or self._refusal_locked(entry.hash, entry) is not None
        ):
            return 0  # used, finished, pinned, opened or gone since it was chosen
        return self.delete_locked(entry)
