"""The FUSE file system of one site (pyfuse3, libfuse 3, on the site's asyncio loop).

Handlers stay short: they translate between the kernel's view (inode numbers, bytes names,
flags) and the site's stores, and every ``MeridianError`` or ``OSError`` leaves a handler as
``FUSEError(errno)`` through ``fuse_errors``, the one place where errors become errno values.

Durability (DESIGN.md rule 2): a file's new bytes are committed (hashed, fsync'd, renamed into
the content store, metadata committed synchronously) on FUSE flush (every ``close``) and on
fsync. Reads of content that is not local wait for the mover to fetch the bytes they need; a
read never returns bytes that are not the file's.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import logging
import os
import stat
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import pyfuse3

from meridian.errors import (
    BadInput,
    BadPath,
    ContentError,
    MeridianError,
    NamespaceError,
    NameTooLong,
    NoSpace,
    ObjectStoreError,
)
from meridian.meta import ROOT_INO, AttrChanges, Inode
from meridian.meta import MAX_NAME, META_DIR_FILE_ID, ApplyResult
from meridian.mount.limits import largest_file_size
from meridian.mount.openfiles import OpenFile
from meridian.mount.sequence import following_frames
from meridian.testpoints import reached

if TYPE_CHECKING:
    from meridian.site import Site

log = logging.getLogger(__name__)

# How long the kernel may answer lookups and stat from its own cache. Safe to keep long:
# every change a peer brings invalidates the names and inodes it touched (``changed()``), and
# local changes pass through the kernel. With 1 s, a stat or rename of a file created a second
# earlier went to the site again (bench/metadata.py, before -> after: stat 14.0k -> 17.4k ops/s).
ATTR_TIMEOUT = 10.0
WHOLE_SEQUENCE = 100_000  # frames looked for ahead under prefetch-sequence (stops at a gap)
FORGET_BATCH, FORGET_DELAY = 256, 0.1  # nameless inodes are dropped in batches
ATTR_CACHE_SIZE = 100_000  # answers kept for reuse (emptied when full)
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
SITE_JSON_INO = (1 << 62) + 1  # the virtual /.meridian/site.json: which site this mount is
_UNKNOWN = object()  # the page cache may hold anything: do not keep it
_WRITTEN = object()  # the page cache holds bytes written since the last commit
SITE_JSON_NAME = b"site.json"
RETRY_FIRST, RETRY_MAX = 0.5, 30.0  # seconds before a failed close's commit is tried again


def _invalidate_inodes(inodes: list[int]) -> None:
    for ino in inodes:
        try:
            pyfuse3.invalidate_inode(ino, attr_only=False)
        except OSError as exc:  # the kernel forgot it meanwhile: nothing to drop
            if exc.errno != errno.ENOENT:
                log.debug("invalidate inode %d: %s", ino, exc)


def errno_of(exc: BaseException) -> int:
    """The errno a handler reports for ``exc`` (the mount's single mapping)."""
    if isinstance(exc, NamespaceError):
        return exc.errno
    if isinstance(exc, NameTooLong):
        return errno.ENAMETOOLONG
    if isinstance(exc, BadPath):
        return errno.EINVAL
    if isinstance(exc, NoSpace):
        return errno.ENOSPC
    if isinstance(exc, (ContentError, ObjectStoreError)):
        return errno.EIO
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO


@contextmanager
def fuse_errors(what: str) -> Iterator[None]:
    """Errors leave a handler as FUSEError. Anything else (a bug, or a vendor error a store
    let through) is logged with its traceback and answered EIO: raised into pyfuse3 it would
    end the whole mount, and with it every file's staged bytes."""
    try:
        yield
    except pyfuse3.FUSEError:
        raise
    except (MeridianError, OSError) as exc:
        code = errno_of(exc)
        level = logging.WARNING if code in (errno.EIO, errno.ENOSPC) else logging.DEBUG
        log.log(level, "%s: %s (%s)", what, exc, errno.errorcode.get(code, code))
        raise pyfuse3.FUSEError(code) from None
    except Exception:
        log.exception("%s: unexpected error (EIO)", what)
        raise pyfuse3.FUSEError(errno.EIO) from None


def _fsname(name: bytes) -> str:
    """A name from the kernel, decoded; NameTooLong past 255 bytes. Lookup is where the
    kernel sends every name first (stat, chmod, unlink, rename, ...): it reaches us up to
    the kernel's own limit (far above 255), so this check is what makes them ENAMETOOLONG
    rather than ENOENT."""
    if len(name) > MAX_NAME:
        raise NameTooLong(f"name of {len(name)} bytes (at most {MAX_NAME})")
    return os.fsdecode(name)


class MeridianFS(pyfuse3.Operations):
    """pyfuse3 operations over a ``Site`` (its meta store, local volume and mover)."""

    supports_dot_lookup = False
    # Write-through, not the kernel's writeback cache. With writeback caching the kernel owns
    # size and times: it writes ctime back after every rename and unlink (a SETATTR each),
    # and after every close it must ask for the attributes again (so a stat after a write
    # is never answered from its cache). Without it, write errors (ENOSPC, EIO) reach write()
    # rather than close(), and 1 MiB writes arrive as 1 MiB requests. bench/metadata.py and
    # bench/seqio.py, same run conditions, writeback -> write-through: stat 17.4k -> 209k
    # ops/s, rename 2,770 -> 3,176, unlink 2,913 -> 3,593; 512 MiB write 642 -> 764 MB/s;
    # the first read after writing goes to the site instead of the page cache (10.6 -> 3.9
    # GB/s; later reads come from the page cache again).
    # (``[site] writeback_cache = true`` turns it on for a site that mostly re-reads what it
    # has just written; read once per mount, when the kernel answers INIT.)
    enable_writeback_cache = False

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site
        self.enable_writeback_cache = site.config.writeback_cache
        self.meta = site.meta
        self.volume = site.volume
        self._open: dict[int, OpenFile] = {}
        self._handles: dict[int, tuple[int, int]] = {}  # fh -> (ino, open flags)
        self._refs: dict[int, str] = {}  # fh -> content held open on the volume (never evicted)
        self._next_fh = 1
        self._lookups: dict[int, int] = defaultdict(int)
        self._dirs: dict[int, list[tuple[bytes, Inode]]] = {}
        # What the kernel's page cache holds for each inode: a content hash (None = empty), or
        # _WRITTEN while writes through the kernel are being staged. It lets an open keep the
        # page cache (warm reads at memory speed) when the content has not changed since.
        self._cached_content: dict[int, str | None | object] = {}
        self._names: dict[int, tuple[int, str]] = {}  # a name the kernel knows each file by
        self._unused: set[int] = set()  # nameless, unreferenced inodes to forget soon
        self._attr_cache: dict[int, tuple[Inode, pyfuse3.EntryAttributes]] = {}  # _attrs()
        self._forget_timer: asyncio.TimerHandle | None = None
        self._retries: dict[int, asyncio.Task[None]] = {}  # ino -> commit retried after close
        self.max_file_size = largest_file_size(self.volume.root)  # larger: EFBIG
        self.sequence_readahead = site.config.mover.sequence_readahead
        site.replication.add_listener(self.invalidate)
        meta_dir = self.meta.by_file_id(META_DIR_FILE_ID)
        assert meta_dir is not None, "every store has /.meridian"
        self._meta_dir = meta_dir.ino  # /.meridian: lost+found, and site.json (virtual)

    # -- changes from other sites -----------------------------------------------------------
    def invalidate(self, result: ApplyResult) -> None:
        """Entries from peers were applied: make the kernel forget what it cached of the
        touched names and inodes, so the next ``ls``/``stat``/``open`` asks us (DESIGN.md step 4).

        Called on the loop, outside any request handler. Entry invalidations are queued
        (``invalidate_entry_async``); inode invalidations may block on the kernel's page
        cache (and would on dirty pages under writeback caching), so they run in a worker
        thread."""
        touched: set[int] = set()
        for parent, name in result.names:
            touched.add(parent)
            if parent == ROOT_INO or parent in self._lookups:
                pyfuse3.invalidate_entry_async(parent, os.fsencode(name), ignore_enoent=True)
        for ino in result.inodes:
            self._cached_content.pop(ino, None)  # never keep pages of replaced content
        touched |= result.inodes
        known = [ino for ino in touched if ino == ROOT_INO or ino in self._lookups]
        if known:
            asyncio.get_running_loop().run_in_executor(None, _invalidate_inodes, known)

    # -- attributes -------------------------------------------------------------------------
    def _attrs(self, inode: Inode) -> pyfuse3.EntryAttributes:
        """The kernel's view of ``inode``. Built once per inode *version*: the store hands out
        a new Inode object for every change, so an answer built for this very object is
        still right (listing 2,000 entries built 2,000 of these, a third of its time). Never
        cached while the file has staged writes (size and mtime come from the staging)."""
        open_file = self._open.get(inode.ino)
        staged = open_file is not None and open_file.staging is not None
        if not staged:
            cached = self._attr_cache.get(inode.ino)
            if cached is not None and cached[0] is inode:
                return cached[1]
        entry = self._build_attrs(inode, open_file)
        if not staged:
            if len(self._attr_cache) >= ATTR_CACHE_SIZE:
                self._attr_cache.clear()
            self._attr_cache[inode.ino] = (inode, entry)
        return entry

    def _build_attrs(self, inode: Inode, open_file: OpenFile | None) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = inode.ino
        entry.generation = 0
        entry.entry_timeout = ATTR_TIMEOUT
        entry.attr_timeout = ATTR_TIMEOUT
        entry.st_mode = inode.mode
        entry.st_nlink = inode.nlink
        entry.st_uid = inode.uid
        entry.st_gid = inode.gid
        entry.st_rdev = inode.rdev
        size = inode.size
        mtime_ns = inode.mtime_ns
        if open_file is not None and open_file.staging is not None:
            size = open_file.staging.size
            mtime_ns = open_file.mtime_ns or mtime_ns
        entry.st_size = size
        entry.st_blksize = 1 << 20
        entry.st_blocks = (size + 511) // 512
        entry.st_atime_ns = inode.atime_ns
        entry.st_mtime_ns = mtime_ns
        entry.st_ctime_ns = inode.ctime_ns
        return entry

    def _site_json_inode(self) -> Inode:
        now = time.time_ns()
        return Inode(SITE_JSON_INO, "virtual", stat.S_IFREG | 0o444, 0, 0,
                     len(self._site_json()), 1, now, now, now)

    def _virtual_attrs(self, ino: int) -> pyfuse3.EntryAttributes:
        return self._attrs(self._site_json_inode())

    def _site_json(self) -> bytes:
        return (json.dumps(self.site.describe(), indent=2) + "\n").encode()

    def _entry(self, inode: Inode) -> pyfuse3.EntryAttributes:
        """Attributes for a reply that gives the kernel a new reference (lookup count + 1)."""
        self._lookups[inode.ino] += 1
        return self._attrs(inode)

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        if inode == SITE_JSON_INO:
            return self._virtual_attrs(inode)
        with fuse_errors("getattr"):
            return self._attrs(self.meta.getattr(inode))

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
        if parent_inode == self._meta_dir and name == SITE_JSON_NAME:
            return self._virtual_attrs(SITE_JSON_INO)
        with fuse_errors("lookup"):
            inode = self.meta.lookup(parent_inode, _fsname(name))
            if inode.is_file:
                self._names[inode.ino] = (parent_inode, _fsname(name))
            return self._entry(inode)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            left = self._lookups.get(ino, 0) - count
            if left > 0:
                self._lookups[ino] = left
                continue
            self._lookups.pop(ino, None)
            self._cached_content.pop(ino, None)
            self._names.pop(ino, None)
            self._attr_cache.pop(ino, None)
            self._drop_if_unused(ino)

    def _drop_if_unused(self, ino: int) -> None:
        """Forget an inode with no name, no handle and no kernel reference left: soon, in a
        batch (one commit for many unlinks rather than a second commit per unlink). Safe to
        lose on a crash: nameless inodes are dropped when the store opens."""
        if self._in_use(ino):
            return
        self._unused.add(ino)
        if len(self._unused) >= FORGET_BATCH:
            self._forget_unused()
        elif self._forget_timer is None:
            self._forget_timer = asyncio.get_running_loop().call_later(FORGET_DELAY,
                                                                       self._forget_unused)

    def _in_use(self, ino: int) -> bool:
        """Open here, or still referenced by the kernel."""
        return ino in self._open or bool(self._lookups.get(ino))

    def _forget_unused(self) -> None:
        if self._forget_timer is not None:
            self._forget_timer.cancel()
            self._forget_timer = None
        # checked again: a file may have been opened (by inode) or looked up since
        unused = [ino for ino in self._unused if not self._in_use(ino)]
        self._unused.clear()
        try:
            self.meta.forget_all(unused)  # each still nameless, or left alone
        except MeridianError as exc:  # pragma: no cover - logged, never fatal
            log.warning("forget %d inodes: %s", len(unused), exc)

    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: Any) -> pyfuse3.EntryAttributes:
        with fuse_errors("setattr"):
            current = self.meta.getattr(inode)
            if fields.update_size:
                await self._truncate(current, attr.st_size)
            # Only what differs: tools (and the kernel, were writeback caching on) set times
            # that are already there; those must not cost a transaction and a journal entry
            # that every peer then applies.
            def differs(wanted: bool, new: int, old: int) -> int | None:
                return new if wanted and new != old else None
            changes = AttrChanges(
                mode=differs(fields.update_mode, attr.st_mode, current.mode),
                uid=differs(fields.update_uid, attr.st_uid, current.uid),
                gid=differs(fields.update_gid, attr.st_gid, current.gid),
                atime_ns=differs(fields.update_atime, attr.st_atime_ns, current.atime_ns),
                mtime_ns=differs(fields.update_mtime, attr.st_mtime_ns, current.mtime_ns),
            )
            open_file = self._open.get(inode)
            if changes.mtime_ns is not None and open_file is not None and open_file.dirty:
                open_file.mtime_ns = changes.mtime_ns  # kept through the commit at close
            if any(v is not None for v in vars(changes).values()):
                current = self.meta.setattr(inode, changes)
            elif fields.update_size:
                current = self.meta.getattr(inode)
            return self._attrs(current)

    async def _truncate(self, inode: Inode, size: int) -> None:
        """truncate(2)/ftruncate(2): through the open file's staging, committed at once when
        no handle is open (a path truncate has no close to commit it)."""
        if not inode.is_file:
            raise pyfuse3.FUSEError(errno.EISDIR if inode.is_dir else errno.EINVAL)
        if size > self.max_file_size:  # refused before anything changes (ctime included)
            raise pyfuse3.FUSEError(errno.EFBIG)
        open_file = self._open.get(inode.ino)
        if open_file is None:
            open_file = OpenFile(inode.ino)
            self._open[inode.ino] = open_file
        try:
            async with open_file.lock:
                if size > 0 and open_file.staging is None:
                    await self._ensure_local(inode, 0, inode.size)
                staging = await open_file.ensure_staging(self.volume, inode, truncate=size == 0)
                staging.truncate(size)
                open_file.dirty = True
                open_file.mtime_ns = time.time_ns()
                self._cached_content[inode.ino] = _WRITTEN  # the kernel truncates its cache too
                if open_file.handles == 0:  # no close to come: commit now
                    await self._commit(open_file)
        finally:
            self._close_idle(inode.ino, open_file)

    async def readlink(self, inode: int, ctx: Any) -> bytes:
        with fuse_errors("readlink"):
            target = self.meta.getattr(inode).target
            if target is None:
                raise pyfuse3.FUSEError(errno.EINVAL)
            return os.fsencode(target)

    # -- directories ------------------------------------------------------------------------
    async def opendir(self, inode: int, ctx: Any) -> int:
        with fuse_errors("opendir"):
            listing = [(b".", self.meta.getattr(inode)),
                       (b"..", self.meta.getattr(self.meta.parent_of(inode)))]
            listing += [(name.encode(_FS_ENCODING, _FS_ERRORS), child)  # = os.fsencode
                        for name, child in self.meta.list_dir(inode)
                        if child.ino != self._meta_dir]  # /.meridian: found by name, not listed
            if inode == self._meta_dir:
                listing.append((SITE_JSON_NAME, self._site_json_inode()))
        fh = self._new_fh()
        self._dirs[fh] = listing
        return fh

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        listing = self._dirs.get(fh, [])
        for index in range(start_id, len(listing)):
            name, child = listing[index]
            if not pyfuse3.readdir_reply(token, name, self._attrs(child), index + 1):
                break
            if name not in (b".", b".."):  # the kernel takes no reference for these two
                self._lookups[child.ino] += 1

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        with fuse_errors("mkdir"):
            return self._entry(self._new_inode(parent_inode, name,
                                               stat.S_IFDIR | (mode & 0o7777), ctx))

    def _new_inode(self, parent: int, name: bytes, mode: int, ctx: Any,
                   target: str | None = None, rdev: int = 0) -> Inode:
        """Create as ext4 does: in a set-group-ID directory, the new entry takes the
        directory's group, and a new directory inherits the set-group-ID bit."""
        gid = ctx.gid
        directory = self.meta.getattr(parent)
        if directory.mode & stat.S_ISGID:
            gid = directory.gid
            if stat.S_ISDIR(mode):
                mode |= stat.S_ISGID
        return self.meta.create(parent, _fsname(name), mode, ctx.uid, gid, target=target, rdev=rdev)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        with fuse_errors("rmdir"):
            self.meta.rmdir(parent_inode, _fsname(name))

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        with fuse_errors("unlink"):
            left = self.meta.unlink(parent_inode, _fsname(name))
            if left.nlink == 0:
                self._drop_if_unused(left.ino)

    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: Any) -> None:
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        with fuse_errors("rename"):
            replaced = self.meta.rename(parent_inode_old, _fsname(name_old), parent_inode_new,
                                        _fsname(name_new),
                                        replace=not flags & pyfuse3.RENAME_NOREPLACE)
            reached("mount.renamed")  # committed durably; the caller has no answer yet
            if replaced is not None and replaced.nlink == 0:
                self._drop_if_unused(replaced.ino)

    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        with fuse_errors("symlink"):
            return self._entry(self._new_inode(parent_inode, name, stat.S_IFLNK | 0o777, ctx,
                                               target=os.fsdecode(target)))

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        with fuse_errors("link"):
            try:
                linked = self.meta.link(inode, new_parent_inode, _fsname(new_name))
            except NamespaceError as exc:
                if exc.errno == errno.EISDIR:
                    raise pyfuse3.FUSEError(errno.EPERM) from None
                raise
            return self._entry(linked)

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: Any) -> pyfuse3.EntryAttributes:
        with fuse_errors("mknod"):  # files, FIFOs, sockets, devices (metadata only, no content)
            return self._entry(self._new_inode(parent_inode, name, mode, ctx, rdev=rdev))

    # -- files ------------------------------------------------------------------------------
    def _new_fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    def _attach(self, ino: int, flags: int) -> int:
        open_file = self._open.get(ino)
        if open_file is None:
            open_file = self._open[ino] = OpenFile(ino)
        open_file.handles += 1
        fh = self._new_fh()
        self._handles[fh] = (ino, flags)
        return fh

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: Any) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        with fuse_errors("create"):
            inode = self._new_inode(parent_inode, name, stat.S_IFREG | (mode & 0o7777), ctx)
            fh = self._attach(inode.ino, flags)
            self._cached_content[inode.ino] = None
            return pyfuse3.FileInfo(fh=fh, keep_cache=True), self._entry(inode)

    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        if inode == SITE_JSON_INO:
            if flags & os.O_ACCMODE != os.O_RDONLY:
                raise pyfuse3.FUSEError(errno.EROFS)  # the mount's answer, not a file to edit
            return pyfuse3.FileInfo(fh=self._new_fh(), direct_io=True)
        with fuse_errors("open"):
            current = self.meta.getattr(inode)
            if current.is_dir:
                raise pyfuse3.FUSEError(errno.EISDIR)
            fh = self._attach(inode, flags)
            if current.content is not None:  # an open file's instance is never evicted
                self.volume.open_ref(current.content)
                self._refs[fh] = current.content
            open_file = self._open[inode]
            if flags & os.O_TRUNC and (flags & os.O_ACCMODE) != os.O_RDONLY:
                async with open_file.lock:
                    staging = await open_file.ensure_staging(self.volume, current, truncate=True)
                    staging.truncate(0)
                    open_file.dirty = True
                    open_file.mtime_ns = time.time_ns()
            if current.content is not None and not self.volume.has(current.content):
                await self._sequence_readahead(current)
            keep = (open_file.staging is None
                    and self._cached_content.get(inode, _UNKNOWN) == current.content)
            self._cached_content[inode] = current.content
            return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    async def _sequence_readahead(self, inode: Inode) -> None:
        """Opening a frame that is not local starts fetching the next frames of its sequence:
        a few (``mover.sequence_readahead``), or all the rest where an objective says
        ``prefetch-sequence``."""
        parent, name = self._names.get(inode.ino, (0, ""))
        whole = self.site.orchestrator.prefetch_sequence(inode.file_id)
        count = WHOLE_SEQUENCE if whole else self.sequence_readahead
        for frame in itertools.islice(following_frames(name), count):
            try:
                following = self.meta.lookup(parent, frame)
            except MeridianError:
                break
            if following.content is not None:
                await self.site.mover.prefetch(following.content, following.size)

    async def _ensure_local(self, inode: Inode, offset: int, length: int) -> None:
        """Wait until bytes [offset, offset+length) of the inode's content are local."""
        if inode.content is None or length <= 0:
            return
        if self.volume.has(inode.content):
            return
        await self.site.mover.ensure_local(inode.content, inode.size, offset, offset + length)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        if fh not in self._handles:
            return self._site_json()[off:off + size]
        ino, _ = self._handles[fh]
        with fuse_errors("read"):
            open_file = self._open[ino]
            if open_file.staging is not None:
                return open_file.read_staged(self.volume, off, size)
            inode = self.meta.getattr(ino)
            if inode.content is None or off >= inode.size:
                return b""
            size = min(size, inode.size - off)
            await self._ensure_local(inode, off, size)
            return self.volume.read(inode.content, off, size)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        ino, _ = self._handles[fh]
        if off + len(buf) > self.max_file_size:
            raise pyfuse3.FUSEError(errno.EFBIG)
        with fuse_errors("write"):
            open_file = self._open[ino]
            async with open_file.lock:
                if open_file.staging is None or open_file.installed is not None:
                    inode = self.meta.getattr(ino)
                    if open_file.staging is None:
                        await self._ensure_local(inode, 0, inode.size)
                    await open_file.ensure_staging(self.volume, inode, truncate=False)
                staging = cast("Any", open_file.staging)
                written: int = await self._write_waiting_for_space(staging, off, buf)
                open_file.dirty = True
                open_file.mtime_ns = time.time_ns()
                self._cached_content[ino] = _WRITTEN
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

    async def _commit(self, open_file: OpenFile) -> None:
        inode = await open_file.commit(self.meta, self.volume)
        if inode is not None:
            if self._cached_content.get(inode.ino) is _WRITTEN:
                self._cached_content[inode.ino] = inode.content  # the cache holds what we wrote
            self.site.content_committed(inode)

    async def flush(self, fh: int) -> None:
        """close(): commits what the file has staged. Not for a read-only handle: its close
        has nothing of its own to commit, and must not fail for another handle's bytes."""
        if fh in self._handles and self._handles[fh][1] & os.O_ACCMODE != os.O_RDONLY:
            await self._commit_handle(fh, "flush")

    async def _commit_handle(self, fh: int, what: str) -> None:
        if fh not in self._handles:
            return
        ino, _ = self._handles[fh]
        with fuse_errors(what):
            open_file = self._open[ino]
            async with open_file.lock:
                await self._commit(open_file)

    async def fsync(self, fh: int, datasync: bool) -> None:
        """Content and every namespace change before it are on disk when this returns."""
        await self._commit_handle(fh, "fsync")
        with fuse_errors("fsync"):
            await asyncio.to_thread(self.meta.syncer())

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        with fuse_errors("fsyncdir"):
            await asyncio.to_thread(self.meta.syncer())

    async def release(self, fh: int) -> None:
        entry = self._handles.pop(fh, None)
        if entry is None:
            return
        held = self._refs.pop(fh, None)
        if held is not None:
            self.volume.close_ref(held)
        ino = entry[0]
        open_file = self._open[ino]
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
        if open_file.handles > 0 or self._open.get(ino) is not open_file:
            return
        if open_file.dirty:
            if ino not in self._retries:
                delay = min(RETRY_MAX, RETRY_FIRST * 2 ** min(open_file.failed_commits, 10))
                self._retries[ino] = asyncio.get_running_loop().create_task(
                    self._retry_commit(ino, open_file, delay), name=f"commit inode {ino}")
            return
        open_file.discard()
        del self._open[ino]
        try:
            if self.meta.getattr(ino).nlink == 0:
                self._drop_if_unused(ino)
        except MeridianError:
            pass

    async def _retry_commit(self, ino: int, open_file: OpenFile, delay: float) -> None:
        await asyncio.sleep(delay)
        del self._retries[ino]
        if self._open.get(ino) is not open_file or open_file.handles > 0:
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

    # -- extended attributes and statfs -----------------------------------------------------
    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        with fuse_errors("getxattr"):
            return self.meta.getxattr(inode, _fsname(name))

    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any) -> None:
        with fuse_errors("setxattr"):
            self.meta.setxattr(inode, _fsname(name), value)

    async def listxattr(self, inode: int, ctx: Any) -> list[bytes]:
        with fuse_errors("listxattr"):
            return [os.fsencode(name) for name in self.meta.listxattr(inode)]

    async def removexattr(self, inode: int, name: bytes, ctx: Any) -> None:
        with fuse_errors("removexattr"):
            self.meta.removexattr(inode, _fsname(name))

    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        usage = self.volume.usage()
        disk = os.statvfs(self.volume.root)
        block = 4096
        total = usage.capacity if usage.capacity is not None else disk.f_blocks * disk.f_frsize
        free = max(0, min(total - usage.used, disk.f_bavail * disk.f_frsize))
        data.f_bsize = block
        data.f_frsize = block
        data.f_blocks = total // block
        data.f_bfree = free // block
        data.f_bavail = free // block
        inodes = self.meta.count_inodes()
        data.f_files = inodes + 1_000_000_000
        data.f_ffree = 1_000_000_000
        data.f_favail = 1_000_000_000
        data.f_namemax = 255
        return data
