"""Capacity and eviction (docs/design.md, rules 6 and 7): LRU among evictable instances only."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from meridian.content import (
    REFUSED_NOT_LOCAL,
    REFUSED_ONLY_COPY,
    REFUSED_OPEN,
    REFUSED_PINNED,
    LocalVolume,
    StagingFile,
    hash_bytes,
)
from meridian.errors import ContentError, NoSpace


class Bucket:
    """Stands in for "complete in the bucket": a set of hashes, and the questions asked."""

    def __init__(self) -> None:
        self.hashes: set[str] = set()
        self.asked: list[str] = []

    def __call__(self, content_hash: str) -> bool:
        self.asked.append(content_hash)
        return content_hash in self.hashes


def commit_bytes(volume: LocalVolume, data: bytes) -> str:
    staging = volume.new_staging()
    staging.write(0, data)
    return volume.commit(staging).hash


def local(volume: LocalVolume) -> set[str]:
    return {info.hash for info in volume.instances()}


@pytest.fixture
def bucket() -> Bucket:
    return Bucket()


def make_volume(root: Path, capacity: int | None, bucket: Bucket) -> LocalVolume:
    return LocalVolume(root, capacity, name="fast-ssd", is_evictable=bucket)


def fill(volume: LocalVolume, bucket: Bucket, count: int, size: int = 100) -> list[str]:
    hashes = [commit_bytes(volume, bytes([n]) * size) for n in range(count)]
    bucket.hashes.update(hashes)
    return hashes


def test_reserve_evicts_in_least_recently_used_order(root: Path, bucket: Bucket) -> None:
    volume = make_volume(root, 400, bucket)
    a, b, c, d = fill(volume, bucket, 4)
    for h in (c, a, d, b):  # access order: c is now the least recently used, b the most
        volume.read(h, 0, 1)
    assert [info.hash for info in volume.instances()] == [c, a, d, b]
    volume.reserve(100)
    assert local(volume) == {a, d, b}
    volume.reserve(250)  # 300 used: two more must go, the next two in LRU order
    assert local(volume) == {b}
    assert not (root / "content" / c[:2] / c).exists()
    assert volume.usage().used == 100


def test_nothing_is_evicted_when_there_is_room(root: Path, bucket: Bucket) -> None:
    volume = make_volume(root, 1000, bucket)
    fill(volume, bucket, 3)
    volume.reserve(700)
    assert len(local(volume)) == 3
    unlimited = make_volume(root / "unlimited", None, bucket)
    fill(unlimited, bucket, 3)
    unlimited.reserve(10**15)
    assert len(local(unlimited)) == 3


def test_pinned_open_and_only_copies_are_never_evicted(root: Path, bucket: Bucket) -> None:
    volume = make_volume(root, 300, bucket)
    pinned, opened, only_copy = fill(volume, bucket, 3)
    bucket.hashes.discard(only_copy)
    volume.pin(pinned)
    volume.open_ref(opened)
    with pytest.raises(NoSpace) as refused:
        volume.reserve(1)
    message = str(refused.value)
    for words in (
        "'fast-ssd'",
        "capacity 300",
        "300 used",
        "1 pinned",
        "1 open",
        "1 not yet in the bucket",
    ):
        assert words in message
    assert local(volume) == {pinned, opened, only_copy}

    volume.unpin(pinned)
    volume.reserve(100)
    assert local(volume) == {opened, only_copy}
    volume.close_ref(opened)
    volume.reserve(200)
    assert local(volume) == {only_copy}
    with pytest.raises(ContentError):
        volume.close_ref(opened)  # unbalanced


def test_nothing_is_evicted_when_eviction_cannot_make_enough_room(
    root: Path, bucket: Bucket
) -> None:
    volume = make_volume(root, 300, bucket)
    hashes = fill(volume, bucket, 3)
    volume.pin(hashes[2])
    with pytest.raises(NoSpace):
        volume.reserve(250)  # only 200 evictable
    assert local(volume) == set(hashes)
    with pytest.raises(NoSpace):
        volume.reserve(301)  # more than the whole volume
    assert local(volume) == set(hashes)


def test_open_ref_taken_before_arrival_protects_the_content(root: Path, bucket: Bucket) -> None:
    volume = make_volume(root, 100, bucket)
    h = hash_bytes(b"x" * 100)
    volume.open_ref(h)
    assert commit_bytes(volume, b"x" * 100) == h
    bucket.hashes.add(h)
    with pytest.raises(NoSpace, match="1 open"):
        volume.reserve(1)


def test_staging_write_past_capacity_raises_and_changes_nothing(root: Path, bucket: Bucket) -> None:
    volume = make_volume(root, 150, bucket)
    (kept,) = fill(volume, bucket, 1)
    bucket.hashes.clear()  # the only copy: not evictable
    staging = volume.new_staging()
    staging.write(0, b"a" * 40)
    with pytest.raises(NoSpace):
        staging.write(30, b"b" * 30)  # would grow to 60: 10 over
    with pytest.raises(NoSpace):
        staging.truncate(51)
    assert staging.size == 40 and os.path.getsize(staging.path) == 40
    assert staging.read(0, 100) == b"a" * 40
    staging.write(20, b"c" * 30)  # grows to 50: fits exactly
    assert volume.usage().used == 150
    assert local(volume) == {kept}
    staging.discard()
    assert volume.usage().used == 100


def test_staging_write_evicts_to_make_room(root: Path, bucket: Bucket) -> None:
    volume = make_volume(root, 200, bucket)
    old, new = fill(volume, bucket, 2)
    staging = volume.new_staging()
    staging.write(0, b"z" * 50)
    assert local(volume) == {new}
    assert volume.usage().staging == 50 and volume.usage().used == 150


def test_partials_are_evictable_caches(root: Path, bucket: Bucket) -> None:
    volume = make_volume(root, 100, bucket)  # nothing is in the bucket
    h = hash_bytes(b"p" * 100)
    volume.begin_partial(h, 100)
    volume.write_partial(h, 0, b"p" * 60)
    volume.pin(h)
    with pytest.raises(NoSpace, match="1 pinned"):
        volume.reserve(50)
    volume.unpin(h)
    volume.reserve(50)
    assert volume.size_of(h) is None
    assert list((root / "partial").iterdir()) == []
    assert h not in bucket.asked  # partials need no copy elsewhere


def test_partial_write_reserves_only_new_bytes(root: Path, bucket: Bucket) -> None:
    volume = make_volume(root, 100, bucket)
    data = bytes(range(100))
    h = hash_bytes(data)
    volume.begin_partial(h, 100)
    volume.write_partial(h, 0, data[:80])
    # 60 bytes written but only 20 new: fits (reserving 60 would need the partial itself,
    # which cannot be evicted while it is being written)
    volume.write_partial(h, 40, data[40:100])
    assert volume.usage().partial == 100 and volume.usage().used == 100
    with pytest.raises(NoSpace, match="1 open"):
        volume.open_ref(h)
        volume.reserve(1)


def test_evict_reports_why_it_refuses(root: Path, bucket: Bucket) -> None:
    volume = make_volume(root, None, bucket)
    pinned, opened, only_copy, free = fill(volume, bucket, 4)
    bucket.hashes.discard(only_copy)
    volume.pin(pinned)
    volume.open_ref(opened)
    assert volume.evict(hash_bytes(b"absent")).reason == REFUSED_NOT_LOCAL
    assert volume.evict(pinned).reason == REFUSED_PINNED
    assert volume.evict(opened).reason == REFUSED_OPEN
    assert volume.evict(only_copy).reason == "only copy (not complete in the bucket)"
    assert volume.evict(only_copy).reason == REFUSED_ONLY_COPY
    assert local(volume) == {pinned, opened, only_copy, free}
    result = volume.evict(free)
    assert (result.evicted, result.freed, result.reason) == (True, 100, None)
    assert not (root / "content" / free[:2] / free).exists()
    assert volume.evict(free).reason == REFUSED_NOT_LOCAL


def test_remove_ignores_pins_and_the_bucket_but_not_open_handles(
    root: Path, bucket: Bucket
) -> None:
    volume = make_volume(root, None, bucket)
    pinned, opened = fill(volume, bucket, 2)
    bucket.hashes.clear()
    volume.pin(pinned)
    volume.open_ref(opened)
    assert volume.remove(pinned)
    assert not volume.has(pinned) and not (root / "content" / pinned[:2] / pinned).exists()
    assert not volume.remove(pinned)
    with pytest.raises(ContentError):
        volume.remove(opened)
    assert volume.has(opened)


def test_usage_numbers_are_exact(root: Path, bucket: Bucket) -> None:
    volume = make_volume(root, 10_000, bucket)
    commit_bytes(volume, b"a" * 1000)
    commit_bytes(volume, b"b" * 234)
    h = hash_bytes(b"c" * 500)
    volume.begin_partial(h, 500)
    volume.write_partial(h, 100, b"c" * 150)
    staging = volume.new_staging()
    staging.write(0, b"d" * 77)
    usage = volume.usage()
    assert (usage.capacity, usage.complete, usage.partial, usage.staging) == (10_000, 1234, 150, 77)
    assert (usage.used, usage.count) == (1234 + 150 + 77, 3)
    infos = {info.hash: info for info in volume.instances()}
    assert (infos[h].size, infos[h].present_bytes, infos[h].complete) == (500, 150, False)
    staging.discard()
    assert volume.usage().used == 1384


def test_concurrent_writers_never_exceed_capacity(root: Path, bucket: Bucket) -> None:
    capacity = 64 * 1024
    volume = make_volume(root, capacity, bucket)
    peak = 0
    peak_lock = threading.Lock()

    def writer(n: int) -> tuple[StagingFile, int]:
        nonlocal peak
        staging = volume.new_staging()
        refused = 0
        for offset in range(0, 16 * 1024, 1024):
            try:
                staging.write(offset, os.urandom(1024))
            except NoSpace:
                refused += 1
            with peak_lock:
                peak = max(peak, volume.usage().used)
        return staging, refused

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(writer, range(8)))
    # 8 writers x 16 KiB into 64 KiB: exactly half the 1 KiB writes fit, the rest are refused
    assert peak <= capacity
    assert sum(refused for _, refused in results) == 64
    assert volume.usage().used == volume.usage().staging == capacity
    assert sum(staging.size for staging, _ in results) == capacity
    for staging, _ in results:
        staging.discard()
    assert volume.usage().used == 0
