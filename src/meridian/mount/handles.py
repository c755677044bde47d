"""Open files of the mount: file handles, reads, writes, and commits on close and fsync.

A handle (``fh``) names one open of one inode; every handle of an inode shares its
``OpenFile`` (staged bytes, lock). Durability (docs/design.md, rule 2): a file's new bytes are
committed (hashed, fsync'd, renamed into the content store, metadata committed
synchronously) on FUSE flush (every ``close``) and on fsync. Reads of content that is not
local wait for the mover to fetch the bytes they need; a read never returns bytes that are
not the file's. A close whose commit fails keeps the bytes staged and commits them again in
the background until it succeeds.

Opens of internal nodes get a handle too: their bytes are taken once, at open, so that a
reader going through them in several reads sees one answer.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import time
from typing import TYPE_CHECKING, Any, cast

import pyfuse3

from meridian.errors import BadInput, MeridianError, NamespaceError, NoSpace
from meridian.meta import Inode
from meridian.mount.errnos import fuse_errors
from meridian.mount.kernelrefs import UNKNOWN, WRITTEN, KernelRefs
from meridian.mount.limits import largest_file_size
from meridian.mount.openfiles import OpenFile
from meridian.mount.sequence import following_frames

if TYPE_CHECKING:
    from meridian.site import Site

log = logging.getLogger(__name__)

WHOLE_SEQUENCE = 100_000  # frames looked for ahead under prefetch-sequence (stops at a gap)
RETRY_FIRST, RETRY_MAX = 0.5, 30.0  # seconds before a failed close's commit is tried again


class FileHandles:
    """The handles open on the mount and the ``OpenFile`` of every inode they hold."""

    def __init__(self, site: Site, refs: KernelRefs) -> None:
        self.site = site
        self.meta = site.meta
        self.volume = site.volume
        self.refs = refs
        self.open_files: dict[int, OpenFile] = {}
        self._handles: dict[int, tuple[int, int]] = {}  # fh -> (ino, open flags)
        self._held: dict[int, str] = {}  # fh -> content held open on the volume (never evicted)
        self._internal: dict[int, bytes] = {}  # fh of an internal node -> its bytes at open
        self._next_fh = 1
        self._retries: dict[int, asyncio.Task[None]] = {}  # ino -> commit retried after close
        self.max_file_size = largest_file_size(self.volume.root)  # larger: EFBIG
        self.sequence_readahead = site.config.mover.sequence_readahead

    def is_open(self, ino: int) -> bool:
        return ino in self.open_files

    def new_fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    def _attach(self, ino: int, flags: int) -> int:
        open_file = self.open_files.get(ino)
        if open_file is None:
            open_file = self.open_files[ino] = OpenFile(ino)
        open_file.handles += 1
        fh = self.new_fh()
        self._handles[fh] = (ino, flags)
        return fh

    def open_internal(self, content: bytes) -> pyfuse3.FileInfo:
        fh = self.new_fh()
        self._internal[fh] = content
        return pyfuse3.FileInfo(fh=fh, direct_io=True)

    def created(self, inode: Inode, flags: int) -> pyfuse3.FileInfo:
        """A handle on a file just created (empty: the page cache holds nothing of it)."""
        fh = self._attach(inode.ino, flags)
        self.refs.page_cache[inode.ino] = None
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    async def open(self, inode: int, flags: int) -> pyfuse3.FileInfo:
        current = self.meta.getattr(inode)
        if current.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        fh = self._attach(inode, flags)
        if current.content is not None:  # an open file's instance is never evicted
            self.volume.open_ref(current.content)
            self._held[fh] = current.content
        open_file = self.open_files[inode]
        if flags & os.O_TRUNC and (flags & os.O_ACCMODE) != os.O_RDONLY:
            async with open_file.lock:
                staging = await open_file.ensure_staging(self.volume, current, truncate=True)
                staging.truncate(0)
                open_file.dirty = True
                open_file.mtime_ns = time.time_ns()
        if current.content is not None and not self.volume.has(current.content):
            await self._sequence_readahead(current)
        keep = (open_file.staging is None
                and self.refs.page_cache.get(inode, UNKNOWN) == current.content)
        self.refs.page_cache[inode] = current.content
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    async def _sequence_readahead(self, inode: Inode) -> None:
        """Opening a frame that is not local starts fetching the next frames of its sequence:
        a few (``mover.sequence_readahead``), or all the rest where an objective says
        ``prefetch-sequence``."""
        parent, name = self.refs.names.get(inode.ino, (0, ""))
        whole = self.site.orchestrator.prefetch_sequence(inode.file_id)
        count = WHOLE_SEQUENCE if whole else self.sequence_readahead
        for frame in itertools.islice(following_frames(name), count):
            try:
                following = self.meta.lookup(parent, frame)
            except MeridianError:
                break
            if following.content is not None:
                await self.site.mover.prefetch(following.content, following.size)

    async def ensure_local(self, inode: Inode, offset: int, length: int) -> None:
        """Wait until bytes [offset, offset+length) of the inode's content are local."""
        if inode.content is None or length <= 0:
            return
        if self.volume.has(inode.content):
            return
        await self.site.mover.ensure_local(inode.content, inode.size, offset, offset + length)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        internal = self._internal.get(fh)
        if internal is not None:
            return internal[off:off + size]
        ino, _ = self._handles[fh]
        with fuse_errors("read"):
            open_file = self.open_files[ino]
            if open_file.staging is not None:
                return open_file.read_staged(self.volume, off, size)
            inode = self.meta.getattr(ino)
            if inode.content is None or off >= inode.size:
                return b""
            size = min(size, inode.size - off)
            if not self.volume.has(inode.content):  # checked bytes before their fsync
                early = await self.site.mover.read_checked(inode.content, inode.size, off,
                                                           off + size)
                if early is not None:
                    return early
            await self.ensure_local(inode, off, size)
            return self.volume.read(inode.content, off, size)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        ino, _ = self._handles[fh]
        if off + len(buf) > self.max_file_size:
            raise pyfuse3.FUSEError(errno.EFBIG)
        with fuse_errors("write"):
            open_file = self.open_files[ino]
            async with open_file.lock:
                if open_file.staging is None or open_file.installed is not None:
                    inode = self.meta.getattr(ino)
                    if open_file.staging is None:
                        await self.ensure_local(inode, 0, inode.size)
                    await open_file.ensure_staging(self.volume, inode, truncate=False)
                staging = cast("Any", open_file.staging)
                written: int = await self._write_waiting_for_space(staging, off, buf)
                open_file.dirty = True
                open_file.mtime_ns = time.time_ns()
                self.refs.page_cache[ino] = WRITTEN
                return written

    async def _write_waiting_for_space(self, staging: Any, off: int, buf: bytes) -> int:
        """Write; when the volume is full of content still on its way to the bucket, wait for
        uploads (up to ``mover.space_wait`` seconds) so it becomes evictable, then retry.
        ENOSPC only when nothing can be made evictable in that time."""
        deadline = time.monotonic() + self.site.config.mover.space_wait
        while True:
            try:
                written: int = staging.write(off, buf)
                return written
            except NoSpace:
                left = deadline - time.monotonic()
                if left <= 0 or not await self.site.mover.wait_for_upload(left):
                    raise

    async def truncate(self, inode: Inode, size: int) -> None:
        """truncate(2)/ftruncate(2): through the open file's staging, committed at once when
        no handle is open (a path truncate has no close to commit it)."""
        if not inode.is_file:
            raise pyfuse3.FUSEError(errno.EISDIR if inode.is_dir else errno.EINVAL)
        if size > self.max_file_size:  # refused before anything changes (ctime included)
            raise pyfuse3.FUSEError(errno.EFBIG)
        open_file = self.open_files.get(inode.ino)
        if open_file is None:
            open_file = OpenFile(inode.ino)
            self.open_files[inode.ino] = open_file
        try:
            async with open_file.lock:
                if size > 0 and open_file.staging is None:
                    await self.ensure_local(inode, 0, inode.size)
                staging = await open_file.ensure_staging(self.volume, inode, truncate=size == 0)
                staging.truncate(size)
                open_file.dirty = True
                open_file.mtime_ns = time.time_ns()
                self.refs.page_cache[inode.ino] = WRITTEN  # the kernel truncates its cache too
                if open_file.handles == 0:  # no close to come: commit now
                    await self._commit(open_file)
        finally:
            self._close_idle(inode.ino, open_file)

    async def _commit(self, open_file: OpenFile) -> None:
        inode = await open_file.commit(self.meta, self.volume)
        if inode is not None:
            if self.refs.page_cache.get(inode.ino) is WRITTEN:
                self.refs.page_cache[inode.ino] = inode.content  # the cache holds what we wrote
            self.site.content_committed(inode)

    async def flush(self, fh: int) -> None:
        """close(): commits what the file has staged. Not for a read-only handle: its close
        has nothing of its own to commit, and must not fail for another handle's bytes."""
        if fh in self._handles and self._handles[fh][1] & os.O_ACCMODE != os.O_RDONLY:
            await self.commit_handle(fh, "flush")

    async def commit_handle(self, fh: int, what: str) -> None:
        if fh not in self._handles:
            return
        ino, _ = self._handles[fh]
        with fuse_errors(what):
            open_file = self.open_files[ino]
            async with open_file.lock:
                await self._commit(open_file)

    async def release(self, fh: int) -> None:
        self._internal.pop(fh, None)
        entry = self._handles.pop(fh, None)
        if entry is None:
            return
        held = self._held.pop(fh, None)
        if held is not None:
            self.volume.close_ref(held)
        ino = entry[0]
        open_file = self.open_files[ino]
        open_file.handles -= 1
        if open_file.handles > 0:
            return
        try:
            with fuse_errors("release"):
                async with open_file.lock:
                    await self._commit(open_file)
        finally:
            self._close_idle(ino, open_file)

    def _close_idle(self, ino: int, open_file: OpenFile) -> None:
        """Let go of a file no handle holds any more; one whose commit failed is kept (its
        bytes staged, what reads and stat see) and committed again soon, in the background,
        until its metadata is written: a failed close loses nothing written."""
        if open_file.handles > 0 or self.open_files.get(ino) is not open_file:
            return
        if open_file.dirty:
            if ino not in self._retries:
                delay = min(RETRY_MAX, RETRY_FIRST * 2 ** min(open_file.failed_commits, 10))
                self._retries[ino] = asyncio.get_running_loop().create_task(
                    self._retry_commit(ino, open_file, delay), name=f"commit inode {ino}")
            return
        open_file.discard()
        del self.open_files[ino]
        try:
            if self.meta.getattr(ino).nlink == 0:
                self.refs.drop_if_unused(ino)
        except MeridianError:
            pass

    async def _retry_commit(self, ino: int, open_file: OpenFile, delay: float) -> None:
        await asyncio.sleep(delay)
        del self._retries[ino]
        if self.open_files.get(ino) is not open_file or open_file.handles > 0:
            return  # a handle holds it again: its close commits
        try:
            async with open_file.lock:
                await self._commit(open_file)
        except (NamespaceError, BadInput) as exc:  # the file is gone or refuses it: give up
            log.warning("commit of inode %d abandoned: %s", ino, exc)
            open_file.discard()
        except Exception as exc:  # kept staged; tried again later
            log.warning("commit of inode %d failed again (%d times): %s", ino,
                        open_file.failed_commits, exc)
        self._close_idle(ino, open_file)
