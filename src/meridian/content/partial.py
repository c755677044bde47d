"""Partial instances: content being fetched, block by block, in any order, from many threads.

Each lives as ``partial/<h>.data`` (a sparse file of the full size) and ``partial/<h>.ranges``
(which bytes are present). A block is pwritten and fdatasync'd *before* its range is recorded,
and the ``.ranges`` file is replaced atomically after every completed write, so a restart
keeps every block that was fully fetched and never trusts one that was not. When every byte is
present the data file is verified against its hash and renamed into ``content/``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from meridian.content.capacity import CapacityGuard
from meridian.content.durable import (
    fsync_dir,
    pwrite_all,
    replace_file_atomically,
    seal_file,
    unlink_if_present,
    volume_error,
)
from meridian.content.hashing import hash_file
from meridian.content.index import IndexEntry, InstanceIndex
from meridian.content.layout import VolumeLayout, encode_partial_record
from meridian.content.ranges import RangeSet
from meridian.errors import ContentError

# ref(hash): a context manager holding an open handle on the hash (so it is not evicted)
HoldRef = Callable[[str], AbstractContextManager[None]]


class PartialInstances:
    """The partial-instance operations of one volume; shares its lock, index and capacity
    guard. Thread-safe. Lock order: an entry's ``finish_lock``, then its ``ranges_lock``,
    then the volume's lock."""

    def __init__(
        self,
        *,
        layout: VolumeLayout,
        lock: threading.Lock,
        index: InstanceIndex,
        guard: CapacityGuard,
        hold_ref: HoldRef,
    ) -> None:
        self._layout = layout
        self._lock = lock
        self._index = index
        self._guard = guard
        self._hold_ref = hold_ref
        self._create_lock = threading.Lock()

    def begin(self, content_hash: str, size: int) -> None:
        """Start a partial instance of ``size`` bytes with nothing present. Idempotent: a
        no-op if the content is already partial or complete here. Reserves nothing (the
        blocks reserve as they arrive). Raises ContentError if the volume already holds this
        hash with another size."""
        if size < 0:
            raise ValueError(f"negative size {size}")
        with self._create_lock:
            if self._existing(content_hash, size):
                return
            data_path = self._layout.partial_data_path(content_hash)
            ranges_path = self._layout.partial_ranges_path(content_hash)
            try:
                fd = os.open(data_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.ftruncate(fd, size)  # sparse: holes take no room
                    os.fsync(fd)
                finally:
                    os.close(fd)
                replace_file_atomically(ranges_path, encode_partial_record(size, RangeSet()))
            except OSError as exc:
                unlink_if_present(ranges_path)
                unlink_if_present(data_path)
                raise volume_error(exc, f"creating partial instance {content_hash}") from exc
            with self._lock:
                if self._index.get(content_hash) is None:
                    self._index.add(content_hash, size, RangeSet())
                    return
            # committed meanwhile: the complete instance wins
            unlink_if_present(ranges_path)
            unlink_if_present(data_path)

    def write(self, content_hash: str, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Store one block at ``offset``, then record it as present (durably, see the module
        docstring). Safe from many threads at once, blocks in any order, a block written twice
        is harmless. A no-op if the content is already complete here. Reserves room for the
        bytes not yet present first: NoSpace if the volume cannot make it, nothing written.
        Raises ContentError if there is no partial instance (call :meth:`begin` first) or the
        block reaches outside the content."""
        end = offset + len(data)
        with self._hold_ref(content_hash):
            with self._lock:
                entry = self._require(content_hash)
                if entry.ranges is None:
                    return
                if offset < 0 or end > entry.size:
                    raise ContentError(
                        f"block [{offset}, {end}) is outside {content_hash} ({entry.size} bytes)"
                    )
                new_bytes = sum(b - a for a, b in entry.ranges.missing(offset, end))
                self._index.touch(entry)
            if not data:
                return
            self._guard.hold_room(new_bytes)
            recorded = False
            try:
                self._write_block(content_hash, offset, data)
                with self._lock:
                    if self._index.get(content_hash) is entry and entry.ranges is not None:
                        self._index.record(entry, offset, end)
                        recorded = True
                    self._index.reserved_bytes -= new_bytes
            except BaseException:
                if not recorded:
                    self._guard.release(new_bytes)
                raise
            if recorded:
                self._save_ranges(entry)

    def finish(self, content_hash: str) -> bool:
        """If every byte is present, verify the data against ``content_hash`` and make it the
        complete instance (crash-safe: fsync, rename into ``content/``, fsync the folder),
        then drop the ``.ranges`` file; return True. Return False while bytes are missing.
        Idempotent (True once complete). On a hash mismatch the partial instance is
        discarded and ContentError raised; ContentError also if there is no instance."""
        with self._hold_ref(content_hash):
            with self._lock:
                entry = self._require(content_hash)
            if entry.ranges is None:
                return True
            with entry.finish_lock:
                with self._lock:
                    current = self._require(content_hash)
                    if current is not entry or entry.ranges is None:
                        return current.ranges is None
                    if entry.ranges.total() < entry.size:
                        return False
                self._verify_and_install(entry)
                return True

    def _verify_and_install(self, entry: IndexEntry) -> None:
        content_hash = entry.hash
        data_path = self._layout.partial_data_path(content_hash)
        try:
            actual = hash_file(data_path)
        except OSError as exc:
            raise volume_error(exc, f"hashing partial instance {content_hash}") from exc
        if actual != content_hash:
            self.discard(entry)
            raise ContentError(
                f"partial instance {content_hash} hashes to {actual}: corrupt, discarded"
            )
        try:
            seal_file(data_path)
            dest = self._layout.ready_content_path(content_hash)
            with self._lock:
                installed = self._index.get(content_hash) is entry
                if installed:
                    os.rename(data_path, dest)
                    self._index.make_complete(entry)
            if installed:
                fsync_dir(dest.parent)
            with entry.ranges_lock:
                unlink_if_present(self._layout.partial_ranges_path(content_hash))
                if not installed:
                    unlink_if_present(data_path)  # a commit put the complete instance in place
        except OSError as exc:
            raise volume_error(exc, f"installing partial instance {content_hash}") from exc

    def discard(self, entry: IndexEntry) -> None:
        """Delete a partial instance's files (``.ranges`` first), then forget it. Idempotent."""
        with entry.ranges_lock, self._lock:
            if self._index.get(entry.hash) is not entry or entry.ranges is None:
                return
            self._guard.delete_locked(entry)

    def delete_files(self, entry: IndexEntry) -> None:
        """Delete the files of a partial entry the index no longer holds (replaced by a
        complete instance). Idempotent."""
        with entry.ranges_lock:
            unlink_if_present(self._layout.partial_ranges_path(entry.hash))
            unlink_if_present(self._layout.partial_data_path(entry.hash))

    def _existing(self, content_hash: str, size: int) -> bool:
        with self._lock:
            entry = self._index.get(content_hash)
            if entry is None:
                return False
            if entry.size != size:
                raise ContentError(
                    f"{content_hash} is {entry.size} bytes on this volume, not {size}"
                )
            return True

    def _require(self, content_hash: str) -> IndexEntry:
        entry = self._index.get(content_hash)
        if entry is None:
            raise ContentError(f"no instance of {content_hash} on this volume: begin it first")
        return entry

    def _write_block(
        self, content_hash: str, offset: int, data: bytes | bytearray | memoryview
    ) -> None:
        try:
            fd = os.open(self._layout.partial_data_path(content_hash), os.O_WRONLY)
        except FileNotFoundError as exc:
            raise ContentError(f"partial instance {content_hash} went away") from exc
        except OSError as exc:
            raise volume_error(exc, f"opening partial instance {content_hash}") from exc
        try:
            pwrite_all(fd, data, offset)
            os.fdatasync(fd)
        except OSError as exc:
            raise volume_error(exc, f"writing partial instance {content_hash}") from exc
        finally:
            os.close(fd)

    def _save_ranges(self, entry: IndexEntry) -> None:
        """Write the entry's present ranges to its ``.ranges`` file unless a newer save
        already did. Safe from many threads: saves of one entry take turns."""
        with entry.ranges_lock:
            with self._lock:
                if self._index.get(entry.hash) is not entry or entry.ranges is None:
                    return
                if entry.saved_version >= entry.ranges_version:
                    return
                version = entry.ranges_version
                payload = encode_partial_record(entry.size, entry.ranges)
            try:
                replace_file_atomically(self._layout.partial_ranges_path(entry.hash), payload)
            except OSError as exc:
                raise volume_error(exc, f"recording ranges of {entry.hash}") from exc
            entry.saved_version = version
