"""Content hashes: BLAKE3 hex, the same for bytes, paths and descriptors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meridian.content.hashing import (
    CHUNK_SIZE,
    HASH_NAME,
    THREADED_FROM,
    check_hash,
    hash_bytes,
    hash_file,
    new_hasher,
)
from meridian.errors import BadPath

# BLAKE3 of the empty input and of b"abc" (from the BLAKE3 reference test vectors).
EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
ABC = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"


def test_known_values() -> None:
    assert HASH_NAME == "blake3"
    assert hash_bytes(b"") == EMPTY
    assert hash_bytes(b"abc") == ABC


def test_incremental_hasher_matches_one_shot() -> None:
    hasher = new_hasher()
    hasher.update(b"a")
    hasher.update(b"bc")
    assert hasher.hexdigest() == ABC
    threaded = new_hasher(threaded=True)
    threaded.update(b"abc")
    assert threaded.hexdigest() == ABC


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 17])
def test_hash_file_by_path_and_fd(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert hash_file(path) == hash_bytes(data)
    assert hash_file(str(path)) == hash_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 5, os.SEEK_SET)
        assert hash_file(fd) == hash_bytes(data)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 5  # position untouched, fd still open
    finally:
        os.close(fd)


def test_large_file_uses_the_same_hash(tmp_path: Path) -> None:
    data = os.urandom(THREADED_FROM + 12345)
    path = tmp_path / "big"
    path.write_bytes(data)
    assert hash_file(path) == hash_bytes(data)


def test_check_hash() -> None:
    assert check_hash(ABC) == ABC
    for bad in [ABC.upper(), ABC[:-1], ABC + "0", "../" + ABC[3:], ABC[:-1] + "g", "", None, 5]:
        with pytest.raises(BadPath):
            check_hash(bad)
    with pytest.raises(BadPath):
        check_hash(ABC + "\n")
