"""The SQLite store as a whole file, for a site that joins: a consistent copy of a running
site's store (what ``GET /api/v1/snapshot`` serves) and the new site's adoption of that copy.

Both work on files through connections of their own, never on the running store's; the
store (``sqlite.py``) exposes them as ``snapshot_to`` and ``adopt_snapshot``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from meridian.errors import BadInput, StoreError


def copy_store(store: Path, path: Path) -> int:
    """Write a consistent copy of the store file ``store`` to ``path`` (a new SQLite file: the
    snapshot format a joining site adopts) and return the journal position it holds.

    Safe to call from another thread while the site writes: it reads through its own
    connection inside one read transaction (WAL), so it never blocks the site and never
    sees half a change. It touches nothing else of the store: the caller ``sync()``s
    after it (on the store's thread) before serving the copy, so no peer sees a change a
    crash could take back."""
    path.unlink(missing_ok=True)
    reader = sqlite3.connect(f"file:{store}?mode=ro", uri=True, isolation_level=None)
    try:
        reader.execute("VACUUM INTO ?", (str(path),))  # one read transaction
    finally:
        reader.close()
    copy = sqlite3.connect(str(path))
    try:
        row = copy.execute("SELECT value FROM kv WHERE key = 'last_seq'").fetchone()
    finally:
        copy.close()
    return int(row[0]) if row else 0


def adopt_store_file(snapshot: Path, path: Path, site_name: str, source: str,
                     schema_version: int) -> None:
    """Make the snapshot of site ``source`` the store file of a new site ``site_name`` at
    ``path``: a new identity, an empty journal (this site has made no change yet), no
    uploads (the content is the source's to upload), and the source's journal position
    as where to pull it from. Every origin's applied position is kept.

    Raises StoreError if the file is not a snapshot of ``schema_version``, BadInput if a site
    of that name already exists in the namespace."""
    db = sqlite3.connect(str(snapshot), isolation_level=None)
    try:
        kv = dict(db.execute("SELECT key, value FROM kv").fetchall())
        if kv.get("schema_version") != str(schema_version):
            raise StoreError(f"{snapshot}: not a snapshot of metadata schema {schema_version}")
        if f"applied:{site_name}" in kv or kv.get("site_name") == site_name:
            raise BadInput(f"a site named {site_name!r} already exists in this namespace; "
                           "choose another name")
        last_seq = kv.get("last_seq", "0")
        db.execute("BEGIN")
        db.execute("DELETE FROM journal")
        db.execute("DELETE FROM uploads")
        db.execute("DELETE FROM kv WHERE key LIKE 'peer:%'")
        # the source's own collection and upload holds are its own, not the new site's
        db.execute("DELETE FROM kv WHERE key IN ('setting:gc', 'setting:gc_holds')")
        for key, value in (("site_name", site_name), ("site_id", os.urandom(16).hex()),
                           ("next_counter", "1"), ("last_seq", "0"),
                           (f"peer:{source}", last_seq)):
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))
        db.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{snapshot}: not a usable snapshot: {exc}") from exc
    finally:
        db.close()
    for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):  # of an earlier attempt:
        leftover.unlink(missing_ok=True)  # SQLite would replay them into the new store
    os.replace(snapshot, path)
