"""The convergence digest: equal for equal trees, different for any visible difference."""

from __future__ import annotations

import stat

from meridian.meta import ROOT_INO, AttrChanges
from meridian.meta.memory import MemoryMetaStore
from meridian.site.inspect import namespace_digest

FILE, DIR = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755


def build(site: str, order: list[str]) -> MemoryMetaStore:
    store = MemoryMetaStore(site)
    d = store.create(ROOT_INO, "shots", DIR, 0, 0)
    for name in order:
        f = store.create(d.ino, name, FILE, 1000 if site == "east" else 2000, 0)
        store.set_content(f.ino, name[0] * 64, 10)
    store.create(ROOT_INO, "latest", stat.S_IFLNK | 0o777, 0, 0, target="shots/a")
    return store


def test_same_tree_same_digest_whatever_ids_owners_and_order() -> None:
    east = build("east", ["a", "b", "c"])
    west = build("west", ["c", "a", "b"])  # other inode numbers, file ids, owners, times
    assert namespace_digest(east) == namespace_digest(west)


def test_any_visible_difference_changes_the_digest() -> None:
    base = namespace_digest(build("east", ["a", "b"]))
    shots = None  # each variant sees the `shots` directory of the store it changes
    variants = [
        lambda s: s.set_content(s.lookup(shots.ino, "a").ino, "f" * 64, 10),  # type: ignore[union-attr]
        lambda s: s.setattr(s.lookup(shots.ino, "a").ino, AttrChanges(mode=0o600)),  # type: ignore[union-attr]
        lambda s: s.rename(shots.ino, "a", shots.ino, "z"),  # type: ignore[union-attr]
        lambda s: s.unlink(ROOT_INO, "latest"),
        lambda s: s.create(ROOT_INO, "empty-dir", DIR, 0, 0),
    ]
    digests = set()
    for variant in variants:
        store = build("east", ["a", "b"])
        shots = store.lookup(ROOT_INO, "shots")
        variant(store)
        digests.add(namespace_digest(store))
    assert base not in digests and len(digests) == len(variants)
