"""Staging files: where the mount writes a file's new bytes until close commits them.

A staging file lives in ``staging/`` under a random name; nothing in it is acknowledged, so a
restart removes it. It keeps a running BLAKE3 hash while the file is written front to back,
so committing such a file does not read it a second time.
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Callable
from pathlib import Path

from meridian.content.durable import (
    CONTENT_FILE_MODE,
    pread_exact,
    pwrite_all,
    unlink_if_present,
    volume_error,
)
from meridian.content.hashing import hash_file, new_hasher, update_from_fd
from meridian.content.records import CommittedContent
from meridian.errors import ContentError

# hold_room(nbytes): make room on the volume and count nbytes as reserved (raises NoSpace).
HoldRoom = Callable[[int], None]
# settle(held, delta): release ``held`` reserved bytes and add ``delta`` to the staging total.
SettleStaging = Callable[[int, int], None]
# install(hash, size, path): move a sealed staging file into the content store.
InstallContent = Callable[[str, int, Path], CommittedContent]


class _State(enum.Enum):
    WRITABLE = "writable"
    SEALED = "sealed"  # hashed, fsync'd, read-only: waiting for (or retrying) its install
    COMMITTED = "committed"
    DISCARDED = "discarded"


class StagingFile:
    """One file being written. Made by :meth:`LocalVolume.new_staging`.

    ``path`` and ``fd`` (open read-write; closed once committed or discarded) are the file;
    ``size`` is its length. Every method is thread-safe (one lock per staging file, taken
    before the volume's lock). Growth is reserved on the volume before any byte is written,
    so a refused write (NoSpace) leaves the file exactly as it was. OSErrors from the disk are
    raised as NoSpace (disk full) or ContentError.
    """

    def __init__(self, path: Path, *, hold_room: HoldRoom, settle: SettleStaging) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._hold_room = hold_room
        self._settle = settle
        self._lock = threading.Lock()
        self._size = 0
        self._state = _State.WRITABLE
        self._hasher = new_hasher()  # hash of bytes [0, _hashed_upto), unchanged since; or None
        self._hasher_valid = True
        self._hashed_upto = 0
        self._sealed_hash = ""
        self._committed: CommittedContent | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashed_upto(self) -> int:
        """How many leading bytes the running hash covers; 0 once a write went back."""
        return self._hashed_upto if self._hasher_valid else 0

    @property
    def committed(self) -> CommittedContent | None:
        """What commit made of this file, or None if it was not committed."""
        return self._committed

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        """Write ``data`` at ``offset`` (a hole is left if ``offset`` is past the end) and
        return its length. Raises NoSpace before writing anything if the volume cannot make
        room for the growth, ContentError once the file is committed or discarded."""
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        length = len(data)
        with self._lock:
            self._require_writable()
            if length == 0:
                return 0
            growth = max(0, offset + length - self._size)
            self._hold_room(growth)
            try:
                pwrite_all(self.fd, data, offset)
            except OSError as exc:
                self._resync_after_failure(growth)
                raise volume_error(exc, f"writing staging file {self.path.name}") from exc
            self._settle(growth, growth)
            self._size += growth
            self._advance_hash(offset, data)
            return length

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer at the end of the file)."""
        if offset < 0 or size < 0:
            raise ValueError(f"bad read of {size} bytes at {offset}")
        with self._lock:
            if self._state in (_State.COMMITTED, _State.DISCARDED):
                raise ContentError(f"staging file {self.path.name} is {self._state.value}")
            try:
                return pread_exact(self.fd, min(size, max(0, self._size - offset)), offset)
            except OSError as exc:
                raise volume_error(exc, f"reading staging file {self.path.name}") from exc

    def truncate(self, size: int) -> None:
        """Set the length to ``size`` (zeros when growing). Growth is reserved first (NoSpace
        leaves the file unchanged). Idempotent."""
        if size < 0:
            raise ValueError(f"negative size {size}")
        with self._lock:
            self._require_writable()
            growth = max(0, size - self._size)
            self._hold_room(growth)
            try:
                os.ftruncate(self.fd, size)
            except OSError as exc:
                self._resync_after_failure(growth)
                raise volume_error(exc, f"truncating staging file {self.path.name}") from exc
            self._settle(growth, size - self._size)
            self._size = size
            if size < self._hashed_upto:
                self._hasher_valid = False

    def discard(self) -> None:
        """Delete the file and give its bytes back to the volume. Idempotent; a no-op after a
        successful commit."""
        with self._lock:
            if self._state in (_State.COMMITTED, _State.DISCARDED):
                return
            self._state = _State.DISCARDED
            os.close(self.fd)
            unlink_if_present(self.path)
            self._settle(0, -self._size)
            self._size = 0

    def commit_with(self, install: InstallContent) -> CommittedContent:
        """Seal the file (finish the hash, fsync, make it read-only) and hand it to
        ``install``, which moves it into the content store and takes its bytes off the staging
        total. Idempotent: a committed file returns its first result. If ``install`` raises,
        the file stays sealed (no more writes) and commit may be retried or the file discarded.
        Raises ContentError if the file was discarded."""
        with self._lock:
            if self._committed is not None:
                return self._committed
            if self._state is _State.DISCARDED:
                raise ContentError(f"staging file {self.path.name} was discarded")
            if self._state is _State.WRITABLE:
                try:
                    self._sealed_hash = self._finish_hash()
                    os.fsync(self.fd)
                    os.fchmod(self.fd, CONTENT_FILE_MODE)
                except OSError as exc:
                    raise volume_error(exc, f"sealing staging file {self.path.name}") from exc
                self._state = _State.SEALED
            result = install(self._sealed_hash, self._size, self.path)
            os.close(self.fd)
            self._state = _State.COMMITTED
            self._committed = result
            return result

    def _require_writable(self) -> None:
        if self._state is not _State.WRITABLE:
            raise ContentError(f"staging file {self.path.name} is {self._state.value}")

    def _advance_hash(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if not self._hasher_valid:
            return
        if offset == self._hashed_upto:
            self._hasher.update(data)
            self._hashed_upto += len(data)
        elif offset < self._hashed_upto:
            self._hasher_valid = False  # bytes already hashed may have changed
        # a write past _hashed_upto leaves the hashed prefix alone; commit reads the rest

    def _finish_hash(self) -> str:
        if not self._hasher_valid:
            return hash_file(self.fd)
        reached = update_from_fd(self._hasher, self.fd, self._hashed_upto, self._size)
        if reached != self._size:
            return hash_file(self.fd)  # the file is shorter than we think: trust the file
        self._hashed_upto = reached
        return self._hasher.hexdigest()

    def _resync_after_failure(self, held: int) -> None:
        """After a failed write or truncate, count whatever length the file now has."""
        try:
            actual = os.fstat(self.fd).st_size
        except OSError:
            actual = self._size
        self._settle(held, actual - self._size)
        self._size = actual
        self._hasher_valid = False
