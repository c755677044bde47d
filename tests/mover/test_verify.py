"""Every fetched block is checked against its own hash before anything uses it.

Real stores (memory meta, volumes on disk, an in-memory bucket); peers are functions that serve
bytes as a peer's API would, some of them wrong.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import blake3
import pytest

from meridian.content import LocalVolume
from meridian.errors import BucketUnreachable, ContentUnavailable
from meridian.meta.interface import ROOT_INO
from meridian.meta.memory import MemoryMetaStore
from meridian.mover import Mover, fetch
from meridian.objects import MemoryObjectStore
from meridian.objects.layout import FORMAT_KEY, ContentBucket
from tests.mover.test_mover import commit_file

BLOCK = 64 * 1024
Accept = Callable[[str, bytes], Awaitable[bool]]


def digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def blocks_of(data: bytes) -> list[str]:
    return [digest(data[i:i + BLOCK]) for i in range(0, len(data), BLOCK)]


@pytest.fixture
def bucket() -> ContentBucket:
    bucket = ContentBucket(MemoryObjectStore())
    bucket.initialize(block_size=BLOCK)
    return bucket


class Peers:
    """Peers as the site's replication service offers them: each serves a content's bytes
    (``None``: it has none) and, if it can, the content's block hashes."""

    def __init__(self, served: dict[str, bytes | None], hashes: list[str] | None = None) -> None:
        self.served = served
        self.hashes = hashes
        self.asked: list[str] = []

    async def fetch(self, h: str, start: int, length: int, accept: Accept) -> bytes | None:
        for name, data in self.served.items():
            self.asked.append(name)
            if data is not None and await accept(name, data[start:start + length]):
                return data[start:start + length]
        return None

    async def block_hashes(self, h: str, size: int) -> list[str] | None:
        return self.hashes


def far_mover(tmp_path: Path, bucket: ContentBucket, peers: Peers | None = None,
              **kw: object) -> tuple[Mover, LocalVolume]:
    volume = LocalVolume(tmp_path / "far")
    options: dict[str, object] = {"retry_base": 0.01, "retry_max": 0.05, "read_timeout": 5.0,
                                  "readahead_blocks": 0}
    options.update(kw)
    if peers is not None:
        options.update(from_peers=peers.fetch, hashes_from_peers=peers.block_hashes)
    mover = Mover(MemoryMetaStore("far"), volume, bucket, **options)  # type: ignore[arg-type]
    return mover, volume


def learnt_in_bucket(mover: Mover, h: str, size: int) -> None:
    """What a far site holds once the writer's instance entry has arrived: a file naming the
    content, recorded as in the bucket (so the bucket is the first source asked)."""
    inode = mover.meta.create(ROOT_INO, f"learnt-{h[:8]}", stat.S_IFREG | 0o644, 0, 0)
    mover.meta.set_content(inode.ino, h, size)
    mover.meta.mark_in_bucket(h)


async def upload(tmp_path: Path, bucket: ContentBucket, data: bytes) -> str:
    meta = MemoryMetaStore("near")
    volume = LocalVolume(tmp_path / "near")
    h = commit_file(meta, volume, "a", data)
    mover = Mover(meta, volume, bucket, retry_base=0.01)
    mover.start()
    assert await mover.drain(timeout=10)
    await mover.stop()
    return h


def test_an_upload_lists_every_block_hash_in_the_manifest(tmp_path: Path,
                                                          bucket: ContentBucket) -> None:
    data = os.urandom(3 * BLOCK + 5)
    h = asyncio.run(upload(tmp_path, bucket, data))
    doc = json.loads(bucket.store.get(bucket.manifest_key(h)))
    assert doc["block_hashes"] == blocks_of(data)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
@pytest.mark.parametrize("size", [BLOCK // 2, 3 * BLOCK + 7])
def test_a_damaged_bucket_block_is_an_error_never_wrong_bytes(
        tmp_path: Path, bucket: ContentBucket, caplog: pytest.LogCaptureFixture,
        damage: str, size: int) -> None:
    data = os.urandom(size)
    index = bucket.block_count(size) - 1  # the last block
    start = index * BLOCK

    async def scenario() -> str:
        h = await upload(tmp_path, bucket, data)
        key = bucket.block_key(h, index)
        raw = bytearray(bucket.store.get(key))
        if damage == "flip":
            raw[len(raw) // 2] ^= 0x01
        else:
            del raw[-1]
        bucket.store.put(key, bytes(raw))
        mover, volume = far_mover(tmp_path, bucket)
        if index:  # the blocks before it are fine
            await mover.ensure_local(h, size, 0, start)
            assert volume.read(h, 0, start) == data[:start]
        began = time.monotonic()
        with pytest.raises(ContentUnavailable, match=f"block {index}"):
            await mover.ensure_local(h, size, start, size)
        assert time.monotonic() - began < 4  # fails at once, not after read_timeout
        assert volume.missing(h, start, size) == [(start, size)]  # nothing of it written
        assert not volume.has(h)
        await mover.stop()
        return h

    h = asyncio.run(scenario())
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(h in m and f"block {index}" in m and "the bucket" in m for m in failures), failures


def test_a_block_the_bucket_serves_wrong_comes_from_a_peer(tmp_path: Path,
                                                           bucket: ContentBucket) -> None:
    data = os.urandom(2 * BLOCK + 1)

    async def scenario() -> None:
        h = await upload(tmp_path, bucket, data)
        raw = bytearray(bucket.store.get(bucket.block_key(h, 1)))
        raw[0] ^= 0xFF
        bucket.store.put(bucket.block_key(h, 1), bytes(raw))
        wrong = bytearray(data)
        wrong[BLOCK + 5] ^= 0x10
        peers = Peers({"liar": bytes(wrong), "empty": None, "good": data})
        mover, volume = far_mover(tmp_path, bucket, peers)
        learnt_in_bucket(mover, h, len(data))
        await mover.ensure_local(h, len(data), 0, len(data))
        assert volume.has(h) and volume.read(h, 0, len(data)) == data
        assert peers.asked == ["liar", "empty", "good"] and mover.rejected_blocks == 2
        await mover.stop()

    asyncio.run(scenario())


def test_content_not_known_in_the_bucket_is_asked_of_peers_first(
        tmp_path: Path, bucket: ContentBucket) -> None:
    """A far site that has not learnt of the upload (the usual case for a file just written
    elsewhere) asks the writer first, and so spares the bucket a GET; once it has learnt,
    the bucket comes first again."""
    data = os.urandom(2 * BLOCK)

    async def scenario() -> None:
        h = await upload(tmp_path, bucket, data)
        gets = 0
        get_block = bucket.get_block

        def counting_get_block(hash: str, index: int) -> bytes:
            nonlocal gets
            gets += 1
            return get_block(hash, index)

        bucket.get_block = counting_get_block  # type: ignore[method-assign]
        peers = Peers({"writer": data}, hashes=blocks_of(data))
        mover, volume = far_mover(tmp_path / "a", bucket, peers)
        await mover.ensure_local(h, len(data), 0, len(data))
        assert volume.read(h, 0, len(data)) == data
        assert gets == 0 and peers.asked == ["writer", "writer"]
        await mover.stop()

        peers = Peers({"writer": data}, hashes=blocks_of(data))
        mover, volume = far_mover(tmp_path / "b", bucket, peers)
        learnt_in_bucket(mover, h, len(data))
        await mover.ensure_local(h, len(data), 0, len(data))
        assert volume.read(h, 0, len(data)) == data
        assert gets == 2 and peers.asked == []
        await mover.stop()

    asyncio.run(scenario())


def test_a_peer_that_does_not_answer_holds_a_read_up_only_briefly(
        tmp_path: Path, bucket: ContentBucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peers asked first (content not known in the bucket) that hang: the bucket is asked
    after ``PEERS_FIRST_TIMEOUT``, not after the read's own timeout."""
    monkeypatch.setattr(fetch, "PEERS_FIRST_TIMEOUT", 0.2)
    data = os.urandom(BLOCK)

    class Hanging(Peers):
        async def fetch(self, h: str, start: int, length: int, accept: Accept) -> bytes | None:
            self.asked.append("hanging")
            await asyncio.sleep(3600)
            return None

    async def scenario() -> float:
        h = await upload(tmp_path, bucket, data)
        mover, volume = far_mover(tmp_path, bucket, Hanging({}), read_timeout=30.0)
        started = time.monotonic()
        await mover.ensure_local(h, len(data), 0, len(data))
        took = time.monotonic() - started
        assert volume.read(h, 0, len(data)) == data
        await mover.stop()
        return took

    assert asyncio.run(scenario()) < 5.0


def test_content_not_in_the_bucket_yet_is_checked_against_the_peers_block_hashes(
        tmp_path: Path, bucket: ContentBucket, caplog: pytest.LogCaptureFixture) -> None:
    data = os.urandom(3 * BLOCK)
    h = digest(data)
    wrong = bytearray(data)
    wrong[2 * BLOCK + 100] ^= 0x01

    async def scenario() -> None:
        only_liar = Peers({"north": bytes(wrong)}, hashes=blocks_of(data))
        mover, volume = far_mover(tmp_path / "a", bucket, only_liar)
        await mover.ensure_local(h, len(data), 0, 2 * BLOCK)  # blocks 0 and 1 are right
        assert volume.read(h, 0, 2 * BLOCK) == data[:2 * BLOCK]
        with pytest.raises(ContentUnavailable, match="block 2.*peer north"):
            await mover.ensure_local(h, len(data), 2 * BLOCK, 3 * BLOCK)
        assert volume.missing(h, 0, len(data)) == [(2 * BLOCK, 3 * BLOCK)]
        await mover.stop()

        two = Peers({"north": bytes(wrong), "west": data}, hashes=blocks_of(data))
        mover, volume = far_mover(tmp_path / "b", bucket, two)
        await mover.ensure_local(h, len(data), 0, len(data))
        assert volume.has(h) and volume.read(h, 0, len(data)) == data
        await mover.stop()

    asyncio.run(scenario())
    assert any(h in r.getMessage() and "block 2 from peer north" in r.getMessage()
               for r in caplog.records if r.levelno == logging.ERROR)


def test_a_peer_list_that_does_not_fit_is_not_used(tmp_path: Path, bucket: ContentBucket,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    data = os.urandom(2 * BLOCK)
    h = digest(data)

    async def scenario() -> None:
        peers = Peers({"north": data}, hashes=blocks_of(data)[:1])
        mover, volume = far_mover(tmp_path, bucket, peers, read_timeout=0.5)
        with pytest.raises(ContentUnavailable, match="in time"):
            await mover.ensure_local(h, len(data), 0, 10)
        assert volume.size_of(h) is None
        await mover.stop()

    asyncio.run(scenario())
    assert any("do not fit its 2 blocks" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("version", [1, 2])
def test_content_uploaded_without_block_hashes_is_checked_whole_first(
        tmp_path: Path, version: int) -> None:
    store = MemoryObjectStore()
    store.put(FORMAT_KEY, json.dumps({"format": "meridian-bucket", "version": version,
                                      "block_size": BLOCK, "hash": "blake3"}).encode())
    old = ContentBucket(store)
    good, bad = os.urandom(3 * BLOCK), os.urandom(2 * BLOCK + 9)
    for data in (good, bad):  # as an older Meridian uploaded them
        for i in range(old.block_count(len(data))):
            old.put_block(digest(data), i, data[i * BLOCK:(i + 1) * BLOCK])
        old.put_manifest(digest(data), len(data))
    raw = bytearray(store.get(old.block_key(digest(bad), 2)))
    raw[3] ^= 0x04
    store.put(old.block_key(digest(bad), 2), bytes(raw))

    async def scenario() -> None:
        mover, volume = far_mover(tmp_path, old)
        await mover.ensure_local(digest(good), len(good), BLOCK, BLOCK + 10)
        assert volume.read(digest(good), BLOCK, 10) == good[BLOCK:BLOCK + 10]
        with pytest.raises(ContentUnavailable, match="corrupt in the bucket"):
            await mover.ensure_local(digest(bad), len(bad), 0, 10)  # block 0 is fine, but
        assert volume.size_of(digest(bad)) is None  # the whole is not: none of it is used
        await mover.stop()

    asyncio.run(scenario())


def test_a_site_vouches_only_for_blocks_of_a_checked_instance(tmp_path: Path,
                                                              bucket: ContentBucket) -> None:
    data = os.urandom(2 * BLOCK + 3)

    async def scenario() -> None:
        meta = MemoryMetaStore("near")
        volume = LocalVolume(tmp_path / "near")
        h = commit_file(meta, volume, "a", data)
        mover = Mover(meta, volume, bucket)
        assert await mover.block_hashes.here(h) == tuple(blocks_of(data))
        assert await mover.block_hashes.here(digest(b"not here")) is None
        await mover.stop()

        other = os.urandom(2 * BLOCK)
        h2 = commit_file(meta, volume, "b", other)
        path = volume.path_of(h2)
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:  # the disk under the instance rots
            f.seek(BLOCK + 1)
            f.write(bytes([other[BLOCK + 1] ^ 0x01]))
        fresh = Mover(meta, volume, bucket)
        assert await fresh.block_hashes.here(h2) is None
        await fresh.stop()

    asyncio.run(scenario())


class FlakyManifests(MemoryObjectStore):
    """A bucket whose first ``failures`` manifest GETs do not get through."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        if key.endswith("manifest.json") and self.failures:
            self.failures -= 1
            raise BucketUnreachable("injected: connection refused")
        return super().get(key, start, end)


def test_a_bucket_that_does_not_answer_for_a_moment_is_asked_again(tmp_path: Path) -> None:
    flaky = ContentBucket(FlakyManifests(failures=0))
    flaky.initialize(block_size=BLOCK)
    data = os.urandom(2 * BLOCK + 1)

    async def scenario() -> None:
        h = await upload(tmp_path, flaky, data)
        flaky.store.failures = 2  # type: ignore[attr-defined]
        mover, volume = far_mover(tmp_path, flaky)  # no peers: the bucket is all there is
        await mover.ensure_local(h, len(data), 0, len(data))
        assert volume.read(h, 0, len(data)) == data
        assert flaky.store.failures == 0  # type: ignore[attr-defined]
        await mover.stop()

    asyncio.run(scenario())


def test_who_is_told_what_of_a_fetch_from_the_bucket(tmp_path: Path,
                                                     bucket: ContentBucket) -> None:
    """A partial instance from the bucket asks for a check (it holds its first block by
    then); a fetch whose every block came from the bucket needs none: it is evictable."""
    data = os.urandom(3 * BLOCK)

    async def scenario() -> None:
        h = await upload(tmp_path, bucket, data)
        seen: set[str] = set()
        asked: list[tuple[str, int | None]] = []
        volume = LocalVolume(tmp_path / "far")
        mover = Mover(MemoryMetaStore("far"), volume, bucket, readahead_blocks=0,
                      on_in_bucket=seen.add,
                      on_maybe_in_bucket=lambda x: asked.append((x, volume.size_of(x))))
        await mover.ensure_local(h, len(data), 0, 10)
        assert asked == [(h, len(data))] and not seen
        await mover.ensure_local(h, len(data), 0, len(data))
        assert volume.has(h) and seen == {h} and len(asked) == 1
        await mover.stop()

    asyncio.run(scenario())
