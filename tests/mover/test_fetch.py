"""The fetch half: a content of one block goes onto the volume complete, with one fsync;
a writer's new content is asked of the peers first when the site says so."""

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


class GetCounter(MemoryObjectStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        self.gets += 1
        return super().get(key, start, end)


@pytest.mark.parametrize("writer_first", [True, False])
def test_the_site_says_which_content_is_asked_of_the_peers_first(
        tmp_path: Path, writer_first: bool) -> None:
    async def scenario() -> None:
        store = GetCounter()
        bucket = ContentBucket(store)
        bucket.initialize(block_size=BLOCK)
        data = os.urandom(10_000)
        h = await upload(tmp_path, bucket, data)  # in the bucket either way
        peers = Peers({"east": data})
        mover = Mover(MemoryMetaStore("far"), LocalVolume(tmp_path / "far"), bucket,
                      read_timeout=5.0, from_peers=peers.fetch,
                      peers_first=lambda asked: asked == h and writer_first)
        store.gets = 0
        await mover.ensure_local(h, len(data), 0, len(data))
        assert mover.volume.read(h, 0, len(data)) == data
        if writer_first:
            assert (store.gets, peers.asked, mover.peer_fetches) == (0, ["east"], 1)
        else:
            assert (store.gets, peers.asked, mover.peer_fetches) == (1, [], 0)
        await mover.stop()

    asyncio.run(scenario())


def test_no_peer_having_it_yet_sends_the_read_to_the_bucket_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        bucket = ContentBucket(MemoryObjectStore())
        bucket.initialize(block_size=BLOCK)
        data = os.urandom(10_000)
        h = await upload(tmp_path, bucket, data)
        peers = Peers({"east": None})  # the writer evicted its copy, say
        mover = Mover(MemoryMetaStore("far"), LocalVolume(tmp_path / "far"), bucket,
                      read_timeout=5.0, from_peers=peers.fetch, peers_first=lambda _: True)
        started = time.monotonic()
        await mover.ensure_local(h, len(data), 0, len(data))
        assert time.monotonic() - started < 0.2  # no pause between the peers and the bucket
        assert peers.asked == ["east"] and mover.peer_fetches == 0
        await mover.stop()

    asyncio.run(scenario())


def test_a_writer_gone_silent_holds_a_peers_first_read_back_a_little_at_most(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        bucket = ContentBucket(MemoryObjectStore())
        bucket.initialize(block_size=BLOCK)
        data = os.urandom(10_000)
        h = await upload(tmp_path, bucket, data)
        monkeypatch.setattr("meridian.mover.fetch.PEERS_FIRST_WAIT", 0.1)
        asked: list[str] = []

        async def silent(h: str, start: int, length: int, accept: object) -> bytes | None:
            asked.append(h)
            await asyncio.sleep(30)  # a partition: no answer, no error
            return None

        mover = Mover(MemoryMetaStore("far"), LocalVolume(tmp_path / "far"), bucket,
                      read_timeout=5.0, from_peers=silent, peers_first=lambda _: True)
        started = time.monotonic()
        await mover.ensure_local(h, len(data), 0, len(data))
        assert time.monotonic() - started < 1.0 and asked == [h]
        assert mover.volume.read(h, 0, len(data)) == data and mover.peer_fetches == 0
        await mover.stop()

    asyncio.run(scenario())
