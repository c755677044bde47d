"""The table of internal nodes: virtual files and provider-made directories in one range."""

from __future__ import annotations

import errno
import stat

import pytest
import pyfuse3

from meridian.errors import NotADirectory, NotFound
from meridian.mount.internal import INTERNAL_BASE, InternalNodes, VirtualDir, VirtualFile

META_DIR = 3  # a real directory of the store


def test_an_attached_file_is_found_by_name_listed_and_read() -> None:
    table = InternalNodes()
    answer = [b"{}\n"]
    ino = table.attach(META_DIR, VirtualFile("site.json", lambda: answer[0]))
    assert ino == INTERNAL_BASE + 1 and table.owns(ino) and not table.owns(META_DIR)
    found = table.lookup(META_DIR, "site.json")
    assert found is not None and found.ino == ino and stat.S_ISREG(found.mode)
    assert found.mode & 0o777 == 0o444 and found.size == 3
    assert table.lookup(META_DIR, "other") is None  # the store answers that one
    assert table.lookup(META_DIR + 1, "site.json") is None
    assert [(name, inode.ino) for name, inode in table.listed_in(META_DIR)] == [("site.json", ino)]
    answer[0] = b'{"site": "east"}\n'
    assert table.read(ino) == answer[0] and table.getattr(ino).size == len(answer[0])


def test_an_unlisted_node_is_found_but_not_listed() -> None:
    table = InternalNodes()
    ino = table.attach(1, VirtualDir(".snapshot", lambda: []), listed=False)
    assert table.listed_in(1) == []
    found = table.lookup(1, ".snapshot")
    assert found is not None and found.ino == ino and stat.S_ISDIR(found.mode)


def test_provider_children_keep_their_numbers_and_vanish_when_gone() -> None:
    snapshots: dict[str, bytes] = {"a.exr": b"aaaa", "b.exr": b"bb"}

    def frozen(data: bytes) -> VirtualFile:
        return VirtualFile("", lambda: data)

    def children() -> list[VirtualFile | VirtualDir]:
        return [VirtualFile(name, frozen(data).content) for name, data in snapshots.items()]

    table = InternalNodes()
    top = table.attach(1, VirtualDir(".snapshot", lambda: [VirtualDir("monday", children)]))
    monday = table.lookup(top, "monday")
    assert monday is not None and table.is_dir(monday.ino) and table.parent_of(monday.ino) == top
    listing = dict((name, inode.ino) for name, inode in table.listing(monday.ino))
    assert set(listing) == {"a.exr", "b.exr"}
    a = table.lookup(monday.ino, "a.exr")
    assert a is not None and a.ino == listing["a.exr"] and table.read(a.ino) == b"aaaa"
    del snapshots["a.exr"]
    with pytest.raises(NotFound):
        table.lookup(monday.ino, "a.exr")
    b = table.lookup(monday.ino, "b.exr")
    assert b is not None and b.ino == listing["b.exr"]  # the same number on every lookup
    with pytest.raises(NotADirectory):
        table.listing(b.ino)
    with pytest.raises(pyfuse3.FUSEError) as exc:
        table.read(monday.ino)
    assert exc.value.errno == errno.EISDIR


def test_numbers_from_before_a_restart_are_stale_and_changes_read_only() -> None:
    table = InternalNodes()
    table.attach(META_DIR, VirtualFile("site.json", lambda: b""))
    with pytest.raises(pyfuse3.FUSEError) as exc:
        table.getattr(INTERNAL_BASE + 99)
    assert exc.value.errno == errno.ESTALE
    with pytest.raises(pyfuse3.FUSEError) as exc:
        table.refuse_change(INTERNAL_BASE + 1)
    assert exc.value.errno == errno.EROFS
    with pytest.raises(pyfuse3.FUSEError) as exc:
        table.refuse_name_change(META_DIR, b"site.json")
    assert exc.value.errno == errno.EROFS
    table.refuse_change(META_DIR)  # the store's own: not refused here
    table.refuse_name_change(META_DIR, b"lost+found")
