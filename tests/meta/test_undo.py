"""Trash, versions, purges and snapshots at the store level, on both engines: every site ends
with the same records, restores replicate as ordinary changes, and held content stays out of
garbage collection."""

from __future__ import annotations

import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meridian.errors import AlreadyExists, InvalidJournalEntry, NotFound
from meridian.meta import ROOT_INO, TRASH_SETTING, MetaStore, check_entry, entry_from_wire
from meridian.meta.memory import MemoryMetaStore
from meridian.meta.sqlite import SqliteMetaStore
from meridian.meta.undorecords import UndoRecords
from meridian.meta.undoops import PurgeOp, SnapshotOp, TrashOp, UnsnapshotOp
from meridian.objects.memory import MemoryObjectStore
from meridian.site.inspect import namespace_digest
from meridian.undo import restore, snapshots
from tests.meta.randomized import pull, sync, write

DIR = stat.S_IFDIR | 0o755
FILE = stat.S_IFREG | 0o644
H = {n: f"{n:064x}" for n in range(1, 20)}  # valid content hashes
Factory = Callable[[str], UndoRecords]


@pytest.fixture(params=["memory", "sqlite"])
def make_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    made: list[MetaStore] = []

    def make(name: str) -> UndoRecords:
        store: UndoRecords
        if request.param == "memory":
            store = MemoryMetaStore(name)
        else:
            store = SqliteMetaStore(tmp_path / f"{name}.db", name)
        store.put_setting(TRASH_SETTING, "1")
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def shot_tree(site: MetaStore) -> None:
    shots = site.create(ROOT_INO, "shots", DIR, 0, 0)
    site.create(shots.ino, "sh010", DIR, 0, 0)
    site.create(shots.ino, "empty", DIR, 0, 0)
    write(site, "/shots/sh010/plate.0001.exr", H[1])
    write(site, "/shots/sh010/plate.0002.exr", H[2])
    write(site, "/shots/edit.xml", H[3])


def rm_rf(site: MetaStore, path: str) -> None:
    inode = site.resolve(path)
    for name, child in site.list_dir(inode.ino):
        if child.is_dir:
            rm_rf(site, f"{path}/{name}")
        else:
            site.unlink(inode.ino, name)
    site.rmdir(site.parent_of(inode.ino), path.rsplit("/", 1)[1])


def test_a_tree_removed_at_one_site_is_undeleted_at_another_with_the_same_bytes(
        make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    shot_tree(east)
    sync(east, west)
    before = {p: i.content for p, i in east.walk() if p.startswith("/shots")}
    rm_rf(east, "/shots")
    sync(east, west)
    assert [r.key for r in east.trash_list()] == [r.key for r in west.trash_list()]
    assert {r.path for r in west.trash_list("/shots")} == set(before)
    done = restore.undelete(west, "./shots")
    assert (done.files, done.dirs) == (3, 3)
    sync(east, west)
    for site in (east, west):
        assert {p: i.content for p, i in site.walk() if p.startswith("/shots")} == before
    assert namespace_digest(east) == namespace_digest(west)


def test_undelete_never_replaces_and_offers_as(make_site: Factory) -> None:
    east = make_site("east")
    write(east, "/take.mov", H[1])
    east.unlink(ROOT_INO, "take.mov")
    write(east, "/take.mov", H[2])
    with pytest.raises(AlreadyExists, match="--as"):
        restore.undelete(east, "/take.mov")
    assert east.resolve("/take.mov").content == H[2]
    restore.undelete(east, "/take.mov", as_path="/take-old.mov")
    assert east.resolve("/take-old.mov").content == H[1]
    with pytest.raises(NotFound):
        restore.undelete(east, "/never-there")


def test_undelete_at_a_time_picks_the_removal_before_it(make_site: Factory) -> None:
    east = make_site("east")
    write(east, "/a", H[1])
    east.unlink(ROOT_INO, "a")
    first = east.trash_list("/a")[0].time_ns
    time.sleep(0.005)  # removal times are clock milliseconds
    write(east, "/a", H[2])
    east.unlink(ROOT_INO, "a")
    restore.undelete(east, "/a", at_ns=first)
    assert east.resolve("/a").content == H[1]


def test_a_purge_and_a_concurrent_older_removal_agree_in_either_order(
        make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/a", H[1])
    sync(east, west)
    a_fid = east.resolve("/a").file_id
    east.unlink(ROOT_INO, "a")  # older than west's purge, not seen by west yet
    time.sleep(0.005)  # a later clock millisecond: the purge is later than that removal
    west.trash_purge(None)
    write(west, "/b", H[2])
    west.unlink(ROOT_INO, "b")  # after the purge: stays
    sync(east, west)
    assert [r.path for r in east.trash_list()] == [r.path for r in west.trash_list()] == ["/b"]
    # the purge took a's removal at both: at west too, where the removal arrived after it,
    # a's earlier contents go with it (they stayed there, held, before)
    assert east.versions(a_fid) == west.versions(a_fid) == []
    assert ({r.hash for r in east.unreferenced_contents()}
            == {r.hash for r in west.unreferenced_contents()} == {H[1]})


def test_two_purges_of_one_removal_take_the_same_versions_in_any_order(
        make_site: Factory) -> None:
    """A removal, two purges that both cover it and a write between them reach three sites
    in three orders; the versions that go are the same everywhere: those older than the
    later purge."""
    east, west, north = make_site("east"), make_site("west"), make_site("north")
    write(east, "/a", H[1])
    sync(east, west, north)
    fid = east.resolve("/a").file_id
    east.unlink(ROOT_INO, "a")
    pull(west, east)
    time.sleep(0.005)
    west.trash_purge("/a")  # takes east's removal at west
    time.sleep(0.005)
    write(north, "/a", H[2])  # north has not seen the removal: a write of the same file
    time.sleep(0.005)
    north.trash_purge("/a")  # later: covers the removal and that write's version
    pull(east, west)  # east: removal, first purge, then north's write and purge
    pull(east, north)
    pull(north, east)  # north: its write and purge, then the removal and the first purge
    pull(west, north)  # west: removal, first purge, then north's
    sync(east, west, north)
    assert east.versions(fid) == west.versions(fid) == north.versions(fid)
    assert H[1] not in {v.hash for v in east.versions(fid)}
    assert ({r.hash for r in east.unreferenced_contents()}
            == {r.hash for r in west.unreferenced_contents()}
            == {r.hash for r in north.unreferenced_contents()})


def test_trash_and_versions_hold_content_until_they_expire(make_site: Factory) -> None:
    east = make_site("east")
    write(east, "/a", H[1])
    write(east, "/a", H[2])  # H[1] is now an earlier version
    write(east, "/b", H[3])
    east.unlink(ROOT_INO, "b")
    assert east.referenced([H[1], H[3]]) == {H[1], H[3]}
    assert east.unreferenced_contents() == []
    east.forget_content(H[3])
    assert east.content(H[3]) is not None  # held: never forgotten
    later = east.trash_list()[0].time_ns + 8 * 86400 * 10**9
    assert east.expire_undo(later, 7 * 86400 * 10**9) >= 2
    assert {r.hash for r in east.unreferenced_contents()} == {H[1], H[3]}
    assert east.resolve("/a").content == H[2]  # the current content stays, of course


def test_versions_are_the_same_everywhere_and_a_restore_is_a_new_version(
        make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/clip.mov", H[1])
    sync(east, west)
    write(west, "/clip.mov", H[2])
    sync(east, west)
    fid = east.resolve("/clip.mov").file_id
    assert east.versions(fid) == west.versions(fid)
    assert [(v.hash, v.site) for v in east.versions(fid)] == [(H[1], "east"), (H[2], "west")]
    restore.restore_version(east, "/clip.mov", 1)
    sync(east, west)
    assert west.resolve("/clip.mov").content == H[1]
    assert [v.hash for v in west.versions(fid)] == [H[1], H[2], H[1]]


def test_snapshots_converge_and_the_later_of_one_name_wins(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    east.snapshot_add("daily", H[5], 10, 100, {H[1]})
    west.snapshot_add("daily", H[6], 11, 110, {H[2]})  # later clock: kept everywhere
    sync(east, west)
    assert east.snapshots() == west.snapshots()
    assert [s.manifest for s in east.snapshots()] == [H[6]]
    # east's own snapshot lost: its contents stay held until the site releases them with
    # the manifest read back (the store cannot read the bucket)
    assert east.pending_releases() == [H[5]] and east.held(H[1])
    east.release_snapshot(H[5], {H[1]})
    assert not east.held(H[1]) and west.held(H[2]) and east.pending_releases() == []
    assert east.hold_snapshot("daily", H[6], {H[2]}) and east.held(H[2])
    assert not east.hold_snapshot("daily", H[5], {H[1]})  # not that snapshot any more
    east.snapshot_delete("daily")
    sync(east, west)
    assert east.snapshots() == west.snapshots() == []
    for site in (east, west):
        assert site.held(H[2]) and site.pending_releases() == [H[6]]
        site.release_snapshot(H[6], {H[2]})
        assert not site.held(H[2]) and not site.held(H[6])


def test_a_snapshot_manifest_lists_the_tree_and_restores_it(make_site: Factory) -> None:
    east = make_site("east")
    shot_tree(east)
    objects = MemoryObjectStore()
    record = snapshots.create(east, objects, "before-edit")
    manifest = snapshots.load(objects, record.manifest)
    assert record.files == 6 and set(manifest.hashes()) == {H[1], H[2], H[3]}
    assert sorted(manifest.entries) == ["/shots", "/shots/edit.xml", "/shots/empty",
                                        "/shots/sh010", "/shots/sh010/plate.0001.exr",
                                        "/shots/sh010/plate.0002.exr"]
    assert manifest.entries["/shots/edit.xml"][5] == H[3]
    with pytest.raises(AlreadyExists):
        snapshots.create(east, objects, "before-edit")
    rm_rf(east, "/shots/sh010")
    done = restore.bring_back(east, manifest.records("/shots/sh010"), "/shots/sh010",
                              "/shots/sh010")
    assert done.files == 2 and east.resolve("/shots/sh010/plate.0002.exr").content == H[2]


def test_trash_off_keeps_nothing(make_site: Factory) -> None:
    east = make_site("east")
    east.put_setting(TRASH_SETTING, "0")
    write(east, "/a", H[1])
    east.unlink(ROOT_INO, "a")
    assert east.trash_list() == [] and east.unreferenced_contents() != []


def test_undo_entries_are_checked_like_every_other() -> None:
    good = TrashOp("/shots/a.exr", "ab" * 16 + ".1", FILE, 0, 0, 4, 1, H[1], None, "unlink")
    wire = {"seq": 1, "origin": "east", "origin_seq": 1, "hlc": 1 << 16, "op": good.to_wire()}
    assert entry_from_wire(wire).op == good
    check_entry(entry_from_wire(wire))
    for op in (PurgeOp(None, None), PurgeOp("/shots", 10**18), SnapshotOp("daily", H[4], 3, 9),
               UnsnapshotOp("daily", H[4]),
               TrashOp("/l", "ab" * 16 + ".2", stat.S_IFLNK | 0o777, 0, 0, 3, 1, None, "a/b")):
        again = entry_from_wire({**wire, "op": op.to_wire()})
        assert again.op == op
        check_entry(again)
    with pytest.raises(InvalidJournalEntry, match="unknown in a snapshot"):
        entry_from_wire({**wire, "op": {**SnapshotOp("d", H[4], 1, 1).to_wire(), "x": 1}})
    for op, field in ((TrashOp("shots/a", "ab" * 16 + ".1", FILE, 0, 0, 4, 1), "op.path"),
                      (TrashOp("/a/../b", "ab" * 16 + ".1", FILE, 0, 0, 4, 1), "op.path"),
                      (TrashOp("/a", "ab" * 16 + ".1", DIR, 0, 0, 0, 1, H[1]), "op.hash"),
                      (TrashOp("/a", "ab" * 16 + ".1", FILE, 0, 0, 0, 1, cause="x"), "op.cause"),
                      (PurgeOp("/a", -1 << 70), "op.before"),
                      (SnapshotOp("a/b", H[1], 1, 1), "op.name")):
        bad = {**wire, "op": op.to_wire()}
        with pytest.raises(InvalidJournalEntry) as caught:
            check_entry(entry_from_wire(bad))
        assert caught.value.field == field


def test_a_purge_takes_the_removed_files_versions_too(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/a", H[1])
    write(east, "/a", H[2])
    fid = east.resolve("/a").file_id
    east.unlink(ROOT_INO, "a")
    time.sleep(0.005)
    east.trash_purge("/a")
    sync(east, west)
    for site in (east, west):
        assert site.versions(fid) == [] and site.trash_list() == []
        assert {r.hash for r in site.unreferenced_contents()} == {H[1], H[2]}


def test_until_a_peers_snapshot_is_read_everything_counts_as_held(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(west, "/a", H[1])
    west.unlink(ROOT_INO, "a")
    west.trash_purge()
    east.snapshot_add("s", H[9], 1, 1, {H[2]})
    sync(east, west)
    assert west.referenced([H[1], H[3]]) == {H[1], H[3]} and west.unreferenced_contents() == []
    assert west.hold_snapshot("s", H[9], {H[2]})
    assert west.referenced([H[1], H[2]]) == {H[2]}
    assert [r.hash for r in west.unreferenced_contents()] == [H[1]]


def test_undeletes_of_one_tree_at_two_sites_at_once_converge(make_site: Factory) -> None:
    """Two sites bring the same tree back while cut off from each other: the usual rules of
    concurrent creates apply (one keeps the name, the other is a conflict copy), alike at
    both, and no content is lost."""
    east, west = make_site("east"), make_site("west")
    shot_tree(east)
    sync(east, west)
    rm_rf(east, "/shots")
    sync(east, west)
    restore.undelete(east, "/shots")
    time.sleep(0.002)
    restore.undelete(west, "/shots")
    sync(east, west)
    assert namespace_digest(east) == namespace_digest(west)
    contents = {i.content for _, i in east.walk() if i.is_file}
    assert {H[1], H[2], H[3]} <= contents
    assert east.resolve("/shots/sh010/plate.0001.exr").content == H[1]


def test_a_purged_removal_is_remembered_until_the_trash_would_have_let_it_go(
        make_site: Factory) -> None:
    east = make_site("east")
    write(east, "/a", H[1])
    east.unlink(ROOT_INO, "a")
    time.sleep(0.005)
    east.trash_purge("/a")
    assert isinstance(east, UndoRecords) and len(east._kv_prefixed("purgedtrash:")) == 1
    removed_ns = int(time.time() * 1e9)
    east.expire_undo(removed_ns, 7 * 86400 * 10**9)
    assert len(east._kv_prefixed("purgedtrash:")) == 1  # within the retention: kept
    east.expire_undo(removed_ns + 8 * 86400 * 10**9, 7 * 86400 * 10**9)
    assert east._kv_prefixed("purgedtrash:") == []
