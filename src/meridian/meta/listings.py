"""Directory listings kept in memory by a writable store (``SqliteMetaStore``).

A listing is a folder's ``(name, ino)`` pairs in the store's order: by the name's bytes
(``os.fsencode``), as SQLite orders the BLOB names. It is read from the database once, then
kept up to date by every entry the store writes or deletes, so listing a folder again, or for
the first time after creating files in it, reads no row (a folder made here starts as a known,
empty listing). Readers get a copy: a caller may change the folder while it walks the list.

Bounded like the store's other caches: at most ``limit`` entries in all (a folder larger than
that is never kept), emptied when full, and emptied by the store when a transaction rolls
back.
"""

from __future__ import annotations

import bisect
import sys

_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _order(entry: tuple[str, int]) -> bytes:
    return entry[0].encode(_FS_ENCODING, _FS_ERRORS)  # = os.fsencode, the database's order


def _find(kept: list[tuple[str, int]], name: str) -> tuple[int, bool]:
    """Where ``name`` is, or would go, in ``kept``; and whether it is there."""
    at = bisect.bisect_left(kept, _order((name, 0)), key=_order)
    return at, at < len(kept) and kept[at][0] == name


class Listings:
    """Kept listings of folders, by the folder's inode number."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: dict[int, list[tuple[str, int]]] = {}
        self._size = 0  # entries in all kept listings

    def __len__(self) -> int:
        return self._size

    def get(self, parent: int) -> list[tuple[str, int]] | None:
        """A copy of ``parent``'s listing, or None when it is not kept."""
        kept = self._kept.get(parent)
        return None if kept is None else list(kept)

    def keep(self, parent: int, listing: list[tuple[str, int]]) -> None:
        """Keep ``listing`` (sorted as the database sorts it) as ``parent``'s."""
        if len(listing) > self.limit:
            return
        self.forget(parent)
        if self._size + len(listing) > self.limit:
            self.clear()
        self._kept[parent] = list(listing)
        self._size += len(listing)

    def put(self, parent: int, name: str, ino: int) -> None:
        """The entry ``name`` of ``parent`` now holds ``ino`` (added or replaced)."""
        kept = self._kept.get(parent)
        if kept is None:
            return
        at, found = _find(kept, name)
        if found:
            kept[at] = (name, ino)
            return
        if self._size >= self.limit:
            self.clear()
            return
        kept.insert(at, (name, ino))
        self._size += 1

    def remove(self, parent: int, name: str) -> None:
        """The entry ``name`` of ``parent`` is gone."""
        kept = self._kept.get(parent)
        if kept is None:
            return
        at, found = _find(kept, name)
        if found:
            del kept[at]
            self._size -= 1

    def forget(self, parent: int) -> None:
        dropped = self._kept.pop(parent, None)
        if dropped is not None:
            self._size -= len(dropped)

    def clear(self) -> None:
        self._kept.clear()
        self._size = 0
