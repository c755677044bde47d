"""The SQLite engine's side of the undo records (``undo.py``): the compact table of snapshot
holds and the tree reader that snapshots are made from.

Everything else of the undo records (trash, versions, snapshots, ``hold:`` rows) lives in
the key-value table through the hooks every engine shares; only these two need SQL of their
own. ``SqliteMetaStore`` (``sqlite.py``) takes them in; ``UNDO_SCHEMA`` is created with its
schema.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from meridian.meta.undo import TreeRow, tree_rows

# one counted row per distinct content that any snapshot names (shared by every snapshot)
UNDO_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot_holds (hash BLOB PRIMARY KEY, refs INTEGER NOT NULL)
    WITHOUT ROWID;
"""


class SqliteUndoTables:
    """The undo hooks of the SQLite engine, over its connection ``_db`` and file ``path``."""

    _db: sqlite3.Connection
    path: Path

    def tree_reader(self) -> Callable[[], Iterator[TreeRow]]:
        """Every named entry, read from one read snapshot of its own connection (WAL: the
        site's writers do not wait for it); the reader may run on any thread."""
        path = self.path

        def read() -> Iterator[TreeRow]:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            try:
                db.execute("BEGIN")  # one snapshot for every query below
                rows = db.execute(
                    "SELECT e.parent, e.name, i.ino, i.mode, i.uid, i.gid, i.size, i.mtime_ns, "
                    "i.content, i.target FROM entries e JOIN inodes i ON i.ino = e.ino")
                yield from tree_rows((p, os.fsdecode(n), *rest) for p, n, *rest in rows)
                db.execute("COMMIT")
            finally:
                db.close()
        return read

    def _snapshot_holds(self, hash: str) -> int:
        try:
            key = bytes.fromhex(hash)
        except ValueError:
            return 0
        row = self._db.execute("SELECT refs FROM snapshot_holds WHERE hash = ?", (key,)).fetchone()
        return int(str(row[0])) if row else 0

    def _add_snapshot_holds(self, hashes: Iterable[str], delta: int) -> None:
        keys = [(key,) for key in sorted(bytes.fromhex(h) for h in hashes)]  # in key order:
        # appends to the B-tree instead of splitting pages everywhere
        if delta > 0:
            self._db.executemany("INSERT INTO snapshot_holds VALUES (?, 1) ON CONFLICT (hash) "
                                 "DO UPDATE SET refs = refs + 1", keys)
        else:
            self._db.executemany("UPDATE snapshot_holds SET refs = refs - 1 WHERE hash = ?", keys)
            self._db.execute("DELETE FROM snapshot_holds WHERE refs <= 0")
