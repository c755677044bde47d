"""The fetch half: a content of one block goes onto the volume complete, with one fsync, and
its checked bytes reach a reader before that fsync."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from meridian.content import LocalVolume, hash_bytes
from meridian.meta.memory import MemoryMetaStore
from meridian.mover import Mover
from meridian.objects import MemoryObjectStore
from meridian.objects.layout import ContentBucket
from tests.mover.test_verify import Peers, upload

BLOCK = 1024 * 1024


@pytest.fixture
def bucket() -> ContentBucket:
    bucket = ContentBucket(MemoryObjectStore())
    bucket.initialize(block_size=BLOCK)
    return bucket


class Syncs:
    """Counts fsync and fdatasync calls, from any thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._lock = threading.Lock()
        for name in ("fsync", "fdatasync"):
            monkeypatch.setattr(os, name, self._counting(getattr(os, name)))

    def _counting(self, real: Callable[[int], None]) -> Callable[[int], None]:
        def call(fd: int) -> None:
            with self._lock:
                self.count += 1
            real(fd)
        return call


def far(tmp_path: Path, bucket: ContentBucket, peers: Peers | None = None
        ) -> tuple[Mover, LocalVolume, list[str], list[str]]:
    volume = LocalVolume(tmp_path / "far")
    seen: list[str] = []
    maybe: list[str] = []
    extra = {} if peers is None else {"from_peers": peers.fetch}
    mover = Mover(MemoryMetaStore("far"), volume, bucket, read_timeout=5.0, retry_base=0.01,
                  on_in_bucket=seen.append, on_maybe_in_bucket=maybe.append,
                  **extra)  # type: ignore[arg-type]
    return mover, volume, seen, maybe


def test_a_one_block_content_is_installed_complete_with_one_fsync(
        tmp_path: Path, bucket: ContentBucket, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        data = os.urandom(64 * 1024)
        h = await upload(tmp_path, bucket, data)
        mover, volume, seen, maybe = far(tmp_path, bucket)
        syncs = Syncs(monkeypatch)
        await mover.ensure_local(h, len(data), 0, 4096)
        # the partial path took six: data file, .ranges, block, .ranges, sealed file, folder
        assert syncs.count == 1
        assert volume.has(h) and volume.read(h, 0, len(data)) == data
        assert list((volume.root / "partial").iterdir()) == []
        assert seen == [h] and maybe == []  # every block came from the bucket
        await mover.stop()

    asyncio.run(scenario())


def test_a_one_block_content_from_a_peer_is_installed_and_checked_in_the_bucket(
        tmp_path: Path, bucket: ContentBucket, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        data = os.urandom(100_000)
        h = hash_bytes(data)
        wrong = bytes([data[0] ^ 1]) + data[1:]
        peers = Peers({"liar": wrong, "east": data})  # not in the bucket: its upload is not done
        mover, volume, seen, maybe = far(tmp_path, bucket, peers)
        syncs = Syncs(monkeypatch)
        await mover.ensure_local(h, len(data), 0, len(data))
        assert syncs.count == 1 and mover.rejected_blocks == 1 and mover.peer_fetches == 1
        assert volume.has(h) and volume.read(h, 0, len(data)) == data
        assert seen == [] and maybe == [h]  # the site checks the bucket before it may go
        await mover.stop()

    asyncio.run(scenario())


def test_a_reader_gets_checked_bytes_before_the_volume_has_them(
        tmp_path: Path, bucket: ContentBucket) -> None:
    async def scenario() -> None:
        data = os.urandom(100_000)
        wrong = bytes([data[0] ^ 1]) + data[1:]
        h = hash_bytes(data)
        peers = Peers({"liar": wrong, "east": data})  # not in the bucket yet
        mover, volume, _, _ = far(tmp_path, bucket, peers)
        installing = threading.Event()
        real = volume.add_fetched

        def slow_disk(content_hash: str, got: bytes) -> bool:
            installing.wait(10)  # an fsync stalled behind other writes
            return real(content_hash, got)

        volume.add_fetched = slow_disk  # type: ignore[method-assign]
        started = time.monotonic()
        readers = await asyncio.gather(mover.read_checked(h, len(data), 10, 5000),
                                       mover.read_checked(h, len(data), 0, len(data)))
        assert time.monotonic() - started < 5 and not volume.has(h)
        assert readers == [data[10:5000], data]  # the liar's bytes never reach a reader
        installing.set()
        await mover.ensure_local(h, len(data), 0, len(data))
        assert volume.has(h) and volume.read(h, 0, len(data)) == data
        assert await mover.read_checked(h, len(data), 0, 10) is None  # local: read it there
        assert await mover.read_checked("a" * 64, 3 * BLOCK, 0, 10) is None  # not one block
        assert mover.fetcher._checked == {}
        await mover.stop()

    asyncio.run(scenario())
