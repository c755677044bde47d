"""One suite for every namespace-store engine (one interface, one shared test suite)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from meridian.errors import (
    AlreadyExists,
    BadPath,
    DirectoryNotEmpty,
    InvalidOperation,
    IsADirectory,
    NoAttribute,
    NotADirectory,
    NotFound,
)
from meridian.meta import ROOT_INO, AttrChanges, CreateOp, MetaStore, open_meta_store

FILE = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755
LINK = stat.S_IFLNK | 0o777
H1 = "a" * 64
H2 = "b" * 64


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetaStore]:
    url = "memory://" if request.param == "memory" else f"sqlite://{tmp_path}/meta.db"
    s = open_meta_store(url, "east")
    yield s
    s.close()


def names(store: MetaStore, ino: int = ROOT_INO) -> list[str]:
    """The entries of ``ino``, without Meridian's own ``/.meridian``."""
    return [name for name, _ in store.list_dir(ino) if (ino, name) != (ROOT_INO, ".meridian")]


def test_root_exists_and_is_a_directory(store: MetaStore) -> None:
    root = store.getattr(ROOT_INO)
    assert root.is_dir and root.file_id == "root" and root.nlink == 3  # itself, ., /.meridian
    assert len(store.site_id) == 32


def test_create_lookup_and_list_sorted(store: MetaStore) -> None:
    for name in ["b", "a", "c"]:
        store.create(ROOT_INO, name, FILE, 1000, 100)
    d = store.create(ROOT_INO, "dir", DIR, 0, 0)
    assert names(store) == ["a", "b", "c", "dir"]
    f = store.lookup(ROOT_INO, "a")
    assert f.is_file and f.uid == 1000 and f.gid == 100 and f.nlink == 1 and f.size == 0
    assert store.getattr(ROOT_INO).nlink == 4  # /.meridian and one subdirectory
    assert d.nlink == 2


def test_file_ids_are_unique_and_carry_the_site_id(store: MetaStore) -> None:
    ids = {store.create(ROOT_INO, f"f{i}", FILE, 0, 0).file_id for i in range(50)}
    assert len(ids) == 50
    assert all(i.startswith(store.site_id + ".") for i in ids)


def test_create_errors_change_nothing(store: MetaStore) -> None:
    f = store.create(ROOT_INO, "f", FILE, 0, 0)
    seq = store.last_seq()
    with pytest.raises(AlreadyExists):
        store.create(ROOT_INO, "f", FILE, 0, 0)
    with pytest.raises(NotADirectory):
        store.create(f.ino, "x", FILE, 0, 0)
    with pytest.raises(NotFound):
        store.create(9999, "x", FILE, 0, 0)
    for bad in ["", ".", "..", "a/b", "a\0b", "x" * 256]:
        with pytest.raises(BadPath):
            store.create(ROOT_INO, bad, FILE, 0, 0)
    assert store.last_seq() == seq and names(store) == ["f"]


def test_non_utf8_names_round_trip(store: MetaStore) -> None:
    import os
    name = os.fsdecode(b"caf\xe9.exr")
    store.create(ROOT_INO, name, FILE, 0, 0)
    assert names(store) == [name]
    assert store.lookup(ROOT_INO, name).is_file


def test_symlink_keeps_target(store: MetaStore) -> None:
    link = store.create(ROOT_INO, "l", LINK, 0, 0, target="../some/where")
    assert link.is_symlink and link.target == "../some/where" and link.size == 13


def test_unlink_and_rmdir(store: MetaStore) -> None:
    d = store.create(ROOT_INO, "d", DIR, 0, 0)
    store.create(d.ino, "f", FILE, 0, 0)
    with pytest.raises(DirectoryNotEmpty):
        store.rmdir(ROOT_INO, "d")
    with pytest.raises(IsADirectory):
        store.unlink(ROOT_INO, "d")
    with pytest.raises(NotADirectory):
        store.rmdir(d.ino, "f")
    left = store.unlink(d.ino, "f")
    assert left.nlink == 0
    assert store.forget(left.ino) is True
    assert store.forget(left.ino) is False
    with pytest.raises(NotFound):
        store.getattr(left.ino)
    store.rmdir(ROOT_INO, "d")
    assert names(store) == [] and store.getattr(ROOT_INO).nlink == 3
    with pytest.raises(NotFound):
        store.unlink(ROOT_INO, "nothing")


def test_forget_all_drops_only_the_nameless_in_one_go(store: MetaStore) -> None:
    files = [store.create(ROOT_INO, f"f{i}", FILE, 0, 0) for i in range(4)]
    for f in files[:3]:
        store.unlink(ROOT_INO, f"f{files.index(f)}")
    before = store.last_seq()
    assert store.forget_all([f.ino for f in files] + [ROOT_INO, 10**9]) == 3
    assert store.forget_all([f.ino for f in files]) == 0  # idempotent
    assert store.last_seq() == before  # a local clean-up: nothing for the journal
    for f in files[:3]:
        with pytest.raises(NotFound):
            store.getattr(f.ino)
    assert store.lookup(ROOT_INO, "f3").ino == files[3].ino
    assert store.getattr(ROOT_INO).ino == ROOT_INO


def test_hard_links_share_the_inode(store: MetaStore) -> None:
    f = store.create(ROOT_INO, "f", FILE, 0, 0)
    d = store.create(ROOT_INO, "d", DIR, 0, 0)
    linked = store.link(f.ino, d.ino, "g")
    assert linked.nlink == 2 and store.lookup(d.ino, "g").ino == f.ino
    with pytest.raises(IsADirectory):
        store.link(d.ino, ROOT_INO, "d2")
    with pytest.raises(AlreadyExists):
        store.link(f.ino, d.ino, "g")
    assert store.unlink(ROOT_INO, "f").nlink == 1
    assert store.forget(f.ino) is False  # still has a name
    assert store.path_of(f.ino) == "/d/g"


def test_rename_moves_and_replaces(store: MetaStore) -> None:
    a = store.create(ROOT_INO, "a", FILE, 0, 0)
    b = store.create(ROOT_INO, "b", FILE, 0, 0)
    d = store.create(ROOT_INO, "d", DIR, 0, 0)
    replaced = store.rename(ROOT_INO, "a", ROOT_INO, "b")
    assert replaced is not None and replaced.ino == b.ino and replaced.nlink == 0
    assert store.lookup(ROOT_INO, "b").ino == a.ino and names(store) == ["b", "d"]
    assert store.rename(ROOT_INO, "b", d.ino, "moved") is None
    assert store.path_of(a.ino) == "/d/moved"
    c = store.create(ROOT_INO, "c", FILE, 0, 0)
    with pytest.raises(AlreadyExists):
        store.rename(ROOT_INO, "c", d.ino, "moved", replace=False)
    assert store.lookup(ROOT_INO, "c").ino == c.ino


def test_rename_type_rules(store: MetaStore) -> None:
    store.create(ROOT_INO, "f", FILE, 0, 0)
    d = store.create(ROOT_INO, "d", DIR, 0, 0)
    e = store.create(ROOT_INO, "e", DIR, 0, 0)
    sub = store.create(d.ino, "sub", DIR, 0, 0)
    with pytest.raises(NotADirectory):
        store.rename(ROOT_INO, "d", ROOT_INO, "f")
    with pytest.raises(IsADirectory):
        store.rename(ROOT_INO, "f", ROOT_INO, "e")
    with pytest.raises(InvalidOperation):
        store.rename(ROOT_INO, "d", sub.ino, "loop")
    with pytest.raises(InvalidOperation):
        store.rename(ROOT_INO, "d", d.ino, "self")
    store.create(e.ino, "x", FILE, 0, 0)
    with pytest.raises(DirectoryNotEmpty):
        store.rename(ROOT_INO, "d", ROOT_INO, "e")
    store.unlink(e.ino, "x")
    store.rename(ROOT_INO, "d", ROOT_INO, "e")  # over an empty directory
    assert store.lookup(ROOT_INO, "e").ino == d.ino
    assert store.path_of(sub.ino) == "/e/sub"
    assert store.getattr(ROOT_INO).nlink == 4  # root, /.meridian, e (was d)


def test_rename_between_hard_links_of_one_inode_is_a_no_op(store: MetaStore) -> None:
    f = store.create(ROOT_INO, "f", FILE, 0, 0)
    store.link(f.ino, ROOT_INO, "g")
    seq = store.last_seq()
    assert store.rename(ROOT_INO, "f", ROOT_INO, "g") is None
    assert names(store) == ["f", "g"] and store.last_seq() == seq


def test_setattr_keeps_type_bits(store: MetaStore) -> None:
    f = store.create(ROOT_INO, "f", FILE, 0, 0)
    changed = store.setattr(f.ino, AttrChanges(mode=0o600, uid=7, mtime_ns=1_000))
    assert changed.is_file and stat.S_IMODE(changed.mode) == 0o600
    assert changed.uid == 7 and changed.gid == 0 and changed.mtime_ns == 1_000
    assert store.getattr(f.ino) == changed


def test_set_content_records_and_queues_upload(store: MetaStore) -> None:
    f = store.create(ROOT_INO, "f", FILE, 0, 0)
    g = store.create(ROOT_INO, "g", FILE, 0, 0)
    updated = store.set_content(f.ino, H1, 10, upload_priority=5)
    assert updated.content == H1 and updated.size == 10 and updated.origin_site == "east"
    store.set_content(g.ino, H1, 10)  # same content: one record, one upload
    record = store.content(H1)
    assert record is not None and record.size == 10 and not record.in_bucket
    assert [u.hash for u in store.pending_uploads()] == [H1] and store.upload_count() == 1
    with pytest.raises(IsADirectory):
        store.set_content(ROOT_INO, H2, 1)
    store.set_content(g.ino, None, 0)
    assert store.getattr(g.ino).content is None and store.getattr(g.ino).size == 0


def test_upload_order_retry_and_completion(store: MetaStore) -> None:
    files = [store.create(ROOT_INO, f"f{i}", FILE, 0, 0) for i in range(3)]
    store.set_content(files[0].ino, H1, 1, upload_priority=0)
    store.set_content(files[1].ino, H2, 2, upload_priority=9)
    store.set_content(files[2].ino, "c" * 64, 3, upload_priority=0)
    assert [u.hash for u in store.pending_uploads()] == [H2, H1, "c" * 64]
    store.upload_failed(H2, next_try=2_000.0, error="503 Slow Down")
    due = store.pending_uploads(now=1_000.0)
    assert [u.hash for u in due] == [H1, "c" * 64]
    waiting = [u for u in store.pending_uploads() if u.hash == H2][0]
    assert waiting.attempts == 1 and waiting.last_error == "503 Slow Down"
    seq = store.last_seq()
    store.mark_in_bucket(H1)
    store.mark_in_bucket(H1)  # idempotent: one journal entry
    assert store.last_seq() == seq + 1
    record = store.content(H1)
    assert record is not None and record.in_bucket
    assert store.upload_count() == 2
    # content already in the bucket is not queued again
    store.set_content(files[2].ino, H1, 1)
    assert H1 not in [u.hash for u in store.pending_uploads()]


def test_xattrs(store: MetaStore) -> None:
    f = store.create(ROOT_INO, "f", FILE, 0, 0)
    store.setxattr(f.ino, "user.b", b"2")
    store.setxattr(f.ino, "user.a", b"\x00\x01")
    assert store.listxattr(f.ino) == ["user.a", "user.b"]
    assert store.getxattr(f.ino, "user.a") == b"\x00\x01"
    with pytest.raises(AlreadyExists):
        store.setxattr(f.ino, "user.a", b"x", create=True)
    with pytest.raises(NoAttribute):
        store.setxattr(f.ino, "user.c", b"x", replace=True)
    store.removexattr(f.ino, "user.a")
    with pytest.raises(NoAttribute):
        store.getxattr(f.ino, "user.a")
    with pytest.raises(NoAttribute):
        store.removexattr(f.ino, "user.a")


def test_journal_records_every_change_in_order(store: MetaStore) -> None:
    d = store.create(ROOT_INO, "d", DIR, 0, 0)
    f = store.create(d.ino, "f", FILE, 0, 0)
    store.set_content(f.ino, H1, 4)
    store.rename(d.ino, "f", ROOT_INO, "g")
    store.unlink(ROOT_INO, "g")
    entries = store.journal()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert [e.op.KIND for e in entries] == ["create", "create", "content", "rename", "unlink"]
    assert all(e.origin == "east" for e in entries)
    assert all(a.hlc < b.hlc for a, b in zip(entries, entries[1:]))
    created = entries[1].op
    assert isinstance(created, CreateOp)
    assert created.parent == d.file_id and created.fid == f.file_id
    assert [e.seq for e in store.journal(after=3)] == [4, 5]
    assert [e.seq for e in store.journal(after=0, limit=2)] == [1, 2]
    assert store.last_seq() == 5


def test_resolve_walk_and_paths(store: MetaStore) -> None:
    d = store.create(ROOT_INO, "d", DIR, 0, 0)
    f = store.create(d.ino, "f", FILE, 0, 0)
    assert store.resolve("./d/f").ino == f.ino
    assert store.resolve("/d/f").ino == f.ino
    assert store.resolve("d").ino == d.ino
    assert store.resolve("./").ino == ROOT_INO
    with pytest.raises(BadPath):
        store.resolve("./d/../d/f")
    with pytest.raises(NotFound):
        store.resolve("./d/nothing")
    assert [p for p, _ in store.walk()] == ["/", "/.meridian", "/.meridian/lost+found", "/d", "/d/f"]
    assert store.parent_of(f.ino) == d.ino and store.parent_of(d.ino) == ROOT_INO
    assert store.parent_of(ROOT_INO) == ROOT_INO
    found = store.by_file_id(f.file_id)
    assert found is not None and found.ino == f.ino
    assert store.by_file_id("root") is not None and store.by_file_id("nope.1") is None
    assert store.count_inodes() == 5  # root, /.meridian, its lost+found, d, f


def test_thousands_of_entries_in_one_directory(store: MetaStore) -> None:
    d = store.create(ROOT_INO, "big", DIR, 0, 0)
    for i in range(3000):
        store.create(d.ino, f"frame.{i:05d}.exr", FILE, 0, 0)
    listing = names(store, d.ino)
    assert len(listing) == 3000 and listing == sorted(listing)


def test_special_files_keep_type_and_device(store: MetaStore) -> None:
    fifo = store.create(ROOT_INO, "fifo", stat.S_IFIFO | 0o644, 0, 0)
    dev = store.create(ROOT_INO, "dev", stat.S_IFCHR | 0o600, 0, 0, rdev=0x103)
    assert stat.S_ISFIFO(store.getattr(fifo.ino).mode)
    assert store.getattr(dev.ino).rdev == 0x103
    with pytest.raises(InvalidOperation):  # only regular files have content
        store.set_content(fifo.ino, H1, 1)


def test_listeners_hear_committed_entries_only(store: MetaStore) -> None:
    heard: list[list[str]] = []
    store.add_listener(lambda entries: heard.append([e.op.KIND for e in entries]))
    f = store.create(ROOT_INO, "f", FILE, 0, 0)
    with pytest.raises(AlreadyExists):
        store.create(ROOT_INO, "f", FILE, 0, 0)  # rolled back: nothing heard
    store.set_content(f.ino, H1, 3)
    assert heard == [["create"], ["content"]]


def test_objectives_keep_their_order_and_ids(store: MetaStore) -> None:
    from meridian.errors import NotFound

    first = store.add_objectives(["{SLO('keep-online')}"])
    more = store.add_objectives(["rule b", "rule c"])
    assert len(set(first + more)) == 3
    assert [r.text for r in store.objectives()] == ["{SLO('keep-online')}", "rule b", "rule c"]
    store.move_objective(more[1], before=first[0])
    assert [r.id for r in store.objectives()] == [more[1], first[0], more[0]]
    store.move_objective(more[1], before=None)
    assert [r.id for r in store.objectives()] == [first[0], more[0], more[1]]
    removed = store.remove_objective(more[0])
    assert removed.text == "rule b" and [r.id for r in store.objectives()] == [first[0], more[1]]
    with pytest.raises(NotFound):
        store.remove_objective(more[0])
    with pytest.raises(NotFound):
        store.move_objective(first[0], before="o999")
    assert store.add_objectives(["again"])[0] not in first + more  # ids are never reused


def test_names_that_are_not_utf8_live_a_whole_life(store: MetaStore) -> None:
    """The kernel's names are any bytes; one that is not UTF-8 reaches the store decoded with
    surrogates (os.fsdecode). It is made, linked, renamed, listed and removed like any other
    (its per-name records, such as a hard link's, must hold it too)."""
    import os
    odd = os.fsdecode(b"plate\x80\xff.exr")
    d = store.create(ROOT_INO, "d", DIR, 0, 0)
    f = store.create(d.ino, odd, FILE, 0, 0)
    assert store.lookup(d.ino, odd).ino == f.ino
    store.link(f.ino, d.ino, odd + "-link")
    assert [os.fsencode(n) for n, _ in store.list_dir(d.ino)] == [
        b"plate\x80\xff.exr", b"plate\x80\xff.exr-link"]
    store.rename(d.ino, odd, ROOT_INO, os.fsdecode(b"\xfe"))
    store.unlink(d.ino, odd + "-link")
    assert names(store, d.ino) == []
    assert store.lookup(ROOT_INO, os.fsdecode(b"\xfe")).nlink == 1
    store.unlink(ROOT_INO, os.fsdecode(b"\xfe"))
    assert names(store) == ["d"]


def test_extended_attribute_names_that_are_not_utf8(store: MetaStore) -> None:
    """An attribute's name, like a file's, is any bytes the kernel passes (decoded with
    surrogates): it is set, listed in order beside others, read, replaced and removed."""
    import os
    f = store.create(ROOT_INO, "f", FILE, 0, 0)
    odd = os.fsdecode(b"user.take\xe9\xff")
    store.setxattr(f.ino, "user.plain", b"p")
    store.setxattr(f.ino, odd, b"one")
    store.setxattr(f.ino, odd, b"two")
    assert store.getxattr(f.ino, odd) == b"two"
    assert sorted(os.fsencode(n) for n in store.listxattr(f.ino)) == [
        b"user.plain", b"user.take\xe9\xff"]
    store.removexattr(f.ino, odd)
    assert store.listxattr(f.ino) == ["user.plain"]
    with pytest.raises(NoAttribute):
        store.getxattr(f.ino, odd)


def test_attribute_names_are_listed_in_the_order_of_their_bytes(store: MetaStore) -> None:
    """Every engine lists attributes in one order, their names' bytes (the namespace digest
    depends on it): a name that is not UTF-8 sorts by its bytes among UTF-8 ones."""
    import os
    f = store.create(ROOT_INO, "f", FILE, 0, 0)
    wanted = [b"user.plain", b"user.\x80", b"user.\xef\xbc\xa1", b"user.\xf0"]
    for name in reversed(wanted):
        store.setxattr(f.ino, os.fsdecode(name), b"v")
    assert [os.fsencode(n) for n in store.listxattr(f.ino)] == wanted
