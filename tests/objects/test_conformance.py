"""One suite, every ObjectStore backend: memory, a local directory, S3 (moto over HTTP), S3 with
a key prefix. A backend is done when it passes all of this unchanged."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meridian.errors import BadPath, ObjectNotFound
from meridian.objects import LocalObjectStore, MemoryObjectStore, ObjectInfo, ObjectStore

BACKENDS = [
    "memory",
    "local",
    pytest.param("s3", marks=pytest.mark.s3),
    pytest.param("s3-prefix", marks=pytest.mark.s3),
]
S3_PAGE_SIZE = 7  # small, so every listing test also walks several ListObjectsV2 pages

BAD_KEYS = ["", "/a", "a/", "a//b", ".", "..", "./a", "a/./b", "a/../b", "../a", "a\x00b",
            ".tmp-x", "a/.tmp-y", "x" * 1025]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    kind = request.param
    if kind == "memory":
        opened: ObjectStore = MemoryObjectStore()
    elif kind == "local":
        opened = LocalObjectStore(tmp_path / "bucket")
    else:
        from meridian.objects.s3 import S3ObjectStore

        endpoint, bucket = request.getfixturevalue("s3_bucket")
        prefix = "site/pre" if kind == "s3-prefix" else ""
        if prefix:  # neighbours the prefixed store must never see
            with S3ObjectStore(bucket, endpoint_url=endpoint) as whole:
                for key in ("site/pre-sibling", "site/prefix", "site/other/x", "zzz"):
                    whole.put(key, b"not yours")
        opened = S3ObjectStore(
            bucket, prefix, endpoint_url=endpoint, list_page_size=S3_PAGE_SIZE
        )
    with opened:
        yield opened


def keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return [info.key for info in store.list(prefix)]


def test_new_store_is_empty(store: ObjectStore) -> None:
    assert keys(store) == []


def test_put_get_round_trip(store: ObjectStore) -> None:
    store.put("a/b/c.bin", b"hello world")
    assert store.get("a/b/c.bin") == b"hello world"
    assert store.head("a/b/c.bin") == ObjectInfo("a/b/c.bin", 11)
    assert list(store.list()) == [ObjectInfo("a/b/c.bin", 11)]


def test_put_is_idempotent_and_overwrites(store: ObjectStore) -> None:
    store.put("k", b"first version, long")
    store.put("k", b"first version, long")
    assert store.get("k") == b"first version, long"
    store.put("k", b"second")
    assert store.get("k") == b"second"
    assert store.head("k") == ObjectInfo("k", 6)
    assert keys(store) == ["k"]


def test_empty_object(store: ObjectStore) -> None:
    store.put("empty", b"")
    assert store.get("empty") == b""
    assert store.get("empty", 0, 10) == b""
    assert store.get("empty", 5) == b""
    assert store.head("empty") == ObjectInfo("empty", 0)
    assert list(store.list()) == [ObjectInfo("empty", 0)]


def test_binary_data(store: ObjectStore) -> None:
    data = bytes(range(256)) * 64 + os.urandom(300_000) + b"\x00\r\n\xff"
    store.put("bin/blob", data)
    assert store.get("bin/blob") == data
    assert store.get("bin/blob", 255, 260) == data[255:260]
    assert store.head("bin/blob") == ObjectInfo("bin/blob", len(data))


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (0, 10), (10, 20), (99, 100), (90, None), (90, 200), (0, 1000),
     (100, None), (100, 200), (150, None), (150, 160), (5, 5), (7, 3)],
)
def test_ranged_get(store: ObjectStore, start: int, end: int | None) -> None:
    data = bytes(range(100))
    store.put("r", data)
    assert store.get("r", start, end) == data[start:end]


def test_get_missing_raises_object_not_found(store: ObjectStore) -> None:
    store.put("present", b"x")
    for key in ("absent", "present/below", "pres"):
        with pytest.raises(ObjectNotFound, match=key):
            store.get(key)
        with pytest.raises(ObjectNotFound):
            store.get(key, 0, 1)
        with pytest.raises(ObjectNotFound):
            store.get(key, 3, 3)


def test_negative_range_is_a_programming_error(store: ObjectStore) -> None:
    store.put("r", b"abc")
    with pytest.raises(ValueError):
        store.get("r", -1)
    with pytest.raises(ValueError):
        store.get("r", 0, -1)


def test_head_present_and_missing(store: ObjectStore) -> None:
    assert store.head("nothing/here") is None
    store.put("dir/file", b"12345")
    assert store.head("dir/file") == ObjectInfo("dir/file", 5)
    assert store.head("dir") is None  # a "folder" is not an object


TRICKY_KEYS = ["b", "a.txt", "a/b", "a/b.x", "a/c/d", "a-b", "ab", "B", "~x", "é/x", "e/f",
               "z/9", "z/10", "0", "content/00/x", "content/0a/y"]


def test_list_is_sorted_by_key(store: ObjectStore) -> None:
    for i, key in enumerate(reversed(TRICKY_KEYS)):
        store.put(key, b"x" * i)
    listed = list(store.list())
    assert [info.key for info in listed] == sorted(TRICKY_KEYS, key=lambda k: k.encode())
    sizes = {key: i for i, key in enumerate(reversed(TRICKY_KEYS))}
    assert all(info.size == sizes[info.key] for info in listed)


@pytest.mark.parametrize("prefix", ["", "a", "a/", "a/b", "a/c", "a/c/", "ab", "z/1", "é",
                                    "content/0", "content/0a/", "nothing", "a/b.x/none"])
def test_list_filters_by_prefix(store: ObjectStore, prefix: str) -> None:
    for key in TRICKY_KEYS:
        store.put(key, b"v")
    expected = sorted((k for k in TRICKY_KEYS if k.startswith(prefix)), key=lambda k: k.encode())
    assert keys(store, prefix) == expected


def test_list_paginates_and_is_lazy(store: ObjectStore) -> None:
    names = [f"many/{i:04d}" for i in range(40)] + ["other/x"]
    for name in names:
        store.put(name, name.encode())
    assert keys(store, "many/") == names[:40]
    assert keys(store) == names
    it = store.list("many/")
    assert next(it) == ObjectInfo("many/0000", 9)
    assert next(it).key == "many/0001"


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("d/x", b"1")
    store.put("d/y", b"2")
    store.delete("d/x")
    store.delete("d/x")
    store.delete("never/existed")
    assert store.head("d/x") is None
    with pytest.raises(ObjectNotFound):
        store.get("d/x")
    assert keys(store) == ["d/y"]
    store.delete("d/y")
    assert keys(store) == []
    store.put("d/x", b"again")  # a deleted key (and its emptied folder) can be reused
    assert store.get("d/x") == b"again"


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_bad_keys_raise_bad_path(store: ObjectStore, bad: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.put(bad, b"x"),
        lambda: store.get(bad),
        lambda: store.head(bad),
        lambda: store.delete(bad),
        lambda: store.get(bad, 1, 2),
    ]
    for call in calls:
        with pytest.raises(BadPath) as raised:
            call()
        assert repr(bad)[:40] in str(raised.value)
    assert keys(store) == []


@pytest.mark.parametrize("bad", ["/a", "a//", "../x", "a/../", "a\x00", "./"])
def test_bad_list_prefix_raises_at_call(store: ObjectStore, bad: str) -> None:
    with pytest.raises(BadPath):
        store.list(bad)


def test_concurrent_puts_and_reads_are_atomic(store: ObjectStore) -> None:
    versions = [bytes([n]) * 65_536 for n in range(6)]
    store.put("shared", versions[0])
    errors: list[BaseException] = []
    seen: set[bytes] = set()

    def writer(n: int) -> None:
        try:
            for i in range(8):
                store.put(f"t{n}/k{i}", f"{n}-{i}".encode())
                store.put("shared", versions[n])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(20):
                seen.add(store.get("shared"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert seen <= set(versions)  # never a torn or partial object
    assert store.get("shared") in versions
    for n in range(6):
        for i in range(8):
            assert store.get(f"t{n}/k{i}") == f"{n}-{i}".encode()
    assert len(keys(store)) == 6 * 8 + 1


def test_store_has_a_display_url_and_closes_twice(store: ObjectStore) -> None:
    assert "://" in store.url
    assert store.url in repr(store)
    store.close()
    store.close()
