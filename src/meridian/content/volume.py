"""One site's local volume: where file content lives on local disk.

Content is immutable and named by its BLAKE3 hash. The mount writes new bytes into staging
files and commits them on close; the mover fetches missing content into partial instances (a
content fetched in one piece goes straight in: ``add_fetched``); the volume keeps itself
within its capacity by evicting least-recently-used instances that are evictable
(docs/design.md, rules 2, 6 and 7). See :mod:`meridian.content.layout` for the
folders.

Thread-safety: one lock guards the in-memory index; hashing, copying, pwrite and fsync run
outside it. Renames into ``content/`` and deletions run under it (they are single metadata
operations), so the index never names a file that is gone and never misses one a reader
could be handed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from meridian.content.capacity import CapacityGuard
from meridian.content.durable import (
    CONTENT_FILE_MODE,
    PRIVATE_FILE_MODE,
    fsync_dir,
    pread_exact,
    pwrite_all,
    ready_to_rename,
    temp_path_beside,
    unlink_if_present,
    volume_error,
)
from meridian.content.hashing import CHUNK_SIZE, check_hash, hash_bytes, hash_file
from meridian.content.index import IndexEntry, InstanceIndex
from meridian.content.layout import VolumeLayout, recover
from meridian.content.partial import PartialInstances
from meridian.content.ranges import RangeSet
from meridian.content.records import CommittedContent, EvictResult, InstanceInfo, VolumeUsage
from meridian.content.staging import StagingFile
from meridian.testpoints import reached
from meridian.errors import ContentError

_READ_ATTEMPTS = 3  # a read retries when the instance was renamed (finished) under it


def _never_evictable(content_hash: str) -> bool:
    return False


class LocalVolume:
    """A directory on fast local disk holding content instances, with an optional capacity.

    On construction it creates its folders, removes what a crash left (staging files, temp
    files, partial instances without a valid ``.ranges``) and rebuilds its index from disk;
    the least-recently-used order then follows the files' atime/mtime. Raises ContentError
    (or NoSpace) if the root cannot be prepared.

    ``is_evictable(hash)`` tells whether a complete instance may be evicted (the composition
    root answers "complete in the bucket"); it is called without the volume's lock held, and
    what it raises reaches the caller that needed room.
    Every method is thread-safe. Hashes from outside are checked (BadPath if malformed).
    """

    def __init__(
        self,
        root: Path,
        capacity: int | None = None,
        *,
        name: str = "local",
        is_evictable: Callable[[str], bool] = _never_evictable,
    ) -> None:
        if capacity is not None and capacity < 0:
            raise ValueError(f"negative capacity {capacity}")
        self.root = Path(root)
        self.name = name
        self._layout = VolumeLayout(self.root)
        self._lock = threading.Lock()
        self._index = InstanceIndex()
        self._guard = CapacityGuard(
            name=name,
            capacity=capacity,
            layout=self._layout,
            lock=self._lock,
            index=self._index,
            is_evictable=is_evictable,
        )
        self._partials = PartialInstances(
            layout=self._layout,
            lock=self._lock,
            index=self._index,
            guard=self._guard,
            hold_ref=self._ref,
        )
        try:
            self._layout.create_dirs()
            found = recover(self._layout)
        except OSError as exc:
            raise volume_error(exc, f"opening volume {name!r} at {self.root}") from exc
        for instance in sorted(found, key=lambda f: (f.last_used, f.hash)):
            self._index.add(instance.hash, instance.size, instance.ranges, instance.last_used)

    @property
    def capacity(self) -> int | None:
        """The most bytes the volume may hold; None means unlimited."""
        return self._guard.capacity

    # -- staging and commit ---------------------------------------------------------------

    def new_staging(self, base: str | None = None) -> StagingFile:
        """A new, empty staging file; or, with ``base``, one that starts as a copy of that
        complete local content (its running hash carried along, so appends stay cheap).
        Raises ContentError if ``base`` is not complete here, NoSpace if the copy does not
        fit (the staging file is then discarded)."""
        staging = StagingFile(
            self._layout.new_staging_path(),
            hold_room=self._guard.hold_room,
            settle=self._settle_staging,
        )
        if base is None:
            return staging
        try:
            self._copy_into(check_hash(base), staging)
        except BaseException:
            staging.discard()
            raise
        return staging

    def commit(self, staging: StagingFile) -> CommittedContent:
        """Make a staging file's bytes durable content: finish its hash, fsync it, rename it
        to ``content/<h[:2]>/<h>`` (read-only), fsync the folder. If the content is already
        here the staging file is deleted instead (dedup). Once this returns, the content
        survives kill -9 and power loss. Idempotent per content and per staging file.
        Blocking I/O: call it from a worker thread."""
        return staging.commit_with(self._install_staged)

    def add_complete(self, content_hash: str, src_path: Path) -> CommittedContent:
        """Adopt the file at ``src_path`` as the complete instance of ``content_hash``: verify
        the hash, fsync, rename it in (copied first when it is on another file system).
        ``src_path`` is consumed: moved in, or deleted if the content was already here or the
        hash does not match (ContentError, nothing kept). NoSpace if it does not fit."""
        check_hash(content_hash)
        src = Path(src_path)
        try:
            actual = hash_file(src)
        except OSError as exc:
            raise volume_error(exc, f"reading {src}") from exc
        if actual != content_hash:
            unlink_if_present(src)
            raise ContentError(f"{src} hashes to {actual}, not {content_hash}: not adopted")
        try:
            size = src.stat().st_size
            if self.has(content_hash):
                unlink_if_present(src)
                return CommittedContent(content_hash, size)
            self._guard.hold_room(size)
            try:
                dest = self._layout.ready_content_path(content_hash)
                movable = ready_to_rename(src, dest)
                with self._lock:
                    installed, stale = self._install_locked(content_hash, size, movable)
                    self._index.reserved_bytes -= size
            except BaseException:
                self._guard.release(size)
                raise
            if movable != src:
                unlink_if_present(src)
            self._after_install(dest, installed, stale)
        except OSError as exc:
            raise volume_error(exc, f"adopting {src} as {content_hash}") from exc
        return CommittedContent(content_hash, size)

    def add_fetched(self, content_hash: str, data: bytes | bytearray | memoryview) -> bool:
        """Install ``data``, a whole content fetched from the bucket or a peer, as the
        complete instance of ``content_hash``, if it hashes to that (ContentError otherwise,
        nothing written): temp file, fsync, rename into ``content/``, replacing any partial
        instance. One fsync, where a partial instance costs six: the folder is not fsync'd,
        since a fetched instance is a copy. After a power loss it may be missing (fetched
        again), never torn: its bytes are durable before its name exists. Returns False if
        the content was already complete here. NoSpace (nothing written) if it does not fit.
        Blocking I/O: call it from a worker thread."""
        check_hash(content_hash)
        actual = hash_bytes(data)
        if actual != content_hash:
            raise ContentError(f"fetched bytes of {content_hash} hash to {actual}: not kept")
        if self.has(content_hash):
            return False
        size = len(data)
        self._guard.hold_room(size)
        temp: Path | None = None
        try:
            temp = temp_path_beside(self._layout.ready_content_path(content_hash))
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
            try:
                pwrite_all(fd, data, 0)
                os.fsync(fd)
                os.fchmod(fd, CONTENT_FILE_MODE)
            finally:
                os.close(fd)
            with self._lock:
                installed, stale = self._install_locked(content_hash, size, temp)
                self._index.reserved_bytes -= size
        except BaseException as exc:
            self._guard.release(size)
            if temp is not None:
                unlink_if_present(temp)
            if isinstance(exc, OSError):
                raise volume_error(exc, f"installing fetched {content_hash}") from exc
            raise
        if stale is not None:
            self._partials.delete_files(stale)
        return installed

    # -- reading --------------------------------------------------------------------------

    def has(self, content_hash: str) -> bool:
        """True if a complete instance is here."""
        with self._lock:
            entry = self._index.get(check_hash(content_hash))
            return entry is not None and entry.complete

    def size_of(self, content_hash: str) -> int | None:
        """The content's size if an instance (complete or partial) is here, else None."""
        with self._lock:
            entry = self._index.get(check_hash(content_hash))
            return None if entry is None else entry.size

    def path_of(self, content_hash: str) -> Path:
        """The file of the complete instance. Hold :meth:`open_ref` while using it, or it may
        be evicted. Raises ContentError if no complete instance is here."""
        if not self.has(content_hash):
            raise ContentError(f"{content_hash} is not complete on volume {self.name!r}")
        return self._layout.content_path(content_hash)

    def read(self, content_hash: str, offset: int, size: int) -> bytes:
        """Bytes ``[offset, offset + size)``, clipped to the content's size, from the complete
        instance or from a partial one that holds all of them; marks the instance used.
        Raises ContentError if those bytes are not local (it never returns fewer bytes than
        the clipped range)."""
        if offset < 0 or size < 0:
            raise ValueError(f"bad read of {size} bytes at {offset}")
        check_hash(content_hash)
        with self._ref(content_hash):
            for _ in range(_READ_ATTEMPTS):
                with self._lock:
                    path, end = self._locate_locked(content_hash, offset, size)
                if end <= offset:
                    return b""
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # finished (renamed into content/) or replaced: look again
                except OSError as exc:
                    raise volume_error(exc, f"reading {content_hash}") from exc
                try:
                    data = pread_exact(fd, end - offset, offset)
                except OSError as exc:
                    raise volume_error(exc, f"reading {content_hash}") from exc
                finally:
                    os.close(fd)
                if len(data) != end - offset:
                    raise ContentError(f"{content_hash} is shorter on disk than its size")
                return data
        raise ContentError(f"{content_hash} kept moving while being read")

    def open_ref(self, content_hash: str) -> None:
        """Count one open handle on the content. An open instance is never evicted; the count
        is kept even before the content is local, so it protects it once it arrives."""
        with self._lock:
            self._index.add_ref(check_hash(content_hash))

    def close_ref(self, content_hash: str) -> None:
        """Drop one open handle. Raises ContentError if none is open."""
        with self._lock:
            if not self._index.drop_ref(check_hash(content_hash)):
                raise ContentError(f"close_ref({content_hash}) without a matching open_ref")

    # -- partial instances ----------------------------------------------------------------

    def begin_partial(self, content_hash: str, size: int) -> None:
        """Start fetching content of ``size`` bytes into a partial instance. Idempotent (a
        no-op if partial or complete here); reserves nothing up front. ContentError if the
        volume holds this hash with another size. Details: :meth:`PartialInstances.begin`."""
        self._partials.begin(check_hash(content_hash), size)

    def write_partial(
        self, content_hash: str, offset: int, data: bytes | bytearray | memoryview
    ) -> None:
        """Store one fetched block (any order, any thread); its range is recorded, fsync'd data
        first, in the ``.ranges`` file before this returns. Reserves room for the new bytes
        (NoSpace, nothing written). ContentError without :meth:`begin_partial` or for a block
        outside the content; a no-op once complete. Details: :meth:`PartialInstances.write`."""
        self._partials.write(check_hash(content_hash), offset, data)

    def finish_partial(self, content_hash: str) -> bool:
        """False while bytes are missing; else verify the hash and install the data as the
        complete instance, crash-safe, and return True (idempotent). On a mismatch the partial
        is discarded and ContentError raised. Details: :meth:`PartialInstances.finish`."""
        return self._partials.finish(check_hash(content_hash))

    def present_bytes(self, content_hash: str) -> int:
        """How many of the content's bytes are held here (0 if none)."""
        return self.present(content_hash).total()

    def present(self, content_hash: str) -> RangeSet:
        """The bytes held here (a copy): all of them for a complete instance, none if the
        content is not local."""
        with self._lock:
            entry = self._index.get(check_hash(content_hash))
            if entry is None:
                return RangeSet()
            return RangeSet.full(entry.size) if entry.ranges is None else entry.ranges.copy()

    def missing(self, content_hash: str, start: int, end: int) -> list[tuple[int, int]]:
        """The sub-ranges of ``[start, end)`` not held here, clipped to the content's size
        when an instance is here (all of ``[start, end)`` otherwise)."""
        with self._lock:
            entry = self._index.get(check_hash(content_hash))
            if entry is None:
                return RangeSet().missing(start, end)
            end = min(end, entry.size)
            if end <= start or entry.ranges is None:
                return []
            return entry.ranges.missing(start, end)

    # -- capacity and eviction ------------------------------------------------------------

    def reserve(self, nbytes: int) -> None:
        """Make room for ``nbytes`` more bytes, evicting least-recently-used evictable
        instances as needed (none if even all of them would not do). The room is not held:
        the write methods reserve for themselves. Raises NoSpace naming what blocked."""
        self._guard.hold_room(nbytes)
        self._guard.release(nbytes)

    def is_open(self, content_hash: str) -> bool:
        """Whether a reader or writer holds this content open (``open_ref``)."""
        with self._lock:
            return self._index.open_count(check_hash(content_hash)) > 0

    def is_pinned(self, content_hash: str) -> bool:
        with self._lock:
            return check_hash(content_hash) in self._index.pinned

    def pin(self, content_hash: str) -> None:
        """Never evict this content (also before it arrives). In memory only. Idempotent."""
        with self._lock:
            self._index.pinned.add(check_hash(content_hash))

    def unpin(self, content_hash: str) -> None:
        """Undo :meth:`pin`. Idempotent."""
        with self._lock:
            self._index.pinned.discard(check_hash(content_hash))

    def evict(self, content_hash: str) -> EvictResult:
        """Evict this instance if the rules allow (whatever its recency), else say why not:
        "not local", "pinned", "open" or "only copy (not complete in the bucket)"."""
        return self._guard.evict(check_hash(content_hash))

    def remove(self, content_hash: str) -> bool:
        """Delete the instance whatever the pins and the bucket say (garbage collection).
        False if it was not here. Raises ContentError, deleting nothing, if it is open."""
        with self._lock:
            entry = self._index.get(check_hash(content_hash))
            if entry is None:
                return False
            if self._index.open_count(content_hash) > 0:
                raise ContentError(f"{content_hash} is open on volume {self.name!r}")
            self._guard.delete_locked(entry)
            return True

    def instances(self) -> list[InstanceInfo]:
        """Every instance here, least recently used first."""
        with self._lock:
            entries = sorted(self._index.entries.values(), key=lambda entry: entry.tick)
            return [
                InstanceInfo(
                    hash=entry.hash,
                    size=entry.size,
                    present_bytes=entry.present_bytes,
                    complete=entry.complete,
                    pinned=entry.hash in self._index.pinned,
                    open_count=self._index.open_count(entry.hash),
                    last_used=entry.last_used,
                )
                for entry in entries
            ]

    def usage(self) -> VolumeUsage:
        """The byte totals, taken atomically."""
        with self._lock:
            index = self._index
            return VolumeUsage(
                capacity=self.capacity,
                used=index.used,
                staging=index.staging_bytes,
                complete=index.complete_bytes,
                partial=index.partial_bytes,
                count=len(index.entries),
            )

    # -- helpers --------------------------------------------------------------------------

    @contextmanager
    def _ref(self, content_hash: str) -> Iterator[None]:
        """Hold an open handle for the duration (keeps the instance from eviction)."""
        with self._lock:
            self._index.add_ref(content_hash)
        try:
            yield
        finally:
            with self._lock:
                self._index.drop_ref(content_hash)

    def _settle_staging(self, held: int, delta: int) -> None:
        with self._lock:
            self._index.reserved_bytes -= held
            self._index.staging_bytes += delta

    def _copy_into(self, base: str, staging: StagingFile) -> None:
        with self._ref(base):
            path = self.path_of(base)
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                raise volume_error(exc, f"opening base content {base}") from exc
            try:
                offset = 0
                while chunk := os.pread(fd, CHUNK_SIZE, offset):
                    staging.write(offset, chunk)
                    offset += len(chunk)
            except OSError as exc:
                raise volume_error(exc, f"copying base content {base}") from exc
            finally:
                os.close(fd)
            with self._lock:
                entry = self._index.get(base)
                if entry is not None:
                    self._index.touch(entry)

    def _locate_locked(self, content_hash: str, offset: int, size: int) -> tuple[Path, int]:
        """(file to read, clipped end) for a read; marks the instance used. ContentError if
        the bytes are not local."""
        entry = self._index.get(content_hash)
        if entry is None:
            raise ContentError(f"{content_hash} is not on volume {self.name!r}")
        end = min(offset + size, entry.size)
        if entry.ranges is not None and end > offset and not entry.ranges.contains(offset, end):
            raise ContentError(
                f"bytes [{offset}, {end}) of {content_hash} are not on volume {self.name!r}"
            )
        self._index.touch(entry)
        if entry.ranges is None:
            return self._layout.content_path(content_hash), end
        return self._layout.partial_data_path(content_hash), end

    def _install_staged(self, content_hash: str, size: int, path: Path) -> CommittedContent:
        try:
            dest = self._layout.ready_content_path(content_hash)
            with self._lock:
                installed, stale = self._install_locked(content_hash, size, path)
                self._index.staging_bytes -= size
            self._after_install(dest, installed, stale)
        except OSError as exc:
            raise volume_error(exc, f"committing {content_hash}") from exc
        return CommittedContent(content_hash, size)

    def _install_locked(
        self, content_hash: str, size: int, path: Path
    ) -> tuple[bool, IndexEntry | None]:
        """Under the lock: rename the fsync'd, read-only file at ``path`` into ``content/``
        and index it, or delete it if the content is already complete here (dedup). Returns
        (installed, the partial entry it replaced, whose files the caller deletes)."""
        entry = self._index.get(content_hash)
        if entry is not None and entry.complete:
            unlink_if_present(path)
            self._index.touch(entry)
            return False, None
        os.rename(path, self._layout.content_path(content_hash))
        if entry is not None:
            self._index.forget(entry)
        self._index.add(content_hash, size, None)
        return True, entry

    def _after_install(self, dest: Path, installed: bool, stale: IndexEntry | None) -> None:
        if installed:
            reached("volume.installed")  # renamed into content/, its folder not fsync'd yet
            fsync_dir(dest.parent)
        if stale is not None:
            self._partials.delete_files(stale)
