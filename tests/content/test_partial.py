"""Partial instances: blocks in any order from many threads, ranges on disk, verification."""

from __future__ import annotations

import json
import os
import random
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from meridian.content import LocalVolume, RangeSet, hash_bytes
from meridian.errors import ContentError

BLOCK = 64 * 1024


def blocks_of(data: bytes) -> list[tuple[int, bytes]]:
    return [(offset, data[offset : offset + BLOCK]) for offset in range(0, len(data), BLOCK)]


def ranges_file(volume: LocalVolume, h: str) -> dict[str, object]:
    record: dict[str, object] = json.loads((volume.root / "partial" / f"{h}.ranges").read_text())
    return record


def test_out_of_order_blocks_from_many_threads(volume: LocalVolume) -> None:
    data = os.urandom(40 * BLOCK + 123)
    h = hash_bytes(data)
    volume.begin_partial(h, len(data))
    blocks = blocks_of(data)
    random.Random(7).shuffle(blocks)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda block: volume.write_partial(h, block[0], block[1]), blocks))
    assert volume.present(h) == RangeSet.full(len(data))
    assert ranges_file(volume, h) == {"size": len(data), "ranges": [[0, len(data)]]}
    assert volume.usage().partial == len(data)
    assert volume.finish_partial(h)
    assert volume.has(h)
    assert volume.read(h, 0, len(data)) == data
    assert stat.S_IMODE(volume.path_of(h).stat().st_mode) == 0o400
    assert list((volume.root / "partial").iterdir()) == []
    usage = volume.usage()
    assert (usage.partial, usage.complete, usage.count) == (0, len(data), 1)
    assert volume.finish_partial(h)  # idempotent


def test_missing_present_and_reads_of_a_partial(volume: LocalVolume) -> None:
    data = os.urandom(10_000)
    h = hash_bytes(data)
    volume.begin_partial(h, len(data))
    volume.begin_partial(h, len(data))  # idempotent
    assert volume.size_of(h) == len(data) and not volume.has(h)
    assert (volume.root / "partial" / f"{h}.data").stat().st_size == len(data)  # sparse, full size
    assert volume.missing(h, 0, 20_000) == [(0, 10_000)]
    volume.write_partial(h, 2000, data[2000:3000])
    volume.write_partial(h, 5000, data[5000:6000])
    volume.write_partial(h, 2500, data[2500:3500])  # overlaps what is there
    assert volume.present(h) == RangeSet([(2000, 3500), (5000, 6000)])
    assert volume.missing(h, 0, 20_000) == [(0, 2000), (3500, 5000), (6000, 10_000)]
    assert volume.missing(h, 2100, 3400) == []
    assert ranges_file(volume, h)["ranges"] == [[2000, 3500], [5000, 6000]]
    assert volume.usage().partial == 2500
    assert volume.read(h, 2100, 1000) == data[2100:3100]
    with pytest.raises(ContentError):
        volume.read(h, 3000, 1000)  # [3500, 4000) is not here
    with pytest.raises(ContentError):
        volume.read(h, 0, 1)
    assert not volume.finish_partial(h)
    with pytest.raises(ContentError):
        volume.begin_partial(h, 99)  # another size for the same hash


def test_a_corrupt_partial_is_discarded(volume: LocalVolume) -> None:
    data = os.urandom(3 * BLOCK)
    h = hash_bytes(data)
    volume.begin_partial(h, len(data))
    bad = bytearray(data)
    bad[BLOCK + 5] ^= 0xFF
    for offset, block in blocks_of(bytes(bad)):
        volume.write_partial(h, offset, block)
    with pytest.raises(ContentError, match="corrupt"):
        volume.finish_partial(h)
    assert not volume.has(h) and volume.size_of(h) is None
    assert list((volume.root / "partial").iterdir()) == []
    assert volume.usage().used == 0
    with pytest.raises(ContentError):
        volume.read(h, 0, 1)
    # fetching again from scratch works
    volume.begin_partial(h, len(data))
    for offset, block in blocks_of(data):
        volume.write_partial(h, offset, block)
    assert volume.finish_partial(h)


def test_refused_partial_writes(volume: LocalVolume) -> None:
    h = hash_bytes(b"0123456789")
    with pytest.raises(ContentError):
        volume.write_partial(h, 0, b"0")  # no begin_partial
    with pytest.raises(ContentError):
        volume.finish_partial(h)
    volume.begin_partial(h, 10)
    with pytest.raises(ContentError):
        volume.write_partial(h, 8, b"89X")  # past the end
    assert volume.present(h) == RangeSet()
    assert volume.usage().used == 0
    volume.write_partial(h, 0, b"0123456789")
    assert volume.finish_partial(h)
    volume.write_partial(h, 0, b"0123")  # late duplicate block: harmless no-op
    volume.begin_partial(h, 10)  # already complete: no-op
    assert volume.read(h, 0, 10) == b"0123456789"
    assert list((volume.root / "partial").iterdir()) == []


def test_commit_replaces_a_partial_of_the_same_content(volume: LocalVolume) -> None:
    data = b"written here while being fetched"
    h = hash_bytes(data)
    volume.begin_partial(h, len(data))
    volume.write_partial(h, 0, data[:10])
    staging = volume.new_staging()
    staging.write(0, data)
    assert volume.commit(staging).hash == h
    assert volume.has(h)
    assert list((volume.root / "partial").iterdir()) == []
    volume.write_partial(h, 10, data[10:])  # the fetch finishing late changes nothing
    assert volume.finish_partial(h)
    usage = volume.usage()
    assert (usage.partial, usage.complete, usage.count) == (0, len(data), 1)


def test_empty_partial_finishes(volume: LocalVolume) -> None:
    h = hash_bytes(b"")
    volume.begin_partial(h, 0)
    assert volume.finish_partial(h)
    assert volume.read(h, 0, 5) == b""


def test_partial_progress_survives_restart(root: Path) -> None:
    data = os.urandom(6 * BLOCK)
    h = hash_bytes(data)
    volume = LocalVolume(root)
    volume.begin_partial(h, len(data))
    blocks = blocks_of(data)
    for offset, block in blocks[::2]:
        volume.write_partial(h, offset, block)
    reopened = LocalVolume(root)
    assert reopened.present(h) == RangeSet((o, o + BLOCK) for o, _ in blocks[::2])
    assert reopened.missing(h, 0, len(data)) == [(o, o + BLOCK) for o, _ in blocks[1::2]]
    for offset, block in blocks[1::2]:
        reopened.write_partial(h, offset, block)
    assert reopened.finish_partial(h)
    assert reopened.read(h, 0, len(data)) == data


def test_readers_see_right_bytes_while_blocks_arrive_and_the_instance_finishes(
    volume: LocalVolume,
) -> None:
    data = os.urandom(32 * BLOCK)
    h = hash_bytes(data)
    volume.begin_partial(h, len(data))
    blocks = blocks_of(data)
    volume.write_partial(h, 0, blocks[0][1])
    done = threading.Event()
    reads = []

    def reader() -> None:
        while not done.is_set():
            reads.append(volume.read(h, 100, BLOCK - 100) == data[100:BLOCK])
        reads.append(volume.read(h, 0, len(data)) == data)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        rest = blocks[1:]
        random.Random(3).shuffle(rest)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda block: volume.write_partial(h, block[0], block[1]), rest))
        assert volume.finish_partial(h)
        for _ in range(20):  # let the readers read the finished instance too
            volume.read(h, 0, 1)
    finally:
        done.set()
        for thread in readers:
            thread.join()
    assert reads and all(reads)
    assert volume.has(h)
