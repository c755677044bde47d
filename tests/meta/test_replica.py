"""Replication rules at the store level: sites as stores, links as journal pulls.

Every test runs against both engines. A "link" is one pull: ``dst`` takes ``src``'s journal
from its position, exactly as the replication service does over HTTP. Randomized runs over
many seeds are in ``test_replica_randomized.py``.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meridian.meta import ROOT_INO, AttrChanges, MetaStore
from meridian.meta.clock import HybridClock
from meridian.meta.memory import MemoryMetaStore
from meridian.meta.conflicts import conflict_name
from meridian.meta.sqlite import SqliteMetaStore
from meridian.site.inspect import namespace_digest
from tests.meta.randomized import pull, sync, write

FILE = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755

Factory = Callable[[str], MetaStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    made: list[MetaStore] = []

    def make(name: str) -> MetaStore:
        store: MetaStore
        if request.param == "memory":
            store = MemoryMetaStore(name)
        else:
            store = SqliteMetaStore(tmp_path / f"{name}.db", name)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def tree(store: MetaStore) -> dict[str, str | None]:
    return {path: (f"{inode.content}:{stat.S_IMODE(inode.mode):o}" if inode.is_file else ("dir" if inode.is_dir else inode.target))
            for path, inode in store.walk()}


def converged(*sites: MetaStore) -> None:
    digests = {s.site_name: namespace_digest(s) for s in sites}
    assert len(set(digests.values())) == 1, {s.site_name: tree(s) for s in sites}


def test_every_kind_of_change_reaches_the_other_site(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    d = east.create(ROOT_INO, "shots", DIR, 0, 0)
    write(east, "/shots/a.exr", "h1")
    east.create(d.ino, "link", stat.S_IFLNK | 0o777, 0, 0, target="a.exr")
    write(east, "/shots/gone", "h2")
    east.unlink(d.ino, "gone")
    east.rename(d.ino, "a.exr", d.ino, "b.exr")
    east.setattr(east.resolve("/shots/b.exr").ino, AttrChanges(mode=0o600))
    east.link(east.resolve("/shots/b.exr").ino, ROOT_INO, "hard")
    east.setxattr(d.ino, "user.k", b"v")
    sync(east, west)
    assert tree(west) == tree(east)
    b = west.resolve("/shots/b.exr")
    assert stat.S_IMODE(b.mode) == 0o600 and b.nlink == 2 and b.origin_site == "east"
    assert west.getxattr(west.resolve("/shots").ino, "user.k") == b"v"
    converged(east, west)


def test_redelivery_changes_nothing(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/f", "h1")
    entries = east.journal()
    first = west.apply_entries("east", entries)
    seq = west.last_seq()
    again = west.apply_entries("east", entries)
    assert first.applied == len(entries) and again.applied == 0 and west.last_seq() == seq


def test_a_gap_stops_the_batch_before_it(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/f", "h1")
    write(east, "/g", "h2")
    entries = east.journal()
    result = west.apply_entries("east", entries[2:])
    assert result.gap and result.applied == 0 and west.peer_position("east") == 0
    assert pull(west, east) == len(entries)


def test_through_moves_the_position_past_left_out_entries_but_never_past_a_gap(
        make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/f", "h1")
    entries = east.journal()
    result = west.apply_entries("east", [], through=len(entries) + 5)
    assert result.applied == 0 and west.peer_position("east") == len(entries) + 5
    other = make_site("other")
    write(east, "/g", "h2")
    later = east.journal(after=len(entries))
    stopped = other.apply_entries("east", later, through=100)  # /f's entries are missing
    assert stopped.gap and other.peer_position("east") == 0


def test_entries_are_relayed_along_a_chain(make_site: Factory) -> None:
    east, mid, west = make_site("east"), make_site("mid"), make_site("west")
    write(east, "/f", "h1")
    pull(mid, east)
    write(mid, "/g", "h2")
    pull(west, mid)  # west never talks to east
    assert tree(west) == tree(mid)
    pull(east, mid)
    assert east.applied_seq("east") == west.applied_seq("east")  # east's own came back: skipped
    converged(east, mid, west)


def test_concurrent_writes_keep_both_versions_identically(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/clip.clip", "v0")
    sync(east, west)
    write(east, "/clip.clip", "from-east")
    write(west, "/clip.clip", "from-west")  # later clock: west keeps the name
    sync(east, west)
    converged(east, west)
    names = [n for n, _ in west.list_dir(ROOT_INO) if n != ".meridian"]
    assert len(names) == 2 and "clip.clip" in names
    copy = next(n for n in names if n != "clip.clip")
    assert copy.startswith("clip.conflict-") and copy.endswith("-east.clip")
    assert west.resolve("/clip.clip").content == "from-west"
    assert west.resolve("/" + copy).content == "from-east"


def test_a_later_write_of_the_losing_site_supersedes_its_copy(make_site: Factory) -> None:
    east, west, north = make_site("east"), make_site("west"), make_site("north")
    write(east, "/f", "v0")
    sync(east, west, north)
    write(west, "/f", "w1")
    write(east, "/f", "e1")
    write(east, "/f", "e2")  # east's own line goes on
    pull(north, west)
    pull(north, east)  # north saw w1 first, then e1 (conflict), then e2
    pull(west, east)
    pull(east, west)
    converged(east, west, north)
    contents = sorted(i.content or "" for _, i in west.walk() if i.is_file)
    assert contents == ["e2", "w1"]


def test_modified_file_survives_a_concurrent_delete(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/d/f.txt" if False else "/f.txt", "v0")
    sync(east, west)
    east.unlink(ROOT_INO, "f.txt")
    write(west, "/f.txt", "v1")
    sync(east, west)
    converged(east, west)
    assert east.resolve("/f.txt").content == "v1"


def test_editors_replace_by_rename_at_two_sites_leaves_one_conflict_copy(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/shot.clip", "v0")
    sync(east, west)
    for site, text in ((east, "east-edit"), (west, "west-edit")):
        write(site, "/.shot.clip.tmp", text)
        site.rename(ROOT_INO, ".shot.clip.tmp", ROOT_INO, "shot.clip")
    sync(east, west)
    converged(east, west)
    files = {n: i.content for n, i in east.list_dir(ROOT_INO) if i.is_file}
    assert files["shot.clip"] == "west-edit"
    assert sorted(files.values()) == ["east-edit", "west-edit"]


def test_replace_by_rename_against_a_write_keeps_the_write(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/a", "v0")
    sync(east, west)
    write(east, "/tmp", "east-new")
    east.rename(ROOT_INO, "tmp", ROOT_INO, "a")
    write(west, "/a", "west-write")
    sync(east, west)
    converged(east, west)
    contents = sorted(i.content or "" for _, i in east.walk() if i.is_file)
    assert contents == ["east-new", "west-write"]


def test_rename_against_rename_the_later_wins(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/f", "v0")
    sync(east, west)
    east.rename(ROOT_INO, "f", ROOT_INO, "g")
    west.rename(ROOT_INO, "f", ROOT_INO, "h")
    sync(east, west)
    converged(east, west)
    assert [n for n, _ in east.list_dir(ROOT_INO) if n != ".meridian"] == ["h"]


def test_rename_against_delete_the_delete_wins(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/f", "v0")
    sync(east, west)
    east.rename(ROOT_INO, "f", ROOT_INO, "g")
    west.unlink(ROOT_INO, "f")
    sync(east, west)
    converged(east, west)
    assert [n for n, _ in east.list_dir(ROOT_INO) if n != ".meridian"] == []


def test_create_of_one_name_at_two_sites(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    east.create(ROOT_INO, "renders", DIR, 0, 0)
    west.create(ROOT_INO, "renders", DIR, 0, 0)
    sync(east, west)
    converged(east, west)
    names = [n for n, _ in east.list_dir(ROOT_INO) if n != ".meridian"]
    assert names[0] == "renders" and names[1].startswith("renders.conflict-")


def test_directory_rename_cycle_is_undone_into_lost_found(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    a = east.create(ROOT_INO, "a", DIR, 0, 0)
    east.create(ROOT_INO, "b", DIR, 0, 0)
    write(east, "/a/keep", "k")
    sync(east, west)
    east.rename(ROOT_INO, "a", east.resolve("/b").ino, "a")
    west.rename(ROOT_INO, "b", west.resolve("/a").ino, "b")  # later
    sync(east, west)
    converged(east, west)
    assert a.ino
    found = [p for p, _ in east.walk() if p.startswith("/.meridian/lost+found/")]
    assert found and any(p.endswith("/keep") for p in found)


def test_directory_delete_against_create_inside_keeps_the_new_file(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    east.create(ROOT_INO, "d", DIR, 0, 0)
    sync(east, west)
    east.rmdir(ROOT_INO, "d")
    write(west, "/d/new", "n")
    new = west.resolve("/d/new")
    sync(east, west)
    converged(east, west)
    found = east.list_dir(east.resolve("/.meridian/lost+found").ino)
    assert [(n, i.content) for n, i in found] == [(f"new~{new.file_id}", "n")]


def test_a_move_onto_a_taken_name_is_refused_not_overwritten(make_site: Factory) -> None:
    """The rules free or claim a name before they bind it; should one ever not, the store
    refuses the change (the link reports it) rather than overwrite the name, which would
    leave a file counted but unreachable."""
    from meridian.errors import StoreError
    east = make_site("east")
    write(east, "/a", "1")
    write(east, "/b", "2")
    a, b = east.resolve("/a"), east.resolve("/b")
    with pytest.raises(StoreError, match="'b' in directory 'root' is taken"):
        with east._transaction():  # as apply_entries runs the rules
            east._move(a, ROOT_INO, "a", ROOT_INO, "b", "v")
    assert (east.resolve("/a").ino, east.resolve("/b").ino) == (a.ino, b.ino)
    assert (east.getattr(a.ino).nlink, east.getattr(b.ino).nlink) == (1, 1)


def test_meridian_own_directories_cannot_be_removed(make_site: Factory) -> None:
    east = make_site("east")
    from meridian.errors import InvalidOperation, DirectoryNotEmpty
    with pytest.raises((InvalidOperation, DirectoryNotEmpty)):
        east.rmdir(ROOT_INO, ".meridian")
    with pytest.raises(InvalidOperation):
        east.rename(east.resolve("/.meridian").ino, "lost+found", ROOT_INO, "x")


def test_conflict_name_format() -> None:
    from meridian.meta.journal import version
    ver = version((1_764_590_400_000 << 16) | 3, "west")  # 2025-12-01 12:00:00 UTC
    assert conflict_name("sh010.clip", ver) == "sh010.conflict-20251201-120000-west.clip"
    assert conflict_name("README", ver) == "README.conflict-20251201-120000-west"
    assert conflict_name("a.tar.gz", ver, 2) == "a.tar.conflict-20251201-120000-west-2.gz"
    assert conflict_name(".bashrc", ver) == ".bashrc.conflict-20251201-120000-west"
    assert len(conflict_name("x" * 255, ver).encode()) <= 255


def test_garbage_collection_bookkeeping(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/a", "h1")
    write(east, "/b", "h2")
    east.mark_in_bucket("h1")
    sync(east, west)
    west_record = west.content("h1")
    assert west_record is not None and west_record.in_bucket
    assert east.referenced(["h1", "h2", "h3"]) == {"h1", "h2"}
    east.unlink(ROOT_INO, "a")
    assert [r.hash for r in east.unreferenced_contents()] == ["h1"]
    seq = east.retire_content("h1")
    assert seq == east.applied_seq("east")
    sync(east, west)
    record = west.content("h1")
    assert record is not None and not record.in_bucket  # a new write of h1 would upload again
    east.forget_content("h1")
    east.forget_content("h2")  # still referenced: kept
    assert east.content("h1") is None and east.content("h2") is not None


def test_a_write_started_before_another_sites_version_arrived_keeps_both(
        make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/take.mov", "v0")
    sync(east, west)
    opened_at = east.resolve("/take.mov").content_version  # east opens it for writing ...
    write(west, "/take.mov", "from-west")
    sync(east, west)  # ... west's version arrives while east's bytes are being written ...
    ino = east.resolve("/take.mov").ino
    east.set_content(ino, "from-east", 9, base=opened_at)  # ... and east closes
    sync(east, west)
    converged(east, west)
    files = {n: i.content for n, i in west.list_dir(ROOT_INO) if i.is_file}
    assert files["take.mov"] == "from-east"
    assert sorted(files.values()) == ["from-east", "from-west"]


# -- the rules of docs/conflicts.md that random runs reach only by chance --------------------
def names(store: MetaStore, ino: int = ROOT_INO) -> list[str]:
    return [n for n, _ in store.list_dir(ino) if n != ".meridian"]


def test_concurrent_mode_and_owner_changes_the_later_wins_whole(make_site: Factory) -> None:
    east, west, north = make_site("east"), make_site("west"), make_site("north")
    write(east, "/plate.exr", "v0")
    sync(east, west, north)
    east.setattr(east.resolve("/plate.exr").ino, AttrChanges(mode=0o600))
    west.setattr(west.resolve("/plate.exr").ino, AttrChanges(uid=1001, gid=1001))  # later
    pull(north, west)  # north hears the later change first, east's after it
    pull(north, east)
    pull(east, west)  # east hears it after its own
    pull(west, east)
    converged(east, west, north)
    for site in (east, west, north):
        plate = site.resolve("/plate.exr")
        assert (stat.S_IMODE(plate.mode), plate.uid, plate.gid) == (0o644, 1001, 1001)


def test_concurrent_xattr_and_time_changes_the_later_wins(make_site: Factory) -> None:
    east, west, north = make_site("east"), make_site("west"), make_site("north")
    write(east, "/plate.exr", "v0")
    sync(east, west, north)
    for site, value, mtime in ((east, b"east", 111), (west, b"west", 222)):  # west's later
        ino = site.resolve("/plate.exr").ino
        site.setxattr(ino, "user.grade", value)
        site.setattr(ino, AttrChanges(mtime_ns=mtime))
    pull(north, west)
    pull(north, east)
    sync(east, west, north)
    converged(east, west, north)
    for site in (east, west, north):
        plate = site.resolve("/plate.exr")
        assert site.getxattr(plate.ino, "user.grade") == b"west" and plate.mtime_ns == 222


def test_unlinking_one_name_of_a_hard_linked_file_keeps_the_other(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/take.mov", "v0")
    east.link(east.resolve("/take.mov").ino, ROOT_INO, "selects.mov")
    sync(east, west)
    assert west.resolve("/take.mov").ino == west.resolve("/selects.mov").ino
    east.unlink(ROOT_INO, "take.mov")
    sync(east, west)
    converged(east, west)
    kept = west.resolve("/selects.mov")
    assert names(west) == ["selects.mov"] and kept.nlink == 1 and kept.content == "v0"


def test_unlinking_one_name_while_the_file_is_written_elsewhere(make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/take.mov", "v0")
    east.link(east.resolve("/take.mov").ino, ROOT_INO, "selects.mov")
    sync(east, west)
    east.unlink(ROOT_INO, "selects.mov")  # one name of two: the file stays
    write(west, "/take.mov", "v1")
    sync(east, west)
    converged(east, west)
    assert names(east) == ["take.mov"] and east.resolve("/take.mov").content == "v1"


def test_a_delete_wins_over_a_concurrent_link_unless_the_file_was_written(
        make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/a", "v0")
    write(east, "/b", "w0")
    sync(east, west)
    east.unlink(ROOT_INO, "a")
    west.link(west.resolve("/a").ino, ROOT_INO, "a-link")
    east.unlink(ROOT_INO, "b")
    west.link(west.resolve("/b").ino, ROOT_INO, "b-link")
    write(west, "/b-link", "w1")  # written: it comes back with both its names
    sync(east, west)
    converged(east, west)
    assert names(east) == ["b", "b-link"] and east.resolve("/b").content == "w1"
    assert east.resolve("/b").nlink == 2


def test_unlinking_a_hard_link_renamed_meanwhile_removes_it_under_its_new_name(
        make_site: Factory) -> None:
    east, west = make_site("east"), make_site("west")
    write(east, "/a", "v0")
    east.link(east.resolve("/a").ino, ROOT_INO, "b")
    sync(east, west)
    east.rename(ROOT_INO, "b", ROOT_INO, "c")
    west.unlink(ROOT_INO, "b")  # that name is "c" at east by now
    sync(east, west)
    converged(east, west)
    assert names(east) == ["a"] and east.resolve("/a").nlink == 1


@pytest.mark.parametrize("winner_goes", ["deleted", "renamed"])
def test_a_loser_takes_its_name_back_when_the_winner_goes(make_site: Factory,
                                                         winner_goes: str) -> None:
    east, west, north = make_site("east"), make_site("west"), make_site("north")
    write(east, "/edit.otio", "from-east")
    write(west, "/edit.otio", "from-west")  # later: west's keeps the name
    pull(west, east)
    assert sorted(i.content or "" for _, i in west.walk() if i.is_file) == ["from-east",
                                                                           "from-west"]
    assert west.resolve("/edit.otio").content == "from-west"
    if winner_goes == "deleted":
        west.unlink(ROOT_INO, "edit.otio")
    else:
        west.rename(ROOT_INO, "edit.otio", ROOT_INO, "edit-old.otio")
    pull(north, west)  # north sees the winner come and go before the loser arrives ...
    pull(north, east)
    pull(east, west)  # ... east sees its own lose the name, then get it back
    converged(east, west, north)
    for site in (east, west, north):
        assert site.resolve("/edit.otio").content == "from-east"
        assert not [n for n in names(site) if ".conflict-" in n]


def test_a_directory_time_is_that_of_the_latest_change_in_it(make_site: Factory) -> None:
    east, west, north = make_site("east"), make_site("west"), make_site("north")
    now = [1_764_590_400_000]

    def wall_ms() -> int:  # a second per reading: which change is later is certain
        now[0] += 1000
        return now[0]

    for site in (east, west, north):
        site._clock = HybridClock(site._clock.last, wall_ms)  # type: ignore[attr-defined]
    east.create(ROOT_INO, "shots", DIR, 0, 0)
    sync(east, west, north)
    write(west, "/shots/b", "vb")
    write(east, "/shots/a", "va")  # later: its clock time is the directory's
    east_time = east.resolve("/shots").mtime_ns
    pull(north, east)
    pull(north, west)  # the earlier change arrives last
    sync(east, west, north)
    converged(east, west, north)
    assert {s.resolve("/shots").mtime_ns for s in (east, west, north)} == {east_time}
    east.unlink(east.resolve("/shots").ino, "b")
    west.setattr(west.resolve("/shots").ino, AttrChanges(mtime_ns=42))  # touch -d, later
    pull(north, west)
    pull(north, east)  # the earlier change arrives last
    sync(west, east, north)
    converged(east, west, north)
    assert {s.resolve("/shots").mtime_ns for s in (east, west, north)} == {42}
