"""File handles of the mount outlive a restart of the site, as NFS servers need.

NFS servers (nfs-ganesha's FSAL VFS, the kernel's nfsd) hand clients ``name_to_handle_at``
handles and turn them back into files with ``open_by_handle_at``. After the site restarts,
the kernel no longer has the inode cached and asks the mount to look up "." in it by number:
the handle must reach the same file, and a handle of a removed file must be ESTALE, never
another file.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

import pytest

from tests.sitehelpers import RunningSite

AT_FDCWD = -100
MAX_HANDLE_SZ = 128
_libc = ctypes.CDLL(None, use_errno=True)


class _FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ)]


def handle_of(path: Path) -> _FileHandle:
    handle = _FileHandle()
    handle.handle_bytes = MAX_HANDLE_SZ
    mount_id = ctypes.c_int()
    if _libc.name_to_handle_at(AT_FDCWD, os.fsencode(path), ctypes.byref(handle),
                               ctypes.byref(mount_id), 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(path))
    return handle


def open_by_handle(mount: Path, handle: _FileHandle, flags: int = os.O_RDONLY) -> int:
    mount_fd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd: int = _libc.open_by_handle_at(mount_fd, ctypes.byref(handle), flags)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return fd
    finally:
        os.close(mount_fd)


def test_handles_reach_the_same_files_after_a_restart(file_site: RunningSite) -> None:
    mount = file_site.mount
    (mount / "shots").mkdir()
    plate = mount / "shots" / "plate.exr"
    plate.write_bytes(b"plate" * 1000)
    gone = mount / "shots" / "gone.exr"
    gone.write_bytes(b"gone")
    handles = {name: handle_of(mount / name)
               for name in ("shots", "shots/plate.exr", "shots/gone.exr")}

    file_site.stop()
    file_site.start()  # a new mount: the kernel has none of these inodes cached

    fd = open_by_handle(mount, handles["shots/plate.exr"])
    with os.fdopen(fd, "rb") as f:
        assert f.read() == b"plate" * 1000
    fd = open_by_handle(mount, handles["shots"], os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert sorted(os.listdir(fd)) == ["gone.exr", "plate.exr"]
    finally:
        os.close(fd)

    gone.unlink()
    (mount / "shots" / "new.exr").write_bytes(b"a new file, maybe a reused number")
    with pytest.raises(OSError) as exc:
        os.close(open_by_handle(mount, handles["shots/gone.exr"]))
    assert exc.value.errno == errno.ESTALE

    file_site.stop()
    file_site.start()
    with pytest.raises(OSError) as exc:
        os.close(open_by_handle(mount, handles["shots/gone.exr"]))
    assert exc.value.errno == errno.ESTALE
    fd = open_by_handle(mount, handles["shots/plate.exr"])
    with os.fdopen(fd, "rb") as f:
        assert f.read(5) == b"plate"
