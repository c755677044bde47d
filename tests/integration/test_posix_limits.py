"""The edges of POSIX through a real mount: long names, huge sizes, fallocate."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable

from tests.sitehelpers import RunningSite

LONG = "n" * 256  # one byte past NAME_MAX
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 0x01, 0x02, 0x10


def _errno_of(action: Callable[[], object]) -> int | None:
    try:
        action()
    except OSError as exc:
        return exc.errno
    return None


def test_every_call_given_a_name_past_255_bytes_gets_enametoolong(file_site: RunningSite) -> None:
    m = file_site.mount
    (m / "file").write_bytes(b"x")
    (m / "dir").mkdir()
    for long in (m / LONG, m / "dir" / ("\u00e9" * 128), m / ("n" * 1100)):  # 256 B, 256 B, 1100 B
        calls: dict[str, Callable[[], object]] = {
            "stat": lambda: os.stat(long),
            "lstat": lambda: os.lstat(long),
            "open": lambda: open(long, "rb"),
            "creat": lambda: open(long, "wb"),
            "chmod": lambda: os.chmod(long, 0o600),
            "chown": lambda: os.chown(long, 1, 1),
            "lchown": lambda: os.lchown(long, 1, 1),
            "link to": lambda: os.link(m / "file", long),
            "link from": lambda: os.link(long, m / "other"),
            "rename to": lambda: os.rename(m / "file", long),
            "rename from": lambda: os.rename(long, m / "other"),
            "rmdir": lambda: os.rmdir(long),
            "unlink": lambda: os.unlink(long),
            "truncate": lambda: os.truncate(long, 0),
            "mkdir": lambda: os.mkdir(long),
            "symlink": lambda: os.symlink("file", long),
            "mknod": lambda: os.mkfifo(long),
            "utime": lambda: os.utime(long),
            "listxattr": lambda: os.listxattr(long),
        }
        got = {name: _errno_of(call) for name, call in calls.items()}
        wrong = {name: errno.errorcode.get(code, code) if code else "succeeded"
                 for name, code in got.items() if code != errno.ENAMETOOLONG}
        assert not wrong, f"{len(os.fsencode(long.name))}-byte name: {wrong}"
    assert sorted(os.listdir(m)) == ["dir", "file"] and os.listdir(m / "dir") == []
    name_255 = "n" * 255  # the longest name is fine
    (m / name_255).write_bytes(b"ok")
    os.rename(m / name_255, m / "dir" / name_255)
    assert (m / "dir" / name_255).read_bytes() == b"ok"


def test_sizes_past_the_largest_file_get_efbig_and_change_nothing(file_site: RunningSite) -> None:
    path = file_site.mount / "big"
    path.write_bytes(b"head")
    before = os.stat(path)
    for size in (999_999_999_999_999, (1 << 63) - 1):
        assert _errno_of(lambda: os.truncate(path, size)) == errno.EFBIG
        with open(path, "r+b") as f:
            assert _errno_of(lambda: os.ftruncate(f.fileno(), size)) == errno.EFBIG
            assert os.fstat(f.fileno()).st_ctime_ns == before.st_ctime_ns  # a failed ftruncate
        after = os.stat(path)  # stat keeps working
        assert (after.st_size, after.st_ctime_ns, after.st_mtime_ns) == \
               (4, before.st_ctime_ns, before.st_mtime_ns)
    with open(path, "r+b") as f:  # a write that would end past the limit
        assert _errno_of(lambda: os.pwrite(f.fileno(), b"x", 999_999_999_999_999)) == errno.EFBIG
    assert path.read_bytes() == b"head"


def test_sizes_below_the_limit_are_sparse_files_that_read_as_zeros(file_site: RunningSite) -> None:
    path = file_site.mount / "sparse"
    path.write_bytes(b"head")
    size = 1024**3 + 5  # committed whole: kept small enough to hash in a second or two
    os.truncate(path, size)  # by path: committed at once
    assert os.stat(path).st_size == size
    with open(path, "rb") as f:
        assert f.read(8) == b"head\0\0\0\0"
        f.seek(size - 10)
        assert f.read() == b"\0" * 10
    with open(path, "r+b") as f:  # and through a descriptor, shrinking
        os.ftruncate(f.fileno(), 2)
        assert os.fstat(f.fileno()).st_size == 2
    assert path.read_bytes() == b"he" and os.stat(path).st_size == 2


def _fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if libc.fallocate(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def test_fallocate_is_refused_with_eopnotsupp_and_posix_fallocate_still_works(
        file_site: RunningSite) -> None:
    """pyfuse3 has no fallocate handler: libfuse answers FUSE_FALLOCATE with ENOSYS, which
    the kernel turns into EOPNOTSUPP for every mode (and remembers). A refusal, never a
    pretend success; glibc's posix_fallocate() then falls back to writing the range, which
    must leave the file right."""
    path = file_site.mount / "prealloc"
    path.write_bytes(b"0123456789")
    with open(path, "r+b") as f:
        for mode in (0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
                     FALLOC_FL_ZERO_RANGE):
            assert _errno_of(lambda: _fallocate(f.fileno(), mode, 2, 4)) == errno.EOPNOTSUPP, mode
        assert os.fstat(f.fileno()).st_size == 10
        os.posix_fallocate(f.fileno(), 5, 3 * 1024 * 1024)  # emulated by glibc: grows the file
        assert os.fstat(f.fileno()).st_size == 5 + 3 * 1024 * 1024
    data = path.read_bytes()
    assert data[:10] == b"0123456789" and data[10:] == b"\0" * (len(data) - 10)
    assert os.stat(path).st_size == 5 + 3 * 1024 * 1024

