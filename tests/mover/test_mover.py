"""The mover over real stores (memory meta, a volume on disk, an in-memory bucket)."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from pathlib import Path

import pytest

from meridian.content import LocalVolume
from meridian.errors import BucketUnreachable, ContentUnavailable
from meridian.meta import ROOT_INO, InstanceOp, MetaStore
from meridian.meta.memory import MemoryMetaStore
from meridian.meta.sqlite import SqliteMetaStore
from meridian.mover import Mover
from meridian.objects import MemoryObjectStore
from meridian.objects.layout import ContentBucket

BLOCK = 1024 * 1024


class CountingStore(MemoryObjectStore):
    """A memory bucket that counts GETs and can fail or stall on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []
        self.fail_puts = 0
        self.stall = threading.Event()
        self.stall.set()
        self._count_lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        with self._count_lock:
            if self.fail_puts:
                self.fail_puts -= 1
                raise BucketUnreachable("injected: connection refused")
        super().put(key, data)

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        self.stall.wait(10)
        with self._count_lock:
            self.gets.append(key)
        return super().get(key, start, end)


def commit_file(meta: MetaStore, volume: LocalVolume, name: str, data: bytes, priority: int = 0) -> str:
    inode = meta.create(ROOT_INO, name, stat.S_IFREG | 0o644, 0, 0)
    staging = volume.new_staging()
    staging.write(0, data)
    committed = volume.commit(staging)
    meta.set_content(inode.ino, committed.hash, committed.size, upload_priority=priority)
    return committed.hash


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def bucket(store: CountingStore) -> ContentBucket:
    bucket = ContentBucket(store)
    bucket.initialize(block_size=BLOCK)
    return bucket


def make_mover(meta: MetaStore, volume: LocalVolume, bucket: ContentBucket, **kw: object) -> Mover:
    options: dict[str, object] = {"upload_workers": 2, "retry_base": 0.05, "retry_max": 0.2}
    options.update(kw)
    return Mover(meta, volume, bucket, **options)  # type: ignore[arg-type]


async def uploaded(tmp_path: Path, bucket: ContentBucket, data: bytes) -> str:
    """Commit ``data`` at a site 'east' and upload it; returns its hash."""
    meta = MemoryMetaStore("east")
    volume = LocalVolume(tmp_path / "east")
    h = commit_file(meta, volume, "a", data)
    mover = make_mover(meta, volume, bucket)
    mover.start()
    assert await mover.drain(timeout=10)
    await mover.stop()
    return h


def test_uploads_blocks_then_manifest_and_marks_in_bucket(tmp_path: Path, bucket: ContentBucket) -> None:
    async def scenario() -> None:
        meta = MemoryMetaStore("east")
        volume = LocalVolume(tmp_path / "vol")
        data = os.urandom(3 * BLOCK + 5)
        h = commit_file(meta, volume, "a", data)
        mover = make_mover(meta, volume, bucket)
        mover.start()
        assert await mover.drain(timeout=10)
        await mover.stop()
        manifest = bucket.manifest(h)
        assert manifest is not None and manifest.size == len(data) and manifest.blocks == 4
        assert b"".join(bucket.get_block(h, i) for i in range(4)) == data
        record = meta.content(h)
        assert record is not None and record.in_bucket
        assert meta.journal()[-1].op == InstanceOp(h, len(data))

    asyncio.run(scenario())


def test_failed_uploads_are_retried_with_backoff(tmp_path: Path, store: CountingStore,
                                                 bucket: ContentBucket) -> None:
    async def scenario() -> None:
        meta = MemoryMetaStore("east")
        volume = LocalVolume(tmp_path / "vol")
        h = commit_file(meta, volume, "a", b"hello")
        store.fail_puts = 3
        mover = make_mover(meta, volume, bucket, upload_workers=1)
        mover.start()
        assert await mover.drain(timeout=10)
        await mover.stop()
        assert mover.uploads_failed == 3 and mover.uploads_done == 1
        assert bucket.is_complete(h)

    asyncio.run(scenario())


def test_queue_survives_a_restart(tmp_path: Path, bucket: ContentBucket) -> None:
    db = tmp_path / "meta.db"
    meta = SqliteMetaStore(db, "east")
    volume = LocalVolume(tmp_path / "vol")
    high = commit_file(meta, volume, "high", b"urgent", priority=9)
    low = commit_file(meta, volume, "low", b"later", priority=0)
    meta.close()  # the site stops before the mover ran

    async def scenario() -> None:
        again = SqliteMetaStore(db, "east")
        assert [u.hash for u in again.pending_uploads()] == [high, low]
        mover = make_mover(again, LocalVolume(tmp_path / "vol"), bucket)
        mover.start()
        assert await mover.drain(timeout=10)
        await mover.stop()
        assert bucket.is_complete(high) and bucket.is_complete(low)
        again.close()

    asyncio.run(scenario())


def test_fetch_gets_each_block_once_for_concurrent_readers(tmp_path: Path, store: CountingStore,
                                                           bucket: ContentBucket) -> None:
    async def scenario() -> None:
        data = os.urandom(4 * BLOCK)
        h = await uploaded(tmp_path, bucket, data)

        far = LocalVolume(tmp_path / "west")
        fetcher = make_mover(MemoryMetaStore("west"), far, bucket, readahead_blocks=0)
        store.gets.clear()
        await fetcher.ensure_local(h, len(data), BLOCK + 10, BLOCK + 20)  # one block only
        # the manifest (its block hashes) once, and the block (the two GETs overlap)
        assert sorted(store.gets) == sorted([bucket.manifest_key(h), bucket.block_key(h, 1)])
        assert not far.has(h)
        assert far.read(h, BLOCK + 10, 10) == data[BLOCK + 10: BLOCK + 20]
        await asyncio.gather(*(fetcher.ensure_local(h, len(data), 0, len(data)) for _ in range(5)))
        assert len(store.gets) == 5  # blocks 0, 2, 3 once each, block 1 and manifest not again
        assert far.has(h) and far.read(h, 0, len(data)) == data
        await fetcher.stop()

    asyncio.run(scenario())


def test_fetch_times_out_with_content_unavailable(tmp_path: Path, store: CountingStore,
                                                  bucket: ContentBucket) -> None:
    async def scenario() -> None:
        h = await uploaded(tmp_path, bucket, b"x" * 100)
        far = make_mover(MemoryMetaStore("west"), LocalVolume(tmp_path / "west"), bucket,
                         read_timeout=0.2)
        store.stall.clear()
        try:
            with pytest.raises(ContentUnavailable, match="not fetched in time"):
                await far.ensure_local(h, 100, 0, 100)
        finally:
            store.stall.set()
        with pytest.raises(ContentUnavailable, match="not in the bucket"):
            await far.ensure_local("f" * 64, 100, 0, 100)
        await far.stop()

    asyncio.run(scenario())


def test_reads_going_forward_fetch_blocks_ahead(tmp_path: Path, store: CountingStore,
                                               bucket: ContentBucket) -> None:
    async def scenario() -> None:
        data = os.urandom(6 * BLOCK)
        h = await uploaded(tmp_path, bucket, data)
        far = LocalVolume(tmp_path / "west")
        fetcher = make_mover(MemoryMetaStore("west"), far, bucket, readahead_blocks=2)
        await fetcher.ensure_local(h, len(data), 0, 10)  # block 0, and 1-2 ahead
        for _ in range(100):
            if not far.missing(h, 0, 3 * BLOCK):
                break
            await asyncio.sleep(0.02)
        assert not far.missing(h, 0, 3 * BLOCK) and far.missing(h, 3 * BLOCK, 6 * BLOCK)
        await fetcher.prefetch(h, len(data))  # the whole content, in the background
        for _ in range(100):
            if far.has(h):
                break
            await asyncio.sleep(0.02)
        assert far.has(h) and far.read(h, 0, len(data)) == data
        await fetcher.stop()

    asyncio.run(scenario())


def test_a_fetch_into_a_full_volume_waits_for_uploads_to_make_room(
        tmp_path: Path, store: CountingStore, bucket: ContentBucket) -> None:
    async def scenario() -> None:
        wanted = await uploaded(tmp_path, bucket, os.urandom(BLOCK))
        meta = MemoryMetaStore("west")
        in_bucket: set[str] = set()
        volume = LocalVolume(tmp_path / "west", capacity=BLOCK + BLOCK // 2,
                             is_evictable=in_bucket.__contains__)
        local = commit_file(meta, volume, "local-only", os.urandom(BLOCK))  # fills the volume
        store.fail_puts = 2  # its upload fails twice before it gets through
        mover = make_mover(meta, volume, bucket, upload_workers=1, space_wait=10.0,
                           on_in_bucket=in_bucket.add)
        mover.start()
        await mover.ensure_local(wanted, BLOCK, 0, BLOCK)  # waits, then evicts `local`
        assert volume.has(wanted) and not volume.has(local)
        assert bucket.is_complete(local)
        await mover.stop()

    asyncio.run(scenario())
