"""Content hashes: BLAKE3, written as 64 lower-case hex characters.

Every content on every volume is named by this hash; nothing else in the package computes one.
"""

from __future__ import annotations

import os
import re

import blake3

from meridian.errors import BadPath

HASH_NAME = "blake3"
HASH_HEX_LENGTH = 64
CHUNK_SIZE = 1 << 20  # files are hashed in 1 MiB reads
THREADED_FROM = 16 << 20  # files at least this large use blake3's thread pool

_HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


def new_hasher(*, threaded: bool = False) -> blake3.blake3:
    """A fresh incremental hasher. ``threaded`` lets blake3 use several threads per update,
    worth it only for updates of megabytes."""
    if threaded:
        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    return blake3.blake3()


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """The content hash of ``data``."""
    return blake3.blake3(data).hexdigest()


def hash_file(source: str | os.PathLike[str] | int) -> str:
    """The content hash of a whole file, read in 1 MiB chunks.

    ``source`` is a path or an open file descriptor; a descriptor is read with ``pread`` from
    offset 0, so its file position is left alone and it is not closed. Raises OSError from the
    file system (callers translate it).
    """
    if isinstance(source, int):
        return _hash_fd(source)
    fd = os.open(source, os.O_RDONLY)
    try:
        return _hash_fd(fd)
    finally:
        os.close(fd)


def _hash_fd(fd: int) -> str:
    size = os.fstat(fd).st_size
    hasher = new_hasher(threaded=size >= THREADED_FROM)
    update_from_fd(hasher, fd, 0, size)
    return hasher.hexdigest()


def hash_blocks(source: str | os.PathLike[str], block_size: int) -> tuple[str, list[str]]:
    """The content hash of a whole file and the hash of each of its ``block_size`` blocks,
    in one pass (each byte read once, fed to two hashers). A block list is only as good as
    the file it came from: a caller compares the first value with the name it expects before
    trusting the second. Raises OSError from the file system."""
    if block_size < 1:
        raise ValueError(f"block size {block_size} is not positive")
    fd = os.open(source, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        whole = new_hasher(threaded=size >= THREADED_FROM)
        blocks: list[str] = []
        for start in range(0, size, block_size):
            block = new_hasher()
            offset, end = start, min(size, start + block_size)
            while offset < end:
                chunk = os.pread(fd, min(CHUNK_SIZE, end - offset), offset)
                if not chunk:
                    raise OSError(f"{source}: shorter than its size while hashing")
                whole.update(chunk)
                block.update(chunk)
                offset += len(chunk)
            blocks.append(block.hexdigest())
        return whole.hexdigest(), blocks
    finally:
        os.close(fd)


def update_from_fd(hasher: blake3.blake3, fd: int, start: int, end: int) -> int:
    """Feed bytes ``[start, end)`` of ``fd`` to ``hasher`` (pread, 1 MiB at a time).

    Returns the offset reached, which is less than ``end`` only if the file is shorter.
    """
    offset = start
    while offset < end:
        chunk = os.pread(fd, min(CHUNK_SIZE, end - offset), offset)
        if not chunk:
            break
        hasher.update(chunk)
        offset += len(chunk)
    return offset


def check_hash(value: object) -> str:
    """Return ``value`` if it is a content hash (64 lower-case hex characters).

    Raises BadPath otherwise, so a hash from outside can never climb out of a volume's folders.
    """
    if not isinstance(value, str) or _HASH_PATTERN.fullmatch(value) is None:
        raise BadPath(f"not a {HASH_NAME} content hash (64 lower-case hex characters): {value!r}")
    return value
