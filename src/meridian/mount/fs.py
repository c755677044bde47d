"""The FUSE file system of one site (pyfuse3, libfuse 3, on the site's asyncio loop).

Handlers stay short: they translate between the kernel's view (inode numbers, bytes names,
flags) and the site's stores, and every ``MeridianError`` or ``OSError`` leaves a handler as
``FUSEError(errno)`` through ``fuse_errors`` (``mount/errnos.py``), the one place where errors
become errno values. The parts: ``KernelRefs`` (what the kernel holds: references, names,
page-cache contents), ``FileHandles`` (open files, reads, writes, commits on close and
fsync), ``InternalNodes`` (the mount's virtual files, one table in a reserved inode range).
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
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyfuse3

from meridian.errors import NamespaceError
from meridian.meta import META_DIR_FILE_ID, ROOT_INO, ApplyResult, AttrChanges, Inode
from meridian.mount.errnos import fsname, fuse_errors
from meridian.mount.handles import FileHandles
from meridian.mount.internal import INTERNAL_FILE_ID, InternalNodes, VirtualFile
from meridian.mount.kernelrefs import KernelRefs
from meridian.testpoints import reached

if TYPE_CHECKING:
    from meridian.site import Site

__all__ = ["MeridianFS", "fuse_errors"]

log = logging.getLogger(__name__)

# How long the kernel may answer lookups and stat from its own cache. Safe to keep long:
# every change a peer brings invalidates the names and inodes it touched (``changed()``), and
# local changes pass through the kernel. With 1 s, a stat or rename of a file created a second
# earlier went to the site again (bench/metadata.py, before -> after: stat 14.0k -> 17.4k ops/s).
ATTR_TIMEOUT = 10.0
ATTR_CACHE_SIZE = 100_000  # answers kept for reuse (emptied when full)
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
SITE_JSON_NAME = "site.json"  # /.meridian/site.json: which site this mount is


def generation_of(inode: Inode) -> int:
    """The generation the kernel puts in file handles beside the inode number (32 bits).

    The store never gives a number out twice (its counter only grows, and is committed with
    the inode that takes it), so a handle of a removed file finds nothing: ESTALE. The
    generation is derived from the file's ``file_id`` so that a number handed out again after
    a power loss had undone its first use (the counter and the inode undone together) cannot
    match an old handle unless both ids collide. The root keeps 0, as the kernel numbers it."""
    if inode.ino == ROOT_INO or inode.file_id == INTERNAL_FILE_ID:
        return 0
    return zlib.crc32(inode.file_id.encode()) or 1


class MeridianFS(pyfuse3.Operations):
    """pyfuse3 operations over a ``Site`` (its meta store, local volume and mover)."""

    # Lookup of "." and ".." by inode number: what the kernel asks when a file handle (NFS,
    # open_by_handle_at) names an inode it no longer has cached, e.g. after a restart of the
    # site. Without it such a handle is ESTALE even though the file is still there.
    supports_dot_lookup = True
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
        self.files = FileHandles(site, KernelRefs(site.meta, self._is_open))
        self.refs = self.files.refs
        self._dirs: dict[int, list[tuple[bytes, Inode, bool]]] = {}
        self._attr_cache: dict[int, tuple[Inode, pyfuse3.EntryAttributes]] = {}  # _attrs()
        site.replication.add_listener(self.invalidate)
        meta_dir = self.meta.by_file_id(META_DIR_FILE_ID)
        assert meta_dir is not None, "every store has /.meridian"
        self._meta_dir = meta_dir.ino  # /.meridian: lost+found, and site.json (virtual)
        self.internal = InternalNodes()
        self.internal.attach(self._meta_dir, VirtualFile(SITE_JSON_NAME, self._site_json))
        from meridian.mount.undoviews import UndoViews
        self.undo_views = UndoViews(site)  # /.snapshot and /.meridian/trash, read-only
        self.undo_views.attach(self.internal, ROOT_INO, self._meta_dir)

    def _is_open(self, ino: int) -> bool:
        return self.files.is_open(ino)

    def _site_json(self) -> bytes:
        return (json.dumps(self.site.describe(), indent=2) + "\n").encode()

    # -- changes from other sites -----------------------------------------------------------
    def invalidate(self, result: ApplyResult) -> None:
        """Entries from peers were applied: the kernel forgets what it cached of them."""
        self.refs.invalidate(result)

    # -- attributes -------------------------------------------------------------------------
    def _attrs(self, inode: Inode) -> pyfuse3.EntryAttributes:
        """The kernel's view of ``inode``. Built once per inode *version*: the store hands out
        a new Inode object for every change, so an answer built for this very object is
        still right (listing 2,000 entries built 2,000 of these, a third of its time). Never
        cached while the file has staged writes (size and mtime come from the staging)."""
        open_file = self.files.open_files.get(inode.ino)
        staged = open_file is not None and open_file.staging is not None
        if not staged:
            cached = self._attr_cache.get(inode.ino)
            if cached is not None and cached[0] is inode:
                return cached[1]
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = inode.ino
        entry.generation = generation_of(inode)
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
        if not staged:
            if len(self._attr_cache) >= ATTR_CACHE_SIZE:
                self._attr_cache.clear()
            self._attr_cache[inode.ino] = (inode, entry)
        return entry

    def _entry(self, inode: Inode) -> pyfuse3.EntryAttributes:
        """Attributes for a reply that gives the kernel a new reference (lookup count + 1)."""
        self.refs.took(inode.ino)
        return self._attrs(inode)

    def _getattr(self, ino: int) -> Inode:
        """The inode ``ino``, internal or the store's."""
        if self.internal.owns(ino):
            return self.internal.getattr(ino)
        return self.meta.getattr(ino)

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        with fuse_errors("getattr"):
            return self._attrs(self._getattr(inode))

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
        if name in (b".", b".."):
            return self._lookup_dot(parent_inode, name)
        with fuse_errors("lookup"):
            decoded = fsname(name)
            internal = self.internal.lookup(parent_inode, decoded)
            if internal is not None:
                return self._attrs(internal)  # never dropped: no reference kept
            inode = self.meta.lookup(parent_inode, decoded)
            if inode.is_file:
                self.refs.names[inode.ino] = (parent_inode, decoded)
            return self._entry(inode)

    def _lookup_dot(self, ino: int, name: bytes) -> pyfuse3.EntryAttributes:
        """``ino`` itself (".") or its directory (".."), found by number: the kernel turning
        a file handle back into an inode. A number the store no longer has (the file was
        removed) is ESTALE, never another file: numbers are never reused (``generation_of``)."""
        with fuse_errors("lookup"):
            try:
                if name == b"..":
                    ino = (self.internal.parent_of(ino) if self.internal.owns(ino)
                           else self.meta.parent_of(ino))
                inode = self._getattr(ino)
            except NamespaceError as exc:
                if exc.errno == errno.ENOENT:
                    raise pyfuse3.FUSEError(errno.ESTALE) from None
                raise
            if self.internal.owns(inode.ino):
                return self._attrs(inode)
            if inode.nlink == 0 and not self.files.is_open(inode.ino):
                raise pyfuse3.FUSEError(errno.ESTALE)  # removed, kept only until forgotten
            return self._entry(inode)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            if self.internal.owns(ino):
                continue
            if self.refs.forget(ino, count):
                self._attr_cache.pop(ino, None)
                self.refs.drop_if_unused(ino)

    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: Any) -> pyfuse3.EntryAttributes:
        self.internal.refuse_change(inode)
        with fuse_errors("setattr"):
            current = self.meta.getattr(inode)
            if fields.update_size:
                await self.files.truncate(current, attr.st_size)
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
            open_file = self.files.open_files.get(inode)
            if changes.mtime_ns is not None and open_file is not None and open_file.dirty:
                open_file.mtime_ns = changes.mtime_ns  # kept through the commit at close
            if any(v is not None for v in vars(changes).values()):
                current = self.meta.setattr(inode, changes)
            elif fields.update_size:
                current = self.meta.getattr(inode)
            return self._attrs(current)


    async def readlink(self, inode: int, ctx: Any) -> bytes:
        with fuse_errors("readlink"):
            target = self._getattr(inode).target
            if target is None:
                raise pyfuse3.FUSEError(errno.EINVAL)
            return os.fsencode(target)

    # -- directories ------------------------------------------------------------------------
    async def opendir(self, inode: int, ctx: Any) -> int:
        """The listing, taken whole at open: (name, inode, whether a reply of it gives the
        kernel a reference). "." and ".." give none, nor do the mount's internal nodes."""
        listing: list[tuple[bytes, Inode, bool]]
        with fuse_errors("opendir"):
            if self.internal.owns(inode):
                children = self.internal.listing(inode)
                listing = [(b".", self.internal.getattr(inode), False),
                           (b"..", self._getattr(self.internal.parent_of(inode)), False)]
                listing += [(os.fsencode(name), child, False) for name, child in children]
            else:
                listing = [(b".", self.meta.getattr(inode), False),
                           (b"..", self.meta.getattr(self.meta.parent_of(inode)), False)]
                meta_dir = self._meta_dir  # /.meridian: found by name, not listed
                listing += [(name.encode(_FS_ENCODING, _FS_ERRORS), child, True)  # = os.fsencode
                            for name, child in self.meta.list_dir(inode)
                            if child.ino != meta_dir]
                listing += [(os.fsencode(name), child, False)
                            for name, child in self.internal.listed_in(inode)]
        fh = self.files.new_fh()
        self._dirs[fh] = listing
        return fh

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        # One reply holds ~100 entries; a listing of 2,000 names is ~20 of these calls, so
        # the loop keeps to local names (bench/compare_metadata.py, "list the folder").
        listing = self._dirs.get(fh, [])
        attrs, reply = self._attrs, pyfuse3.readdir_reply
        sent = start_id
        try:
            for name, child, _ in itertools.islice(listing, start_id, None):
                if not reply(token, name, attrs(child), sent + 1):
                    break
                sent += 1
        finally:  # what was sent is the kernel's, whatever happened after it
            self.refs.took_each(child.ino for _, child, counted in
                                itertools.islice(listing, start_id, sent) if counted)

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        self.internal.refuse_name_change(parent_inode, name)
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
        return self.meta.create(parent, fsname(name), mode, ctx.uid, gid, target=target, rdev=rdev)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        self.internal.refuse_name_change(parent_inode, name)
        with fuse_errors("rmdir"):
            self.meta.rmdir(parent_inode, fsname(name))

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        self.internal.refuse_name_change(parent_inode, name)
        with fuse_errors("unlink"):
            left = self.meta.unlink(parent_inode, fsname(name))
            if left.nlink == 0:
                self.refs.drop_if_unused(left.ino)

    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: Any) -> None:
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        self.internal.refuse_name_change(parent_inode_old, name_old)
        self.internal.refuse_name_change(parent_inode_new, name_new)
        with fuse_errors("rename"):
            replaced = self.meta.rename(parent_inode_old, fsname(name_old), parent_inode_new,
                                        fsname(name_new),
                                        replace=not flags & pyfuse3.RENAME_NOREPLACE)
            reached("mount.renamed")  # committed durably; the caller has no answer yet
            if replaced is not None and replaced.nlink == 0:
                self.refs.drop_if_unused(replaced.ino)

    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        self.internal.refuse_name_change(parent_inode, name)
        with fuse_errors("symlink"):
            return self._entry(self._new_inode(parent_inode, name, stat.S_IFLNK | 0o777, ctx,
                                               target=os.fsdecode(target)))

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        self.internal.refuse_change(inode)
        self.internal.refuse_name_change(new_parent_inode, new_name)
        with fuse_errors("link"):
            try:
                linked = self.meta.link(inode, new_parent_inode, fsname(new_name))
            except NamespaceError as exc:
                if exc.errno == errno.EISDIR:
                    raise pyfuse3.FUSEError(errno.EPERM) from None
                raise
            return self._entry(linked)

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: Any) -> pyfuse3.EntryAttributes:
        self.internal.refuse_name_change(parent_inode, name)
        with fuse_errors("mknod"):  # files, FIFOs, sockets, devices (metadata only, no content)
            return self._entry(self._new_inode(parent_inode, name, mode, ctx, rdev=rdev))

    # -- files ------------------------------------------------------------------------------
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: Any) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self.internal.refuse_change(parent_inode)
        with fuse_errors("create"):
            inode = self._new_inode(parent_inode, name, stat.S_IFREG | (mode & 0o7777), ctx)
            return self.files.created(inode, flags), self._entry(inode)

    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        if self.internal.owns(inode):
            if flags & os.O_ACCMODE != os.O_RDONLY:
                raise pyfuse3.FUSEError(errno.EROFS)  # the mount's answer, not a file to edit
            with fuse_errors("open"):
                await self.undo_views.fetch(self.internal.node(inode))
            return self.files.open_internal(self.internal.read(inode))
        with fuse_errors("open"):
            return await self.files.open(inode, flags)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self.files.read(fh, off, size)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self.files.write(fh, off, buf)

    async def flush(self, fh: int) -> None:
        await self.files.flush(fh)

    async def fsync(self, fh: int, datasync: bool) -> None:
        """Content and every namespace change before it are on disk when this returns."""
        await self.files.commit_handle(fh, "fsync")
        with fuse_errors("fsync"):
            await asyncio.to_thread(self.meta.syncer())

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        with fuse_errors("fsyncdir"):
            await asyncio.to_thread(self.meta.syncer())

    async def release(self, fh: int) -> None:
        await self.files.release(fh)

    # -- extended attributes and statfs -----------------------------------------------------
    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        if self.internal.owns(inode):
            raise pyfuse3.FUSEError(errno.ENODATA)  # internal nodes have no attributes
        with fuse_errors("getxattr"):
            return self.meta.getxattr(inode, fsname(name))

    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any) -> None:
        self.internal.refuse_change(inode)
        with fuse_errors("setxattr"):
            self.meta.setxattr(inode, fsname(name), value)

    async def listxattr(self, inode: int, ctx: Any) -> list[bytes]:
        if self.internal.owns(inode):
            return []
        with fuse_errors("listxattr"):
            return [os.fsencode(name) for name in self.meta.listxattr(inode)]

    async def removexattr(self, inode: int, name: bytes, ctx: Any) -> None:
        self.internal.refuse_change(inode)
        with fuse_errors("removexattr"):
            self.meta.removexattr(inode, fsname(name))

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
