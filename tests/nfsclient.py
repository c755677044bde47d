"""A userspace NFSv4 client for tests and bench: libnfs (Debian's libnfs13, of libnfs-utils), by ctypes.

libnfs 4.0 fails to encode an NFSv4 WRITE much over 1 KiB ("Failed to encode COMPOUND4args",
so ``nfs-cp`` of a 4 KiB file fails against any NFSv4 server); writes go in ``WRITE_CHUNK``
pieces. Reads of any size work. Every call raises ``NfsError`` with libnfs's message and the
errno it returned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import stat
from types import TracebackType

WRITE_CHUNK = 1024
READ_CHUNK = 1 << 20


class NfsError(OSError):
    pass


class _Url(ctypes.Structure):
    _fields_ = [("server", ctypes.c_char_p), ("path", ctypes.c_char_p),
                ("file", ctypes.c_char_p)]


class _Stat64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks",
        "atime", "mtime", "ctime", "atime_nsec", "mtime_nsec", "ctime_nsec", "used")]


class _Dirent(ctypes.Structure):
    pass


class _Fh(ctypes.Structure):
    _fields_ = [("len", ctypes.c_int), ("val", ctypes.POINTER(ctypes.c_ubyte))]


_Dirent._fields_ = [("next", ctypes.POINTER(_Dirent)), ("name", ctypes.c_char_p)]


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("nfs") or "libnfs.so.13"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.nfs_init_context.restype = ctypes.c_void_p
    lib.nfs_get_error.restype = ctypes.c_char_p
    lib.nfs_get_error.argtypes = [ctypes.c_void_p]
    lib.nfs_parse_url_dir.restype = ctypes.POINTER(_Url)
    lib.nfs_parse_url_dir.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nfs_destroy_url.argtypes = [ctypes.POINTER(_Url)]
    lib.nfs_destroy_context.argtypes = [ctypes.c_void_p]
    lib.nfs_mount.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.nfs_umount.argtypes = [ctypes.c_void_p]
    lib.nfs_set_autoreconnect.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.nfs_get_fh.restype = ctypes.POINTER(_Fh)
    lib.nfs_get_fh.argtypes = [ctypes.c_void_p]
    lib.nfs_open.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                             ctypes.POINTER(ctypes.c_void_p)]
    lib.nfs_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                               ctypes.POINTER(ctypes.c_void_p)]
    lib.nfs_pwrite.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
                               ctypes.c_uint64, ctypes.c_char_p]
    lib.nfs_pread.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
                              ctypes.c_uint64, ctypes.c_char_p]
    lib.nfs_close.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    for fn in ("nfs_mkdir", "nfs_rmdir", "nfs_unlink"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nfs_rename.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.nfs_chmod.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.nfs_stat64.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(_Stat64)]
    lib.nfs_opendir.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                ctypes.POINTER(ctypes.c_void_p)]
    lib.nfs_readdir.restype = ctypes.POINTER(_Dirent)
    lib.nfs_readdir.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.nfs_closedir.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return lib


_lib: ctypes.CDLL | None = None


class NfsClient:
    """One NFSv4 session as ``uid``:``gid`` (AUTH_SYS): ``NfsClient("nfs://127.0.0.1:PORT/x")``."""

    def __init__(self, url: str, *, uid: int = 65534, gid: int = 65534) -> None:
        global _lib
        if _lib is None:
            _lib = _load()
        self.lib = _lib
        host_port, _, export = url.removeprefix("nfs://").partition("/")
        host, _, port = host_port.partition(":")
        full = (f"nfs://{host}/{export}?version=4&uid={uid}&gid={gid}"
                + (f"&nfsport={port}" if port else ""))
        self.ctx = self.lib.nfs_init_context()
        if not self.ctx:
            raise NfsError(0, "nfs_init_context failed")
        self.lib.nfs_set_autoreconnect(self.ctx, -1)  # across restarts of the server
        parsed = self.lib.nfs_parse_url_dir(self.ctx, full.encode())
        if not parsed:
            self._fail(-22, f"parse {full}")
        try:
            self._check(self.lib.nfs_mount(self.ctx, parsed.contents.server,
                                           parsed.contents.path), f"mount {url}")
        finally:
            self.lib.nfs_destroy_url(parsed)

    def _fail(self, code: int, what: str) -> None:
        message = (self.lib.nfs_get_error(self.ctx) or b"").decode(errors="replace")
        raise NfsError(-code if code < 0 else code, f"{what}: {message}")

    def _check(self, result: int, what: str) -> int:
        if result < 0:
            self._fail(result, what)
        return result

    def close(self) -> None:
        if self.ctx:
            self.lib.nfs_destroy_context(self.ctx)
            self.ctx = None

    def __enter__(self) -> NfsClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        handle = ctypes.c_void_p()
        # libnfs 4.0 creates NFSv4 files exclusively: an existing one is opened and truncated
        created = self.lib.nfs_create(self.ctx, path.encode(), os.O_RDWR | os.O_CREAT, mode,
                                      ctypes.byref(handle))
        if created == -17:
            created = self.lib.nfs_open(self.ctx, path.encode(), os.O_RDWR | os.O_TRUNC,
                                        ctypes.byref(handle))
        self._check(created, f"create {path}")
        try:
            for offset in range(0, len(data), WRITE_CHUNK):
                piece = data[offset:offset + WRITE_CHUNK]
                written = self._check(self.lib.nfs_pwrite(self.ctx, handle, offset, len(piece),
                                                          piece), f"write {path}")
                if written != len(piece):
                    raise NfsError(5, f"write {path}: {written} of {len(piece)} bytes")
        finally:
            self._check(self.lib.nfs_close(self.ctx, handle), f"close {path}")

    def open(self, path: str) -> ctypes.c_void_p:
        """A file opened for reading, held until ``close_file``."""
        handle = ctypes.c_void_p()
        self._check(self.lib.nfs_open(self.ctx, path.encode(), os.O_RDONLY,
                                      ctypes.byref(handle)), f"open {path}")
        return handle

    def pread(self, handle: ctypes.c_void_p, offset: int, count: int) -> bytes:
        buf = ctypes.create_string_buffer(count)
        got = self._check(self.lib.nfs_pread(self.ctx, handle, offset, count, buf), "read")
        return buf.raw[:got]

    def file_handle(self, path: str) -> bytes:
        """The NFS file handle the server gives for ``path`` (what a client keeps)."""
        handle = self.open(path)
        try:
            fh = self.lib.nfs_get_fh(handle).contents
            return bytes(fh.val[:fh.len])
        finally:
            self.close_file(handle)

    def close_file(self, handle: ctypes.c_void_p) -> None:
        self._check(self.lib.nfs_close(self.ctx, handle), "close")

    def read(self, path: str) -> bytes:
        handle = ctypes.c_void_p()
        self._check(self.lib.nfs_open(self.ctx, path.encode(), os.O_RDONLY,
                                      ctypes.byref(handle)), f"open {path}")
        chunks = []
        try:
            offset = 0
            buf = ctypes.create_string_buffer(READ_CHUNK)
            while True:
                got = self._check(self.lib.nfs_pread(self.ctx, handle, offset, READ_CHUNK, buf),
                                  f"read {path}")
                if got == 0:
                    break
                chunks.append(buf.raw[:got])
                offset += got
        finally:
            self.lib.nfs_close(self.ctx, handle)
        return b"".join(chunks)

    def mkdir(self, path: str) -> None:
        self._check(self.lib.nfs_mkdir(self.ctx, path.encode()), f"mkdir {path}")

    def rmdir(self, path: str) -> None:
        self._check(self.lib.nfs_rmdir(self.ctx, path.encode()), f"rmdir {path}")

    def unlink(self, path: str) -> None:
        self._check(self.lib.nfs_unlink(self.ctx, path.encode()), f"unlink {path}")

    def rename(self, old: str, new: str) -> None:
        self._check(self.lib.nfs_rename(self.ctx, old.encode(), new.encode()),
                    f"rename {old} {new}")

    def chmod(self, path: str, mode: int) -> None:
        self._check(self.lib.nfs_chmod(self.ctx, path.encode(), mode), f"chmod {path}")

    def stat(self, path: str) -> tuple[int, int, int]:
        """(mode, size, inode number) of ``path``."""
        st = _Stat64()
        self._check(self.lib.nfs_stat64(self.ctx, path.encode(), ctypes.byref(st)),
                    f"stat {path}")
        return st.mode, st.size, st.ino

    def listdir(self, path: str) -> list[str]:
        handle = ctypes.c_void_p()
        self._check(self.lib.nfs_opendir(self.ctx, path.encode(), ctypes.byref(handle)),
                    f"opendir {path}")
        names = []
        try:
            while True:
                entry = self.lib.nfs_readdir(self.ctx, handle)
                if not entry:
                    break
                name = (entry.contents.name or b"").decode()
                if name not in (".", ".."):
                    names.append(name)
        finally:
            self.lib.nfs_closedir(self.ctx, handle)
        return sorted(names)

    def is_dir(self, path: str) -> bool:
        return stat.S_ISDIR(self.stat(path)[0])
