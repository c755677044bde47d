"""The SQLite engine: the embedded default for a one-node site.

WAL mode (readers such as ``meridian status`` never block the site), one writer (the site
process; a second one waits up to ``busy_timeout`` and then fails). Durable transactions
(new content, bucket instances) commit with ``synchronous=FULL``: the WAL is fsync'd, so they
survive kill -9 and power loss (docs/design.md, rule 2), and so does everything committed before
them. Namespace operations commit with ``synchronous=NORMAL``: atomic and in order, on disk at
the next durable commit or ``sync()`` (an fsync of the WAL). A kill -9 of the process alone
loses nothing either way: the WAL is in the OS's page cache. Names are stored as BLOBs (``os.fsencode``), so any
byte string the kernel hands us round-trips.

A writable store keeps write-through caches of inodes, entries and kv rows (every write of
those tables goes through this class, and the site process is their only writer): a rename
reads the same directory inode four times, and each SELECT was a fifth of its cost. They are
bounded (emptied when full) and emptied when a transaction rolls back, so they never hold a
row the database does not. A read-only store (``meridian status``) caches nothing: the site
writes under it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from meridian.errors import StoreError
from meridian.meta.base import EngineStore
from meridian.meta.checkpoint import Checkpointer
from meridian.meta.interface import ContentRecord, Inode, JournalEntry, PendingUpload
from meridian.meta.journal import op_from_wire
from meridian.meta.listings import Listings
from meridian.meta.sqlitejoin import adopt_store_file, copy_store
from meridian.meta.sqliteundo import UNDO_SCHEMA, SqliteUndoTables

_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
CACHE_ROWS = 65_536  # per cache (inodes, entries, kv): a few tens of MB at most
WAL_BACKSTOP_PAGES = 4_000
SCHEMA_VERSION = 2  # 2: versions on inodes, origin_seq in the journal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inodes (
    ino INTEGER PRIMARY KEY, file_id TEXT NOT NULL UNIQUE, mode INTEGER NOT NULL,
    uid INTEGER NOT NULL, gid INTEGER NOT NULL, size INTEGER NOT NULL, nlink INTEGER NOT NULL,
    atime_ns INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    content TEXT, target BLOB, origin_site TEXT NOT NULL, rdev INTEGER NOT NULL DEFAULT 0,
    content_version TEXT NOT NULL, name_version TEXT NOT NULL, attr_version TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS inodes_orphans ON inodes (nlink) WHERE nlink = 0;
CREATE INDEX IF NOT EXISTS inodes_content ON inodes (content) WHERE content IS NOT NULL;
CREATE TABLE IF NOT EXISTS entries (
    parent INTEGER NOT NULL, name BLOB NOT NULL, ino INTEGER NOT NULL,
    PRIMARY KEY (parent, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_ino ON entries (ino);
CREATE TABLE IF NOT EXISTS xattrs (
    ino INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (ino, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY, origin TEXT NOT NULL, hlc INTEGER NOT NULL, op TEXT NOT NULL,
    origin_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS contents (
    hash TEXT PRIMARY KEY, size INTEGER NOT NULL, in_bucket INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    hash TEXT PRIMARY KEY, size INTEGER NOT NULL, priority INTEGER NOT NULL,
    attempts INTEGER NOT NULL, next_try REAL NOT NULL, last_error TEXT NOT NULL,
    queued INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS uploads_queued ON uploads (queued);
"""

_INODE_COLUMNS = ("ino, file_id, mode, uid, gid, size, nlink, atime_ns, mtime_ns, ctime_ns, "
                  "content, target, origin_site, rdev, content_version, name_version, attr_version")


def _to_inode(row: tuple[Any, ...]) -> Inode:
    (ino, file_id, mode, uid, gid, size, nlink, atime_ns, mtime_ns, ctime_ns, content, target,
     origin_site, rdev, content_version, name_version, attr_version) = row
    return Inode(ino, file_id, mode, uid, gid, size, nlink, atime_ns, mtime_ns, ctime_ns,
                 content, os.fsdecode(target) if target is not None else None, origin_site, rdev,
                 content_version, name_version, attr_version)


def _stored(text: str) -> str | bytes:
    """A key or name as SQLite stores it: text, or, for one that holds a name that is not
    UTF-8 (decoded with surrogates, which SQLite's text cannot hold), its bytes as a BLOB,
    which never equals any text. The kernel's names are any bytes: file names reach the kv
    keys of per-name records (``link:``, ``want:``), attribute names the xattrs table."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", _FS_ERRORS)
    return text


def _loaded(stored: object) -> str:
    """The text ``_stored`` kept."""
    return stored.decode("utf-8", _FS_ERRORS) if isinstance(stored, bytes) else str(stored)


class SqliteMetaStore(SqliteUndoTables, EngineStore):
    """A namespace store in one SQLite file. ``read_only`` opens it for inspection."""

    def __init__(self, path: Path | str, site_name: str, *, site_id: str | None = None,
                 read_only: bool = False, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._caching = False  # on once the store is open and writable
        self._inodes: dict[int, Inode] = {}
        self._entries: dict[tuple[int, str], int] = {}
        self._listings = Listings(CACHE_ROWS)  # folders' sorted entries (meta/listings.py)
        self._kv: dict[str, str | None] = {}
        uri = f"file:{self.path}?mode=ro" if read_only else f"file:{self.path}"
        try:
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                       timeout=busy_timeout, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=OFF")
            if not read_only:
                self._db.executescript(_SCHEMA + UNDO_SCHEMA)
                self._check_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open metadata store {self.path}: {exc}") from exc
        self._depth = 0
        self._durable_mode = True
        self._durable = 0
        self._durable_lock = threading.Lock()  # syncer() calls finish on other threads
        self._sync_lock = threading.Lock()  # one WAL fsync at a time; the others join it
        self._written = 0  # the last journal seq committed (in the WAL, maybe not on disk)
        self._read_only = read_only
        if read_only:
            self.site_name = self._get_kv("site_name") or site_name
            self.site_id = self._get_kv("site_id") or ""
        else:
            self._caching = True
            self._bootstrap(site_name, site_id)
        # Checkpoints mostly off the writer's path (checkpoint.py). SQLite's own stays as the
        # backstop, less often: only a checkpoint between two of the writer's transactions can
        # let the WAL start over, so under a sustained stream of changes it is what bounds
        # the WAL (~16 MB); by then the background has copied most of it.
        self._checkpointer: Checkpointer | None = None
        if not read_only:
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
            self._checkpointer = Checkpointer(self.path)

    def _check_schema(self) -> None:
        found = self._get_kv("schema_version")
        if found is None:
            self._db.execute("INSERT INTO kv VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(found) != SCHEMA_VERSION:
            raise StoreError(f"metadata store {self.path} has schema version {found}; "
                             f"this Meridian knows version {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self, durable: bool = False) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if durable != self._durable_mode:
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable_mode = durable
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            self._depth = 0
            self._drop_caches()
            self._rolled_back()
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:  # e.g. disk full: SQLite has rolled back
            self._depth = 0
            self._drop_caches()
            self._rolled_back()
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"commit to {self.path} failed: {exc}") from exc
        self._depth = 0
        self._written = int(self._get_kv("last_seq") or "0")
        if durable:
            with self._durable_lock:
                self._durable = max(self._durable, self._written)
        self._committed()

    def _drop_caches(self) -> None:
        """Forget every cached row (after a rollback: they may hold what it undid)."""
        self._inodes.clear()
        self._entries.clear()
        self._listings.clear()
        self._kv.clear()

    def _remember(self, cache: dict[Any, Any], key: object, value: object) -> None:
        if not self._caching:
            return
        if len(cache) >= CACHE_ROWS:
            cache.clear()
        cache[key] = value

    def sync(self) -> None:
        self.syncer()()

    def syncer(self) -> Callable[[], None]:
        # An fsync of the WAL through a file descriptor of its own never touches the
        # connection; frames a checkpoint moved out of the WAL meanwhile are already durable
        # in the database file (a checkpoint fsyncs it before the WAL is reused).
        # Group commit: calls that arrive while another fsyncs wait for it, and return at once
        # if it covered them (it covers every commit written before it started).
        wal = Path(f"{self.path}-wal")
        seq = self.last_seq()

        def run() -> None:
            with self._sync_lock:
                if self._durable >= seq:
                    return
                target = max(seq, self._written)  # read before the fsync: all in the WAL
                try:
                    fd = os.open(wal, os.O_RDONLY)
                except FileNotFoundError:  # nothing written since the last checkpoint
                    pass
                else:
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                with self._durable_lock:
                    self._durable = max(self._durable, target)
        return run

    def durable_seq(self) -> int:
        return self._durable

    def snapshot_to(self, path: Path) -> int:
        """Write a consistent copy of the whole store to ``path`` and return the journal
        position it holds (``sqlitejoin.copy_store``: safe while the site writes; the caller
        ``sync()``s after it, on the store's thread, before serving the copy)."""
        return copy_store(self.path, Path(path))

    @classmethod
    def adopt_snapshot(cls, snapshot: Path, path: Path, site_name: str,
                       source: str) -> SqliteMetaStore:
        """Make the snapshot of site ``source`` the store of a new site ``site_name`` at
        ``path`` (``sqlitejoin.adopt_store_file``) and open it. Raises StoreError if the file
        is not a snapshot of this schema, BadInput if a site of that name already exists."""
        adopt_store_file(snapshot, path, site_name, source, SCHEMA_VERSION)
        return cls(path, site_name)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._db is not None:
            self._db.close()
            self._db = None  # type: ignore[assignment]

    # -- hooks ------------------------------------------------------------------------------
    def _one(self, sql: str, *args: object) -> tuple[object, ...] | None:
        row: tuple[object, ...] | None = self._db.execute(sql, args).fetchone()
        return row

    def _get_inode(self, ino: int) -> Inode | None:
        inode = self._inodes.get(ino)
        if inode is not None:
            return inode
        row = self._one(f"SELECT {_INODE_COLUMNS} FROM inodes WHERE ino = ?", ino)
        if not row:
            return None
        inode = _to_inode(row)
        self._remember(self._inodes, ino, inode)
        return inode

    def _find_file_id(self, file_id: str) -> int | None:
        row = self._one("SELECT ino FROM inodes WHERE file_id = ?", file_id)
        return int(row[0]) if row else None  # type: ignore[call-overload]

    def _put_inode(self, inode: Inode) -> None:
        target = os.fsencode(inode.target) if inode.target is not None else None
        self._db.execute(
            f"INSERT OR REPLACE INTO inodes ({_INODE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (inode.ino, inode.file_id, inode.mode, inode.uid, inode.gid, inode.size, inode.nlink,
             inode.atime_ns, inode.mtime_ns, inode.ctime_ns, inode.content, target,
             inode.origin_site, inode.rdev, inode.content_version, inode.name_version,
             inode.attr_version))
        self._remember(self._inodes, inode.ino, inode)

    def _del_inode(self, ino: int) -> None:
        self._db.execute("DELETE FROM xattrs WHERE ino = ?", (ino,))
        self._db.execute("DELETE FROM inodes WHERE ino = ?", (ino,))
        self._inodes.pop(ino, None)

    def _get_entry(self, parent: int, name: str) -> int | None:
        found = self._entries.get((parent, name))
        if found is not None:
            return found
        row = self._one("SELECT ino FROM entries WHERE parent = ? AND name = ?", parent,
                        os.fsencode(name))
        if not row:
            return None  # absent names are not cached: lookups of new names come once
        ino: int = int(row[0])  # type: ignore[call-overload]
        self._remember(self._entries, (parent, name), ino)
        return ino

    def _put_entry(self, parent: int, name: str, ino: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)",
                         (parent, os.fsencode(name), ino))
        self._remember(self._entries, (parent, name), ino)
        self._listings.put(parent, name, ino)  # (nothing is kept unless the store caches)

    def _del_entry(self, parent: int, name: str) -> None:
        self._db.execute("DELETE FROM entries WHERE parent = ? AND name = ?",
                         (parent, os.fsencode(name)))
        self._entries.pop((parent, name), None)
        self._listings.remove(parent, name)

    def _new_directory(self, ino: int) -> None:
        if self._caching:
            self._listings.keep(ino, [])  # known to be empty: its first listing reads no row

    def _list_entries(self, parent: int) -> list[tuple[str, int]]:
        """``parent``'s entries sorted by name: from the kept listing (meta/listings.py;
        listing 2,000 names, the query and its decoding were a quarter of the mount's time),
        else from the database, then kept."""
        listing = self._listings.get(parent)
        if listing is not None:
            return listing
        rows = self._db.execute("SELECT name, ino FROM entries WHERE parent = ? ORDER BY name",
                                (parent,))
        listing = [(name.decode(_FS_ENCODING, _FS_ERRORS), ino)  # = os.fsdecode, cheaper
                   for name, ino in rows]
        if self._caching:
            self._listings.keep(parent, listing)
        return listing

    def list_dir(self, parent: int) -> list[tuple[str, Inode]]:
        """The names from the entries index and their inodes from the cache when it holds them
        all (a tenth of the cost of decoding 2,000 joined rows); otherwise one joined query
        (never one query per entry), whose inodes are cached for the next listing."""
        self._dir(parent)
        listing = []
        cached = self._inodes
        for name, ino in self._list_entries(parent):
            inode = cached.get(ino)
            if inode is None:
                return self._list_dir_joined(parent)
            listing.append((name, inode))
        return listing

    def list_dir_page(self, parent: int, offset: int, limit: int
                      ) -> tuple[int, list[tuple[str, Inode]]]:
        """Reads only the page's entries (the entries' primary key is (parent, name)), and
        counts the others in the index."""
        self._dir(parent)
        (count,) = self._db.execute("SELECT COUNT(*) FROM entries WHERE parent = ?",
                                    (parent,)).fetchone()
        rows = self._db.execute("SELECT name, ino FROM entries WHERE parent = ? ORDER BY name "
                                "LIMIT ? OFFSET ?", (parent, max(limit, 0), max(offset, 0)))
        return int(count), [(name.decode(_FS_ENCODING, _FS_ERRORS), self._inode(ino))
                            for name, ino in rows.fetchall()]

    def _list_dir_joined(self, parent: int) -> list[tuple[str, Inode]]:
        rows = self._db.execute(
            f"SELECT e.name, {', '.join('i.' + c for c in _INODE_COLUMNS.split(', '))} "
            "FROM entries e JOIN inodes i ON i.ino = e.ino WHERE e.parent = ? ORDER BY e.name",
            (parent,))
        listing = [(os.fsdecode(row[0]), _to_inode(row[1:])) for row in rows]
        if len(listing) < CACHE_ROWS // 2:
            for _, inode in listing:
                self._remember(self._inodes, inode.ino, inode)
        return listing

    def _has_entries(self, parent: int) -> bool:
        return self._one("SELECT 1 FROM entries WHERE parent = ? LIMIT 1", parent) is not None

    def _names_of(self, ino: int) -> list[tuple[int, str]]:
        rows = self._db.execute("SELECT parent, name FROM entries WHERE ino = ? ORDER BY parent, name",
                                (ino,))
        return [(parent, os.fsdecode(name)) for parent, name in rows]

    def _get_xattr(self, ino: int, name: str) -> bytes | None:
        row = self._one("SELECT value FROM xattrs WHERE ino = ? AND name = ?", ino, _stored(name))
        return bytes(row[0]) if row else None  # type: ignore[call-overload]

    def _put_xattr(self, ino: int, name: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO xattrs VALUES (?, ?, ?)",
                         (ino, _stored(name), value))

    def _del_xattr(self, ino: int, name: str) -> None:
        self._db.execute("DELETE FROM xattrs WHERE ino = ? AND name = ?", (ino, _stored(name)))

    def _list_xattrs(self, ino: int) -> list[str]:
        rows = self._db.execute("SELECT name FROM xattrs WHERE ino = ?", (ino,))
        return [_loaded(name) for (name,) in rows]

    def _get_kv(self, key: str) -> str | None:
        if key in self._kv:
            return self._kv[key]
        row = self._one("SELECT value FROM kv WHERE key = ?", _stored(key))
        value = str(row[0]) if row else None
        self._remember(self._kv, key, value)
        return value

    def _put_kv(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (_stored(key), value))
        self._remember(self._kv, key, value)

    def _content_in_use(self, hash: str) -> bool:
        return self._one("SELECT 1 FROM inodes WHERE content = ? AND nlink > 0 LIMIT 1",
                         hash) is not None

    def _unreferenced(self, limit: int) -> list[ContentRecord]:
        rows = self._db.execute(
            "SELECT c.hash, c.size, c.in_bucket FROM contents c WHERE NOT EXISTS "
            "(SELECT 1 FROM inodes i WHERE i.content = c.hash AND i.nlink > 0) ORDER BY c.rowid LIMIT ?", (limit,))
        return [ContentRecord(h, size, bool(b)) for h, size, b in rows]

    def _del_content(self, hash: str) -> None:
        self._db.execute("DELETE FROM contents WHERE hash = ?", (hash,))

    def _del_kv(self, key: str) -> None:
        self._db.execute("DELETE FROM kv WHERE key = ?", (_stored(key),))
        self._kv.pop(key, None)

    def _kv_prefixed(self, prefix: str) -> list[tuple[str, str]]:
        # every key that starts with ``prefix``, as text and (``_stored``) as bytes: from the
        # prefix up to the prefix with its last character one higher, which no such key reaches
        if not prefix:
            rows = self._db.execute("SELECT key, value FROM kv ORDER BY key")
        else:
            raw = prefix.encode("utf-8", _FS_ERRORS)
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE (key >= ? AND key < ?) OR (key >= ? AND key < ?) "
                "ORDER BY key", (prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1),
                                 raw, raw[:-1] + bytes([raw[-1] + 1])))
        return [(_loaded(k), str(v)) for k, v in rows]

    def _append_journal(self, entry: JournalEntry) -> None:
        self._db.execute("INSERT INTO journal VALUES (?, ?, ?, ?, ?)",
                         (entry.seq, entry.origin, entry.hlc, json.dumps(entry.op.to_wire()),
                          entry.origin_seq))

    def _read_journal(self, after: int, limit: int) -> list[JournalEntry]:
        rows = self._db.execute(
            "SELECT seq, origin, hlc, op, origin_seq FROM journal WHERE seq > ? ORDER BY seq "
            "LIMIT ?", (after, limit))
        return [JournalEntry(seq, origin, hlc, op_from_wire(json.loads(op)), origin_seq)
                for seq, origin, hlc, op, origin_seq in rows]

    def _get_content(self, hash: str) -> ContentRecord | None:
        row = self._one("SELECT hash, size, in_bucket FROM contents WHERE hash = ?", hash)
        return ContentRecord(str(row[0]), int(row[1]), bool(row[2])) if row else None  # type: ignore[call-overload]

    def _put_content(self, record: ContentRecord) -> None:
        self._db.execute("INSERT OR REPLACE INTO contents VALUES (?, ?, ?)",
                         (record.hash, record.size, int(record.in_bucket)))

    _UPLOAD_COLUMNS = "hash, size, priority, attempts, next_try, last_error"

    def _get_upload(self, hash: str) -> PendingUpload | None:
        row = self._one(f"SELECT {self._UPLOAD_COLUMNS} FROM uploads WHERE hash = ?", hash)
        return PendingUpload(*row) if row else None  # type: ignore[arg-type]

    def _put_upload(self, upload: PendingUpload) -> None:
        self._db.execute(
            "INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, "
            " coalesce((SELECT max(queued) FROM uploads), 0) + 1) "
            "ON CONFLICT (hash) DO UPDATE SET priority = excluded.priority, "
            " attempts = excluded.attempts, next_try = excluded.next_try, "
            " last_error = excluded.last_error",
            (upload.hash, upload.size, upload.priority, upload.attempts, upload.next_try,
             upload.last_error))

    def _del_upload(self, hash: str) -> None:
        self._db.execute("DELETE FROM uploads WHERE hash = ?", (hash,))

    def _due_uploads(self, limit: int, now: float | None) -> list[PendingUpload]:
        rows = self._db.execute(
            f"SELECT {self._UPLOAD_COLUMNS} FROM uploads WHERE next_try <= ? "
            "ORDER BY priority DESC, queued LIMIT ?",
            (now if now is not None else float("inf"), limit))
        return [PendingUpload(*row) for row in rows]

    def _count(self, table: str) -> int:
        assert table in ("inodes", "uploads")
        row = self._one(f"SELECT count(*) FROM {table}")
        return int(row[0]) if row else 0  # type: ignore[call-overload]

    def _orphans(self) -> list[int]:
        return [ino for (ino,) in self._db.execute("SELECT ino FROM inodes WHERE nlink = 0")]
