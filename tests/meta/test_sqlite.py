"""What only the SQLite engine promises: it persists, reopens, and refuses what it cannot use."""

from __future__ import annotations

import sqlite3
import time
import stat
import threading
from pathlib import Path

import pytest

from meridian.errors import NotFound, StoreError
from meridian.meta import ROOT_INO
from meridian.meta.sqlite import SqliteMetaStore

FILE = stat.S_IFREG | 0o644


def test_reopen_keeps_namespace_identity_and_journal(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    first = SqliteMetaStore(db, "east")
    f = first.create(ROOT_INO, "f", FILE, 0, 0)
    first.set_content(f.ino, "a" * 64, 3)
    site_id, last = first.site_id, first.journal()[-1]
    first.close()
    again = SqliteMetaStore(db, "east")
    assert again.site_id == site_id
    assert again.lookup(ROOT_INO, "f").content == "a" * 64
    assert again.journal()[-1] == last
    g = again.create(ROOT_INO, "g", FILE, 0, 0)
    assert g.ino > f.ino and again.journal()[-1].hlc > last.hlc
    again.close()


def test_nameless_inodes_are_dropped_on_open(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    store = SqliteMetaStore(db, "east")
    f = store.create(ROOT_INO, "f", FILE, 0, 0)
    store.unlink(ROOT_INO, "f")  # still "open" in the crashed process
    store.close()
    again = SqliteMetaStore(db, "east")
    with pytest.raises(Exception):
        again.getattr(f.ino)
    again.close()


def test_refuses_another_sites_store_and_unknown_schema(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    SqliteMetaStore(db, "east").close()
    with pytest.raises(StoreError, match="belongs to site 'east'"):
        SqliteMetaStore(db, "west")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE kv SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteMetaStore(db, "east")


def test_garbage_file_is_a_store_error(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open metadata store"):
        SqliteMetaStore(db, "east")


def test_read_only_reader_sees_committed_changes_while_writer_is_open(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    writer = SqliteMetaStore(db, "east")
    writer.create(ROOT_INO, "f", FILE, 0, 0)
    reader = SqliteMetaStore(db, "east", read_only=True)
    assert [n for n, _ in reader.list_dir(ROOT_INO)] == [".meridian", "f"]
    writer.create(ROOT_INO, "g", FILE, 0, 0)
    assert [n for n, _ in reader.list_dir(ROOT_INO)] == [".meridian", "f", "g"]
    reader.close()
    writer.close()


def test_namespace_changes_become_durable_at_sync_or_content_commit(tmp_path: Path) -> None:
    store = SqliteMetaStore(tmp_path / "meta.db", "east")
    start = store.durable_seq()
    f = store.create(ROOT_INO, "f", FILE, 0, 0)  # group-committed: not yet known durable
    assert store.last_seq() == start + 1 and store.durable_seq() == start
    store.sync()
    assert store.durable_seq() == store.last_seq()
    store.create(ROOT_INO, "g", FILE, 0, 0)
    store.set_content(f.ino, "a" * 64, 1)  # durable, and so is everything before it
    assert store.durable_seq() == store.last_seq()
    store.close()


def test_a_syncer_made_on_the_store_thread_makes_it_durable_from_another(tmp_path: Path) -> None:
    store = SqliteMetaStore(tmp_path / "meta.db", "east")
    f = store.create(ROOT_INO, "f", FILE, 0, 0)
    store.set_content(f.ino, "a" * 64, 1, durable=False)
    store.mark_all_in_bucket(["a" * 64], durable=False)
    covered = store.last_seq()
    assert store.durable_seq() < covered  # committed, not yet known on disk
    sync = store.syncer()
    late = store.syncer()  # made before the next commit: covers less
    store.create(ROOT_INO, "g", FILE, 0, 0)  # committed before the fsync starts: covered too
    assert store.last_seq() > covered
    worker = threading.Thread(target=sync)
    worker.start()
    worker.join(timeout=30)
    assert store.durable_seq() == store.last_seq()
    late()  # already covered: returns without going backwards
    assert store.durable_seq() == store.last_seq()
    store.close()
    again = SqliteMetaStore(tmp_path / "meta.db", "east")
    record = again.content("a" * 64)
    assert record is not None and record.in_bucket and again.pending_uploads() == []
    again.close()


def test_cached_rows_never_outlive_a_rolled_back_transaction(tmp_path: Path) -> None:
    store = SqliteMetaStore(tmp_path / "meta.db", "east")
    f = store.create(ROOT_INO, "f", stat.S_IFREG | 0o644, 0, 0)
    store.create(ROOT_INO, "g", stat.S_IFREG | 0o644, 0, 0)
    with pytest.raises(RuntimeError), store._transaction():
        store.rename(ROOT_INO, "f", ROOT_INO, "h")  # cached as done, then undone
        raise RuntimeError("the caller fails after the rename")
    assert store.lookup(ROOT_INO, "f").ino == f.ino
    with pytest.raises(NotFound):
        store.lookup(ROOT_INO, "h")
    reopened_view = SqliteMetaStore(tmp_path / "meta.db", "east", read_only=True)
    assert reopened_view.lookup(ROOT_INO, "f").ino == f.ino
    assert store.getattr(f.ino) == reopened_view.getattr(f.ino)
    assert store.getattr(ROOT_INO) == reopened_view.getattr(ROOT_INO)
    assert store.last_seq() == reopened_view.last_seq()


def test_bounded_caches_stay_consistent_with_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("meridian.meta.sqlite.CACHE_ROWS", 4)  # emptied over and over
    store = SqliteMetaStore(tmp_path / "meta.db", "east")
    for i in range(20):
        store.create(ROOT_INO, f"f{i}", stat.S_IFREG | 0o644, 0, 0)
    for i in range(0, 20, 2):
        store.rename(ROOT_INO, f"f{i}", ROOT_INO, f"g{i}")
    for i in range(1, 20, 4):
        store.unlink(ROOT_INO, f"f{i}")
    view = SqliteMetaStore(tmp_path / "meta.db", "east", read_only=True)
    assert [name for name, _ in store.list_dir(ROOT_INO)] == [name for name, _ in view.list_dir(ROOT_INO)]
    for name, inode in view.list_dir(ROOT_INO):
        assert store.lookup(ROOT_INO, name) == inode
    assert len(store._inodes) <= 4 and len(store._entries) <= 4 and len(store._kv) <= 4


def test_a_cached_listing_follows_every_change_of_its_folder(tmp_path: Path) -> None:
    """Listings are cached per folder: each kind of change, made after the folder was listed,
    shows in the next listing exactly as a fresh reader of the database sees it."""
    store = SqliteMetaStore(tmp_path / "meta.db", "east")
    view = SqliteMetaStore(tmp_path / "meta.db", "east", read_only=True)  # caches nothing
    d = store.create(ROOT_INO, "d", stat.S_IFDIR | 0o755, 0, 0)
    e = store.create(ROOT_INO, "e", stat.S_IFDIR | 0o755, 0, 0)
    for name in ("b", "a", "c"):
        store.create(d.ino, name, stat.S_IFREG | 0o644, 0, 0)

    def listed(ino: int) -> list[tuple[str, int]]:
        mine = [(name, inode.ino) for name, inode in store.list_dir(ino)]
        assert mine == [(name, inode.ino) for name, inode in view.list_dir(ino)]
        return mine

    assert [n for n, _ in listed(d.ino)] == ["a", "b", "c"]
    store.create(d.ino, "ab", stat.S_IFREG | 0o644, 0, 0)
    assert [n for n, _ in listed(d.ino)] == ["a", "ab", "b", "c"]
    listed(e.ino)
    store.rename(d.ino, "a", e.ino, "z")  # out of one listed folder into another
    assert [n for n, _ in listed(d.ino)] == ["ab", "b", "c"]
    assert [n for n, _ in listed(e.ino)] == ["z"]
    store.rename(d.ino, "b", d.ino, "c")  # replaces c
    assert [n for n, _ in listed(d.ino)] == ["ab", "c"]
    store.link(store.lookup(e.ino, "z").ino, d.ino, "zz")
    store.unlink(d.ino, "ab")
    assert [n for n, _ in listed(d.ino)] == ["c", "zz"]
    with pytest.raises(RuntimeError), store._transaction():
        store.create(d.ino, "gone", stat.S_IFREG | 0o644, 0, 0)
        assert [n for n, _ in store.list_dir(d.ino)] == ["c", "gone", "zz"]  # cached inside
        raise RuntimeError("the caller fails after the create")
    assert [n for n, _ in store._list_entries(d.ino)] == ["c", "zz"]  # (the walk's view too)
    assert [n for n, _ in listed(d.ino)] == ["c", "zz"]
    view.close()
    store.close()


def test_listings_are_bounded_with_the_other_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("meridian.meta.sqlite.CACHE_ROWS", 5)
    store = SqliteMetaStore(tmp_path / "meta.db", "east")
    view = SqliteMetaStore(tmp_path / "meta.db", "east", read_only=True)
    small = store.create(ROOT_INO, "small", stat.S_IFDIR | 0o755, 0, 0)
    big = store.create(ROOT_INO, "big", stat.S_IFDIR | 0o755, 0, 0)
    for i in range(3):
        store.create(small.ino, f"s{i}", stat.S_IFREG | 0o644, 0, 0)
    for i in range(8):  # grows past the bound while kept: dropped, read again later
        store.create(big.ino, f"b{i}", stat.S_IFREG | 0o644, 0, 0)
    for folder in (small.ino, big.ino, ROOT_INO, small.ino):
        assert store.list_dir(folder) == view.list_dir(folder)
        assert len(store._listings) <= 5
    assert store._listings.get(big.ino) is None  # larger than the bound: never kept
    view.close()
    store.close()


def test_a_kept_listing_orders_names_as_the_database_does(tmp_path: Path) -> None:
    """Names added one by one to a kept listing land where SQLite's ORDER BY puts them (by
    their UTF-8 bytes): upper case before lower, accented and wide characters after."""
    store = SqliteMetaStore(tmp_path / "meta.db", "east")
    view = SqliteMetaStore(tmp_path / "meta.db", "east", read_only=True)
    d = store.create(ROOT_INO, "d", stat.S_IFDIR | 0o755, 0, 0)
    for name in ("z", "\U0001f3ac take", "été", "A", "\ufffd", "a b", "a", "ab"):
        store.create(d.ino, name, stat.S_IFREG | 0o644, 0, 0)
    assert [n for n, _ in store.list_dir(d.ino)] == [
        "A", "a", "a b", "ab", "z", "été", "\ufffd", "\U0001f3ac take"]
    assert store.list_dir(d.ino) == view.list_dir(d.ino)
    store.unlink(d.ino, "a b")
    store.rename(d.ino, "z", d.ino, "\u00e0")
    assert store.list_dir(d.ino) == view.list_dir(d.ino)
    view.close()
    store.close()


def test_the_wal_is_copied_into_the_database_in_the_background(tmp_path: Path) -> None:
    store = SqliteMetaStore(tmp_path / "meta.db", "east")
    try:
        before = (tmp_path / "meta.db").stat().st_size
        for i in range(300):  # a few hundred pages: far below SQLite's own checkpoint
            store.create(ROOT_INO, f"f{i:04d}-{'x' * 100}", FILE, 0, 0)
        deadline = time.monotonic() + 10
        while (tmp_path / "meta.db").stat().st_size <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "meta.db").stat().st_size > before  # the checkpointer's work
    finally:
        store.close()
    assert not (tmp_path / "meta.db-wal").exists() or (tmp_path / "meta.db-wal").stat().st_size == 0


def test_queueing_an_upload_does_not_scan_the_queue(tmp_path: Path) -> None:
    """Each new upload is numbered after the highest queued one: that maximum comes from an
    index, so a close costs the same with 10 or 100,000 uploads waiting (a full scan was
    ~190 µs per close with 3,000 queued). Stores made before the index get it at open."""
    path = tmp_path / "meta.db"
    store = SqliteMetaStore(path, "east")
    store.close()
    old = sqlite3.connect(path)
    old.execute("DROP INDEX uploads_queued")  # as a store from before the index
    old.close()
    store = SqliteMetaStore(path, "east")
    try:
        for i in range(3):
            ino = store.create(ROOT_INO, f"f{i}", stat.S_IFREG | 0o644, 0, 0).ino
            store.set_content(ino, f"{i + 1:064x}", 10, durable=False)
        plan = " ".join(str(row[-1]) for row in store._db.execute(
            "EXPLAIN QUERY PLAN SELECT max(queued) FROM uploads"))
        assert "uploads_queued" in plan, plan
        assert [u.hash for u in store.pending_uploads()] == [f"{i + 1:064x}" for i in range(3)]
    finally:
        store.close()
