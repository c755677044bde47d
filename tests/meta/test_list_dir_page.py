"""``list_dir_page``: a page of a folder equals the same slice of ``list_dir``, in both stores
(the SQLite store reads only the page)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from meridian.errors import NotADirectory, NotFound
from meridian.meta import ROOT_INO, MetaStore, open_meta_store

FILE, DIR = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetaStore]:
    url = "memory://" if request.param == "memory" else f"sqlite://{tmp_path}/meta.db"
    s = open_meta_store(url, "east")
    yield s
    s.close()


def test_pages_are_slices_of_the_listing(store: MetaStore) -> None:
    folder = store.create(ROOT_INO, "big", DIR, 0, 0)
    for n in (7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 4, 6, 12):
        store.create(folder.ino, f"n{n:02d}", FILE if n % 3 else DIR, 0, 0)
    whole = store.list_dir(folder.ino)
    for offset, limit in [(0, 5), (5, 5), (10, 5), (13, 5), (20, 5), (0, 100), (3, 0)]:
        count, page = store.list_dir_page(folder.ino, offset, limit)
        assert count == 13
        assert [(n, i.ino) for n, i in page] == [(n, i.ino) for n, i in whole[offset:offset + limit]]
    assert [n for n, _ in store.list_dir_page(folder.ino, 0, 3)[1]] == ["n00", "n01", "n02"]


def test_a_page_of_what_is_not_a_folder_is_refused(store: MetaStore) -> None:
    file = store.create(ROOT_INO, "f", FILE, 0, 0)
    with pytest.raises(NotADirectory):
        store.list_dir_page(file.ino, 0, 10)
    with pytest.raises(NotFound):
        store.list_dir_page(10_000, 0, 10)
