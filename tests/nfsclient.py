"""A userspace NFSv4 client for tests and bench: libnfs (Debian's libnfs13, of libnfs-utils), by ctypes.

libnfs 4.0 fails to encode an NFSv4 WRITE much over 1 KiB ("Failed to encode COMPOUND4args",
so ``nfs-cp`` of a 4 KiB file fails against any NFSv4 server); writes go in ``WRITE_CHUNK``
pieces. Reads of any size work. Every call raises ``NfsError`` with libnfs's message and the
errno it returned.

``stream`` reads as a kernel client does: several READs in flight at once (libnfs's async
calls driven by ``poll`` on its socket), each as large as the server's maximum (the read
size libnfs took from the server at mount, ``nfs_get_readmax``). A client keeping one READ
in flight waits a round trip per READ and the server idles meanwhile; a kernel client's
read-ahead keeps several outstanding.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import stat
from collections.abc import Iterator
from types import TracebackType

WRITE_CHUNK = 1024
READ_CHUNK = 1 << 20
READS_IN_FLIGHT = 8

# void (*nfs_cb)(int err, struct nfs_context *nfs, void *data, void *private_data)
_NfsCallback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_void_p)


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
    lib.nfs_pread_async.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
                                    ctypes.c_uint64, _NfsCallback, ctypes.c_void_p]
    lib.nfs_fstat64.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_Stat64)]
    for fn in ("nfs_get_fd", "nfs_which_events"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
    lib.nfs_service.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.nfs_get_readmax.restype = ctypes.c_uint64
    lib.nfs_get_readmax.argtypes = [ctypes.c_void_p]
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
        self._callbacks: list[object] = []
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

    def read_size(self) -> int:
        """The largest READ the server takes (its maximum, learnt by libnfs at mount)."""
        return int(self.lib.nfs_get_readmax(self.ctx)) or READ_CHUNK

    def stream(self, path: str, *, in_flight: int = READS_IN_FLIGHT,
               chunk: int | None = None) -> Iterator[bytes]:
        """The bytes of ``path`` in order, in pieces, read with up to ``in_flight`` READs of
        ``chunk`` bytes (default: the server's maximum) outstanding at once. The size is the
        file's at open; a short read is followed by a READ of the rest of its range."""
        chunk = chunk or self.read_size()
        handle = self.open(path)
        try:
            st = _Stat64()
            self._check(self.lib.nfs_fstat64(self.ctx, handle, ctypes.byref(st)),
                        f"fstat {path}")
            yield from self._pipelined(handle, st.size, chunk, max(1, in_flight), path)
        finally:
            self.lib.nfs_close(self.ctx, handle)

    def _pipelined(self, handle: ctypes.c_void_p, size: int, chunk: int, in_flight: int,
                   path: str) -> Iterator[bytes]:
        ranges = [(offset, min(chunk, size - offset)) for offset in range(0, size, chunk)]
        ranges.reverse()  # popped from the end: in offset order
        asked: dict[int, tuple[int, int]] = {}  # request id -> (offset, count)
        done: dict[int, bytes] = {}  # offset -> bytes, until every byte before it is out
        failures: list[str] = []
        ids = iter(range(1, 1 << 62))

        def finished(err: int, _nfs: int | None, data: int | None, private: int | None) -> None:
            offset, count = asked.pop(private or 0)
            if err < 0:
                failures.append(ctypes.string_at(data).decode(errors="replace") if data
                                else f"error {err}")
                return
            done[offset] = ctypes.string_at(data, err) if err and data else b""
            if 0 < err < count:
                ranges.append((offset + err, count - err))  # the rest, asked next

        callback = _NfsCallback(finished)
        self._callbacks.append(callback)  # alive as long as the context: libnfs may call it
        position, end = 0, size
        try:
            while position < end:
                while ranges and len(asked) < in_flight:
                    offset, count = ranges.pop()
                    request = next(ids)
                    asked[request] = (offset, count)
                    if self.lib.nfs_pread_async(self.ctx, handle, offset, count, callback,
                                                request) < 0:
                        asked.pop(request)
                        self._fail(-5, f"read {path}")
                if failures:
                    raise NfsError(5, f"read {path}: {failures[0]}")
                while position in done:
                    piece = done.pop(position)
                    if not piece:  # the file ended early (truncated since it was opened)
                        end = position
                        break
                    position += len(piece)
                    yield piece
                if position < end:
                    if not asked:
                        raise NfsError(5, f"read {path}: stopped at {position} of {end} bytes")
                    self._service(f"read {path}")
        finally:
            while asked and not failures:  # READs still out, when the reader stops early
                self._service(f"read {path}")

    def _service(self, what: str) -> None:
        """Wait for libnfs's socket and let it process what came (callbacks run here)."""
        fd = self.lib.nfs_get_fd(self.ctx)
        poller = select.poll()
        poller.register(fd, self.lib.nfs_which_events(self.ctx))
        events = poller.poll(30_000)
        if not events:
            raise NfsError(110, f"{what}: no answer in 30 s")
        self._check(self.lib.nfs_service(self.ctx, events[0][1]), what)

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
