"""An open file's commit: its staged bytes are let go only once the metadata names them."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import pytest

from meridian.content import LocalVolume
from meridian.content.hashing import hash_bytes
from meridian.errors import StoreError
from meridian.meta import ROOT_INO
from meridian.meta.memory import MemoryMetaStore
from meridian.mount.openfiles import OpenFile


class FailingContentCommits(MemoryMetaStore):
    """A store whose next ``failures`` metadata commits of new content fail, as SQLite's
    COMMIT does when the disk under it is full (nothing of the transaction is kept)."""

    failures = 0

    def set_content(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise StoreError("commit to meta.db failed: database or disk is full")
        return super().set_content(*args, **kwargs)


@pytest.fixture
def stores(tmp_path: Path) -> tuple[FailingContentCommits, LocalVolume, int]:
    meta = FailingContentCommits("solo")
    volume = LocalVolume(tmp_path / "vol")
    ino = meta.create(ROOT_INO, "plate.exr", stat.S_IFREG | 0o644, 0, 0).ino
    return meta, volume, ino


async def _write(open_file: OpenFile, meta: MemoryMetaStore, volume: LocalVolume,
                 offset: int, data: bytes) -> None:
    staging = await open_file.ensure_staging(volume, meta.getattr(open_file.ino), truncate=False)
    staging.write(offset, data)
    open_file.dirty = True


def test_a_failed_metadata_commit_keeps_the_bytes_and_the_next_commit_writes_them(
        stores: tuple[FailingContentCommits, LocalVolume, int]) -> None:
    meta, volume, ino = stores
    data = b"frame " * 10_000

    async def run() -> None:
        open_file = OpenFile(ino)
        await _write(open_file, meta, volume, 0, data)
        meta.failures = 1
        with pytest.raises(StoreError):
            await open_file.commit(meta, volume)
        # nothing lost: still dirty, still staged, readable, and the metadata unchanged
        assert open_file.dirty and open_file.staging is not None
        assert open_file.installed is not None and open_file.installed.hash == hash_bytes(data)
        assert open_file.read_staged(volume, 6, 12) == data[6:18]
        assert open_file.read_staged(volume, len(data) - 3, 100) == data[-3:]
        assert meta.getattr(ino).content is None and meta.getattr(ino).size == 0
        inode = await open_file.commit(meta, volume)  # the retry
        assert inode is not None and inode.content == hash_bytes(data) and inode.size == len(data)
        assert not open_file.dirty and open_file.staging is None
        assert [i.hash for i in volume.instances()] == [hash_bytes(data)]  # nothing orphaned
        assert volume.read(inode.content, 0, len(data)) == data
        assert await open_file.commit(meta, volume) is None  # nothing more to commit

    asyncio.run(run())


def test_writes_after_a_failed_commit_go_on_from_the_staged_bytes(
        stores: tuple[FailingContentCommits, LocalVolume, int]) -> None:
    meta, volume, ino = stores

    async def run() -> None:
        open_file = OpenFile(ino)
        await _write(open_file, meta, volume, 0, b"0123456789")
        meta.failures = 2
        for _ in range(2):
            with pytest.raises(StoreError):
                await open_file.commit(meta, volume)
        assert open_file.failed_commits == 2
        await _write(open_file, meta, volume, 8, b"ABCD")  # a write after the failures
        assert open_file.installed is None  # a new staging file, a copy of the staged bytes
        assert open_file.read_staged(volume, 0, 100) == b"01234567ABCD"
        inode = await open_file.commit(meta, volume)
        assert inode is not None and inode.content == hash_bytes(b"01234567ABCD")
        assert open_file.failed_commits == 0
        assert volume.read(inode.content, 0, 100) == b"01234567ABCD"
        assert volume.usage().staging == 0

    asyncio.run(run())


def test_a_failed_commit_of_an_emptied_file_keeps_it_staged_too(
        stores: tuple[FailingContentCommits, LocalVolume, int]) -> None:
    meta, volume, ino = stores

    async def run() -> None:
        first = OpenFile(ino)
        await _write(first, meta, volume, 0, b"old bytes")
        assert (await first.commit(meta, volume)) is not None
        open_file = OpenFile(ino)
        staging = await open_file.ensure_staging(volume, meta.getattr(ino), truncate=True)
        staging.truncate(0)
        open_file.dirty = True
        meta.failures = 1
        with pytest.raises(StoreError):
            await open_file.commit(meta, volume)
        assert open_file.dirty and open_file.staging is staging and staging.size == 0
        assert meta.getattr(ino).size == 9
        inode = await open_file.commit(meta, volume)
        assert inode is not None and inode.content is None and inode.size == 0

    asyncio.run(run())


def test_an_unexpected_error_in_a_handler_is_eio_not_the_end_of_the_mount() -> None:
    import errno
    import sqlite3

    import pyfuse3

    from meridian.mount.fs import fuse_errors

    with pytest.raises(pyfuse3.FUSEError) as exc:
        with fuse_errors("flush"):
            raise sqlite3.OperationalError("database or disk is full")
    assert exc.value.errno == errno.EIO
    with pytest.raises(pyfuse3.FUSEError) as exc:
        with fuse_errors("flush"):
            raise StoreError("commit to meta.db failed")
    assert exc.value.errno == errno.EIO
