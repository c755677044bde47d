"""What only the local-directory store has to get right: files on disk, temp files, folders."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meridian.errors import BadPath, BucketUnreachable
from meridian.objects import LocalObjectStore, MemoryObjectStore


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_objects_are_plain_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "b")
    store.put("content/ab/blob", b"data")
    assert (tmp_path / "b" / "content" / "ab" / "blob").read_bytes() == b"data"
    assert store.url == (tmp_path / "b").as_uri()


def test_temp_files_are_never_listed_nor_left_behind(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    for i in range(5):
        store.put(f"d/k{i}", b"x" * i)
    assert not [name for name in files_under(tmp_path) if ".tmp-" in name]
    (tmp_path / ".tmp-crashed").write_bytes(b"half")  # left by a crash mid-put
    (tmp_path / "d" / ".tmp-crashed").write_bytes(b"half")
    assert [info.key for info in store.list()] == [f"d/k{i}" for i in range(5)]


def test_a_failed_rename_keeps_the_old_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("k", b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(BucketUnreachable, match="Input/output error"):
        store.put("k", b"new")
    monkeypatch.undo()
    assert store.get("k") == b"old"
    assert files_under(tmp_path) == ["k"]


def test_delete_prunes_emptied_folders_only(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("a/b/c/one", b"1")
    store.put("a/two", b"2")
    store.delete("a/b/c/one")
    assert not (tmp_path / "a" / "b").exists()
    assert (tmp_path / "a" / "two").exists()
    store.delete("a/two")
    assert tmp_path.is_dir() and list(tmp_path.iterdir()) == []


def test_a_key_cannot_be_both_object_and_folder(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("a", b"object")
    with pytest.raises(BadPath, match="'a/b'.*conflicts"):
        store.put("a/b", b"below an object")
    store.put("x/y", b"1")
    with pytest.raises(BadPath, match="'x'.*conflicts"):
        store.put("x", b"over a folder")
    assert store.get("a") == b"object" and store.get("x/y") == b"1"


def test_a_vanished_bucket_directory_is_unreachable_not_empty(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "mnt")
    store.put("k", b"v")
    os.unlink(tmp_path / "mnt" / "k")
    os.rmdir(tmp_path / "mnt")
    with pytest.raises(BucketUnreachable):
        store.get("k")
    with pytest.raises(BucketUnreachable):
        store.head("k")
    with pytest.raises(BucketUnreachable):
        list(store.list())
    with pytest.raises(BucketUnreachable):
        LocalObjectStore(tmp_path / "mnt", create=False)


def test_put_and_delete_race_in_one_folder(tmp_path: Path) -> None:
    """Pruning an emptied folder must never make a concurrent put into it fail."""
    store = LocalObjectStore(tmp_path)
    errors: list[BaseException] = []

    def churn(n: int) -> None:
        try:
            for _ in range(60):
                store.put(f"shared/folder/k{n}", b"v")
                store.delete(f"shared/folder/k{n}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert list(store.list()) == []


_names = st.text(alphabet="ab.-_é0", min_size=1, max_size=3).filter(
    lambda s: s not in (".", "..") and not s.startswith(".tmp-")
)


@settings(max_examples=40, deadline=None)
@given(paths=st.lists(st.lists(_names, min_size=1, max_size=3), max_size=12),
       prefix=st.text(alphabet="ab./é", max_size=4))
def test_local_listing_matches_memory(paths: list[list[str]], prefix: str) -> None:
    keys: list[str] = []
    for parts in paths:
        key = "/".join(parts)
        # skip keys that would make an object also a folder (see module docstring of local)
        if any(k == key or k.startswith(key + "/") or key.startswith(k + "/") for k in keys):
            continue
        keys.append(key)
    memory = MemoryObjectStore()
    with tempfile.TemporaryDirectory() as root:
        local = LocalObjectStore(Path(root))
        for key in keys:
            memory.put(key, key.encode())
            local.put(key, key.encode())
        try:
            expected = list(memory.list(prefix))
        except BadPath:
            with pytest.raises(BadPath):
                local.list(prefix)
            return
        assert list(local.list(prefix)) == expected
