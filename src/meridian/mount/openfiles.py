"""Per-inode state of files that are open through the mount.

Every handle of one inode shares one ``OpenFile``, so two descriptors writing one file see each
other's bytes, as on a local file system. New bytes go to a staging file on the local volume
(created on the first write, as a copy of the current content unless the file was truncated);
``commit`` makes them the file's content, durably, and is what close (FUSE flush) and fsync
call. A lock serialises writes and commits of one inode: a write can never land in a staging
file that a commit is moving into the content store.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from meridian.content import LocalVolume, StagingFile
from meridian.meta import Inode, MetaStore

log = logging.getLogger(__name__)


@dataclass
class OpenFile:
    ino: int
    handles: int = 0
    staging: StagingFile | None = None
    dirty: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    mtime_ns: int | None = None  # last write, or a time set while open (cp -p, tar)
    base_version: str | None = None  # the content version the staged bytes started from

    async def ensure_staging(self, volume: LocalVolume, inode: Inode, truncate: bool) -> StagingFile:
        """The staging file, created on first use: empty if ``truncate``, else a copy of the
        current content (done in a worker thread; the content must be local)."""
        if self.staging is None:
            base = None if truncate or inode.content is None else inode.content
            self.staging = await asyncio.to_thread(volume.new_staging, base)
            self.base_version = inode.content_version
        return self.staging

    async def commit(self, meta: MetaStore, volume: LocalVolume) -> Inode | None:
        """Make the staged bytes the file's content (durable when this returns).

        Returns the updated inode, or None if there was nothing to commit. Idempotent: a
        second call without new writes commits nothing. The caller holds ``lock``.
        """
        if not self.dirty or self.staging is None:
            return None
        staging = self.staging
        if staging.size == 0:
            staging.discard()
            content, size = None, 0
        else:
            committed = await asyncio.to_thread(volume.commit, staging)
            content, size = committed.hash, committed.size
        self.staging = None
        self.dirty = False
        inode = meta.set_content(self.ino, content, size, mtime_ns=self.mtime_ns,
                                 base=self.base_version)
        self.mtime_ns = None
        self.base_version = None
        log.debug("committed inode %d: %s (%d bytes)", self.ino, content, size)
        return inode

    def discard(self) -> None:
        if self.staging is not None:
            self.staging.discard()
            self.staging = None
        self.dirty = False
        self.mtime_ns = None
        self.base_version = None
