"""Per-inode state of files that are open through the mount.

Every handle of one inode shares one ``OpenFile``, so two descriptors writing one file see each
other's bytes, as on a local file system. New bytes go to a staging file on the local volume
(created on the first write, as a copy of the current content unless the file was truncated);
``commit`` makes them the file's content, durably, and is what close (FUSE flush) and fsync
call. A lock serialises writes and commits of one inode: a write can never land in a staging
file that a commit is moving into the content store.

A commit has two steps: the bytes into the content store, then the metadata that names them.
The staged bytes are let go only once the second step is done. When it fails (the metadata
disk is full, say), the file stays dirty, its bytes stay where the first step put them
(``installed``) and are what reads of the file return, and the next commit tries the
metadata step again; a write after such a failure goes on from those bytes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from meridian.content import CommittedContent, LocalVolume, StagingFile
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
    failed_commits: int = 0  # metadata steps failed in a row (retries back off on it)

    @property
    def installed(self) -> CommittedContent | None:
        """Staged bytes already in the content store whose metadata commit failed, or None."""
        return self.staging.committed if self.staging is not None else None

    async def ensure_staging(self, volume: LocalVolume, inode: Inode, truncate: bool) -> StagingFile:
        """A writable staging file, created on first use: empty if ``truncate``, else a copy
        of the current content (a copy in a worker thread; the content must be local). After a
        failed metadata commit the copy is of the installed bytes, which are newer."""
        installed = self.installed
        if installed is not None:
            base = None if truncate else installed.hash
            self.staging = await asyncio.to_thread(volume.new_staging, base)
        elif self.staging is None:
            base = None if truncate or inode.content is None else inode.content
            if base is None:  # an empty file is one open(2): cheaper than a thread hand-off
                self.staging = volume.new_staging(None)
            else:
                self.staging = await asyncio.to_thread(volume.new_staging, base)
            self.base_version = inode.content_version
        return self.staging

    def read_staged(self, volume: LocalVolume, offset: int, size: int) -> bytes:
        """Up to ``size`` staged bytes at ``offset`` (the caller checked ``staging``)."""
        assert self.staging is not None
        installed = self.installed
        if installed is None:
            return self.staging.read(offset, size)
        if offset >= installed.size:
            return b""
        return volume.read(installed.hash, offset, min(size, installed.size - offset))

    async def commit(self, meta: MetaStore, volume: LocalVolume) -> Inode | None:
        """Make the staged bytes the file's content (durable when this returns).

        Returns the updated inode, or None if there was nothing to commit. Idempotent: a
        second call without new writes commits nothing. If it raises, nothing staged is lost
        and a later call tries again. The caller holds ``lock``.
        """
        if not self.dirty or self.staging is None:
            return None
        staging = self.staging
        if staging.size == 0 and staging.committed is None:
            content, size = None, 0
        else:
            committed = await asyncio.to_thread(volume.commit, staging)  # idempotent
            content, size = committed.hash, committed.size
        try:
            # committed without waiting for the disk, then made durable by an fsync on a
            # worker thread: the event loop serves other requests (and other closes, whose
            # commits that one fsync may cover) meanwhile
            inode = meta.set_content(self.ino, content, size, mtime_ns=self.mtime_ns,
                                     base=self.base_version, durable=False)
        except BaseException:
            self.failed_commits += 1
            raise
        await asyncio.to_thread(meta.syncer())
        if content is None:
            staging.discard()
        self.staging = None
        self.dirty = False
        self.mtime_ns = None
        self.base_version = None
        self.failed_commits = 0
        log.debug("committed inode %d: %s (%d bytes)", self.ino, content, size)
        return inode

    def discard(self) -> None:
        if self.staging is not None:
            self.staging.discard()
            self.staging = None
        self.dirty = False
        self.mtime_ns = None
        self.base_version = None
