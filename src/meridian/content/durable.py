"""Crash-safe file primitives: fsync a folder, make a folder durably, replace a file atomically.

The pattern is restic's and borg's: temp file in the target folder → write → fsync → rename
(→ fsync the folder when the new name itself must survive a power loss).
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from meridian.errors import ContentError, MeridianError, NoSpace

TEMP_PREFIX = ".tmp-"  # every temp file a volume writes starts with this; start-up removes them
# A site's files are its own (docs/operations.md, "Private data"): folders 0700, files 0600,
# and content files read-only to their owner, whom the mount's permission checks stand for.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
CONTENT_FILE_MODE = 0o400


def is_temp_name(name: str) -> bool:
    """True for the names of temp files that a crash may have left behind."""
    return name.startswith(TEMP_PREFIX)


def temp_path_beside(target: Path) -> Path:
    """A fresh temp path in ``target``'s folder (same file system, so a rename is atomic)."""
    return target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}-{target.name}")


def fsync_dir(path: Path) -> None:
    """fsync a folder, making the creation, rename or removal of its entries durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dir_durably(path: Path) -> None:
    """Create ``path`` (one level) if missing and fsync its parent when it was created.

    Idempotent; safe to call from several threads at once.
    """
    try:
        os.mkdir(path, PRIVATE_DIR_MODE)
    except FileExistsError:
        return
    fsync_dir(path.parent)


def replace_file_atomically(target: Path, data: bytes, *, durable_name: bool = False) -> None:
    """Replace ``target`` with ``data`` so that readers (and a restart) see either the old
    file or the new one, never a mix: temp → write → fsync → rename.

    ``durable_name`` also fsyncs the folder, so the new version survives a power loss; without
    it a power loss may bring back the previous version. Raises OSError; the temp file is
    removed on failure.
    """
    temp = temp_path_beside(target)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, target)
    except BaseException:
        unlink_if_present(temp)
        raise
    if durable_name:
        fsync_dir(target.parent)


def seal_file(path: Path) -> None:
    """fsync ``path`` and make it read-only (to its owner only): a content file is never
    written again."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.fchmod(fd, CONTENT_FILE_MODE)
    finally:
        os.close(fd)


def ready_to_rename(src: Path, dest: Path, chunk_size: int = 1 << 20) -> Path:
    """A read-only, fsync'd file with ``src``'s bytes that can be renamed to ``dest``: ``src``
    itself when it is on ``dest``'s file system, else a temp copy beside ``dest`` (the caller
    removes ``src`` after the rename). Raises OSError; a temp copy is removed on failure."""
    if os.stat(src).st_dev == os.stat(dest.parent).st_dev:
        seal_file(src)
        return src
    temp = temp_path_beside(dest)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with open(src, "rb") as reader, open(fd, "wb") as writer:
            while chunk := reader.read(chunk_size):
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        os.chmod(temp, CONTENT_FILE_MODE)
    except BaseException:
        unlink_if_present(temp)
        raise
    return temp


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (looping over short writes). Raises OSError."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def pread_exact(fd: int, size: int, offset: int) -> bytes:
    """Read up to ``size`` bytes at ``offset``; shorter only at end of file."""
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = os.pread(fd, remaining, offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def unlink_if_present(path: Path) -> bool:
    """Remove a file; True if it was there. Idempotent."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def volume_error(exc: OSError, action: str) -> MeridianError:
    """Translate an OSError from a volume's disk: ENOSPC/EDQUOT become NoSpace (the disk filled
    before the volume's capacity did), anything else ContentError (EIO to a reader)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(f"{action}: the disk is full ({exc.strerror})")
    return ContentError(f"{action}: {exc}")
