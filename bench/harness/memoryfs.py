"""The least a pyfuse3 file system can do for a small file: names and bytes in a dict.

Run as ``python bench/harness/memoryfs.py MOUNTPOINT``; it serves until unmounted
(``fusermount3 -u MOUNTPOINT``). No durability, no metadata store, no journal, no upload:
what it sustains is what the kernel's FUSE round trips and pyfuse3's Python dispatch alone
allow on this machine, the ceiling of any file system written on pyfuse3
(``bench/smallfile_ceiling.py``). It answers only what a file-per-file writer asks: lookup,
create, write, flush, release, getattr/setattr, mkdir and an empty readdir.
"""

from __future__ import annotations

import asyncio
import errno
import stat
import sys
from typing import Any

import pyfuse3
import pyfuse3.asyncio

ROOT = pyfuse3.ROOT_INODE


class MemoryFS(pyfuse3.Operations):
    def __init__(self) -> None:
        super().__init__()
        self.names: dict[tuple[int, bytes], int] = {}  # (parent, name) -> inode
        self.files: dict[int, bytearray] = {}  # a file's bytes; directories are not in it
        self.next_inode = ROOT + 1

    def attributes(self, inode: int) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        data = self.files.get(inode)
        if data is None:
            attr.st_mode, attr.st_nlink, attr.st_size = stat.S_IFDIR | 0o755, 2, 0
        else:
            attr.st_mode, attr.st_nlink, attr.st_size = stat.S_IFREG | 0o644, 1, len(data)
        attr.st_blksize = 4096
        attr.attr_timeout = attr.entry_timeout = 1.0
        return attr

    def _new(self, parent: int, name: bytes, data: bytearray | None) -> int:
        if (parent, name) in self.names:
            raise pyfuse3.FUSEError(errno.EEXIST)
        inode, self.next_inode = self.next_inode, self.next_inode + 1
        self.names[(parent, name)] = inode
        if data is not None:
            self.files[inode] = data
        return inode

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return self.attributes(inode)

    async def setattr(self, inode: int, attr: Any, fields: Any, fh: Any,
                      ctx: Any) -> pyfuse3.EntryAttributes:
        return self.attributes(inode)

    async def lookup(self, parent: int, name: bytes, ctx: Any = None) -> pyfuse3.EntryAttributes:
        inode = self.names.get((parent, name))
        if inode is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self.attributes(inode)

    async def mkdir(self, parent: int, name: bytes, mode: int,
                    ctx: Any) -> pyfuse3.EntryAttributes:
        return self.attributes(self._new(parent, name, None))

    async def create(self, parent: int, name: bytes, mode: int, flags: int,
                     ctx: Any) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        inode = self._new(parent, name, bytearray())
        return pyfuse3.FileInfo(fh=inode), self.attributes(inode)

    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        return pyfuse3.FileInfo(fh=inode)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        self.files[fh][off:off + len(buf)] = buf
        return len(buf)

    async def flush(self, fh: int) -> None:
        return None

    async def release(self, fh: int) -> None:
        return None

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def opendir(self, inode: int, ctx: Any) -> int:
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        return None

    async def releasedir(self, fh: int) -> None:
        return None


async def serve(mountpoint: str) -> None:
    options = set(pyfuse3.default_options)
    options.add("fsname=bench-memoryfs")
    pyfuse3.init(MemoryFS(), mountpoint, options)
    try:
        await pyfuse3.main()
    finally:
        pyfuse3.close(unmount=False)


if __name__ == "__main__":
    pyfuse3.asyncio.enable()
    asyncio.run(serve(sys.argv[1]))
