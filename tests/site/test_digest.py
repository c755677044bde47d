"""The convergence digest: equal for equal trees, different for any visible difference."""

from __future__ import annotations

import stat
from collections.abc import Callable

from meridian.meta import ROOT_INO, AttrChanges, MetaStore
from meridian.meta.clock import HybridClock
from meridian.meta.memory import MemoryMetaStore
from meridian.site.inspect import namespace_digest

FILE, DIR = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755
T0 = 1_764_590_400_000


def build(site: str, order: list[str]) -> MemoryMetaStore:
    """The same tree at every call: files of ``order`` in /shots (made in that order, with
    their own contents and times), a symlink, and an extended attribute."""
    store = MemoryMetaStore(site)
    store._clock = HybridClock(0, lambda: T0)  # creation times come from the change's clock
    d = store.create(ROOT_INO, "shots", DIR, 0, 0)
    for name in order:
        f = store.create(d.ino, name, FILE, 1000, 100)
        store.set_content(f.ino, name[0] * 64, 10, mtime_ns=T0 * 1_000_000 + ord(name[0]))
    store.create(ROOT_INO, "latest", stat.S_IFLNK | 0o777, 0, 0, target="shots/a")
    store.setxattr(d.ino, "user.show", b"abc")
    return store


def test_same_tree_same_digest_whatever_ids_and_order() -> None:
    east = build("east", ["a", "b", "c"])
    west = build("west", ["c", "a", "b"])  # other inode numbers, file ids, ctimes and atimes
    assert namespace_digest(east) == namespace_digest(west)
    west.setattr(west.resolve("/shots/a").ino, AttrChanges(atime_ns=5))  # atime: not shown
    assert namespace_digest(east) == namespace_digest(west)


def shots(s: MetaStore) -> int:
    return s.resolve("/shots").ino


def a(s: MetaStore) -> int:
    return s.resolve("/shots/a").ino


VARIANTS: list[tuple[str, Callable[[MetaStore], object]]] = [
    ("content", lambda s: s.set_content(a(s), "f" * 64, 10, mtime_ns=T0 * 1_000_000 + 97)),
    ("size", lambda s: s.set_content(a(s), "a" * 64, 11, mtime_ns=T0 * 1_000_000 + 97)),
    ("mode", lambda s: s.setattr(a(s), AttrChanges(mode=0o600))),
    ("uid", lambda s: s.setattr(a(s), AttrChanges(uid=1001))),
    ("gid", lambda s: s.setattr(a(s), AttrChanges(gid=101))),
    ("mtime", lambda s: s.setattr(a(s), AttrChanges(mtime_ns=1))),
    ("name", lambda s: s.rename(shots(s), "a", shots(s), "z")),
    ("symlink gone", lambda s: s.unlink(ROOT_INO, "latest")),
    ("symlink target", lambda s: (s.unlink(ROOT_INO, "latest"), s.create(
        ROOT_INO, "latest", stat.S_IFLNK | 0o777, 0, 0, target="shots/b"))),
    ("new directory", lambda s: s.create(ROOT_INO, "empty-dir", DIR, 0, 0)),
    ("directory mode", lambda s: s.setattr(shots(s), AttrChanges(mode=0o700))),
    ("directory mtime", lambda s: s.setattr(shots(s), AttrChanges(mtime_ns=5))),
    ("xattr value", lambda s: s.setxattr(shots(s), "user.show", b"abd")),
    ("xattr name", lambda s: s.setxattr(a(s), "user.show", b"abc")),
    ("xattr gone", lambda s: s.removexattr(shots(s), "user.show")),
    ("hard link", lambda s: s.link(a(s), ROOT_INO, "a-link")),
]


def test_any_visible_difference_changes_the_digest() -> None:
    base = namespace_digest(build("east", ["a", "b"]))
    digests = {}
    for what, variant in VARIANTS:
        store = build("east", ["a", "b"])
        variant(store)
        digests[what] = namespace_digest(store)
    assert base not in digests.values(), [w for w, d in digests.items() if d == base]
    assert len(set(digests.values())) == len(VARIANTS)


def test_a_hard_link_and_a_copy_of_the_same_file_differ() -> None:
    linked, copied = build("east", ["a"]), build("east", ["a"])
    linked.link(a(linked), ROOT_INO, "twin")
    twin = copied.create(ROOT_INO, "twin", FILE, 1000, 100)
    copied.set_content(twin.ino, "a" * 64, 10, mtime_ns=T0 * 1_000_000 + 97)
    assert copied.resolve("/twin").mtime_ns == linked.resolve("/twin").mtime_ns
    assert namespace_digest(linked) != namespace_digest(copied)
