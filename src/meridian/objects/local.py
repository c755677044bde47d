"""An object store in a local (or NFS-mounted) directory: ``file:///dir``, the embedded default.

Key ``a/b/c`` is the file ``<root>/a/b/c``. Writes are crash-safe in the restic/borg way:
a temporary file in the target folder (named ``.tmp-…``, never listed) → write → fsync →
rename over the target → fsync the folder. Folders emptied by :meth:`delete` are removed.

A key cannot be both an object and the folder of other objects here (``a`` and ``a/b``), as
it can on S3; :meth:`LocalObjectStore.put` refuses the second with :class:`BadPath`. The
bucket layout (:mod:`meridian.objects.layout`) never needs both.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

from meridian.errors import (
    BadPath,
    BucketAccessDenied,
    BucketUnreachable,
    ObjectNotFound,
)
from meridian.objects.interface import (
    RESERVED_PREFIX,
    ObjectInfo,
    ObjectStore,
    check_key,
    check_prefix,
    check_range,
)

_PUT_ATTEMPTS = 5  # a concurrent delete may prune the target folder between mkdir and create
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class LocalObjectStore(ObjectStore):
    """:class:`ObjectStore` over the directory ``root``; safe to share between threads.

    ``create=True`` (the default) creates ``root`` and its parents when missing. Raises
    :class:`BucketUnreachable` when ``root`` is not a usable directory, and
    :class:`BucketAccessDenied` when the process may not use it.
    """

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self._root = Path(root).absolute()
        self.url = self._root.as_uri()
        with self._translated("open", ""):
            if create:
                self._root.mkdir(parents=True, exist_ok=True)
            if not self._root.is_dir():
                raise BucketUnreachable(f"{self.url}: not a directory")

    @property
    def root(self) -> Path:
        """The directory that holds the objects."""
        return self._root

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` crash-safely under ``key`` (atomic, idempotent, durable on return)."""
        path = self._path(key)
        with self._translated("put", key):
            for attempt in range(_PUT_ATTEMPTS):
                try:
                    self._ensure_dir(path.parent)
                    self._write_atomically(path, data)
                    return
                except FileNotFoundError:
                    if attempt == _PUT_ATTEMPTS - 1 or not self._root.is_dir():
                        raise

    def _ensure_dir(self, folder: Path) -> None:
        """Create ``folder`` and missing parents below the root, each made durable."""
        if folder == self._root or folder.is_dir():
            return
        self._ensure_dir(folder.parent)
        try:
            folder.mkdir()
        except FileExistsError:
            # made by a concurrent put, or an object is in the way; if it vanished already
            # (a concurrent delete pruned it), lstat raises FileNotFoundError: put retries
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                raise NotADirectoryError(
                    errno.ENOTDIR, "an object is in the way", str(folder)
                ) from None
            return
        _fsync_dir(folder.parent)

    def _write_atomically(self, path: Path, data: bytes) -> None:
        tmp = path.parent / f"{RESERVED_PREFIX}{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` by seek and read; :class:`ObjectNotFound` when missing."""
        check_range(start, end)
        path = self._path(key)
        with self._translated("get", key):
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed just below
            except _MISSING:
                self._check_root()
                raise ObjectNotFound(f"no object {key!r} in {self.url}") from None
            with f:
                size = os.fstat(f.fileno()).st_size
                stop = size if end is None else min(end, size)
                if stop <= start:
                    return b""
                f.seek(start)
                return f.read(stop - start)

    def head(self, key: str) -> ObjectInfo | None:
        """Key and size from ``stat``; ``None`` when there is no regular file at the key."""
        path = self._path(key)
        with self._translated("head", key):
            try:
                st = os.stat(path)
            except _MISSING:
                self._check_root()
                return None
        return ObjectInfo(key, st.st_size) if stat.S_ISREG(st.st_mode) else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Walk the folders under ``prefix`` lazily, one sorted folder at a time.

        Folders sort as ``name/`` so the walk order is exactly key order (``a.txt`` before
        ``a/b``). Temporary files, non-regular files and names that are not valid keys are
        skipped.
        """
        check_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._translated("list", prefix):
            self._check_root()
            yield from self._walk(prefix.rpartition("/")[0], prefix)

    def _walk(self, folder: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(self._root / folder if folder else self._root) as it:
                entries = [e for e in it if not e.name.startswith(RESERVED_PREFIX)]
        except _MISSING:
            return
        ordered: list[tuple[bytes, str, os.DirEntry[str]]] = []
        for entry in entries:
            key = f"{folder}/{entry.name}" if folder else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                sort_key = (key + "/" if is_dir else key).encode("utf-8")
            except (OSError, UnicodeEncodeError):
                continue
            if is_dir:
                if not (key.startswith(prefix) or prefix.startswith(key + "/")):
                    continue
            elif not key.startswith(prefix):
                continue
            ordered.append((sort_key, key, entry))
        ordered.sort(key=lambda item: item[0])
        for _sort_key, key, entry in ordered:
            try:
                if entry.is_dir(follow_symlinks=False):
                    yield from self._walk(key, prefix)
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while we walked
            if stat.S_ISREG(st.st_mode):
                yield ObjectInfo(key, st.st_size)

    def delete(self, key: str) -> None:
        """Unlink ``key`` durably and remove folders it leaves empty; missing is fine."""
        path = self._path(key)
        with self._translated("delete", key):
            try:
                os.unlink(path)
            except _MISSING:
                return
            _fsync_dir(path.parent)
            folder = path.parent
            while folder != self._root:
                try:
                    folder.rmdir()
                except OSError:
                    break  # not empty (or already gone): stop pruning
                _fsync_dir(folder.parent)
                folder = folder.parent

    def close(self) -> None:
        """Nothing to release (no handles are kept open between calls)."""

    def _check_root(self) -> None:
        if not self._root.is_dir():
            raise BucketUnreachable(f"{self.url}: the bucket directory is gone (unmounted?)")

    @contextlib.contextmanager
    def _translated(self, op: str, key: str) -> Iterator[None]:
        """The one place where ``OSError`` becomes a :mod:`meridian.errors` exception."""
        try:
            yield
        except PermissionError as exc:
            raise BucketAccessDenied(f"{op} {key!r} in {self.url}: {exc.strerror}") from exc
        except (NotADirectoryError, IsADirectoryError) as exc:
            raise BadPath(
                f"object key {key!r}: conflicts with an existing object or folder in {self.url}"
            ) from exc
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise BadPath(f"object key {key!r}: too long for {self.url}") from exc
            raise BucketUnreachable(f"{op} {key!r} in {self.url}: {exc.strerror}") from exc


def _fsync_dir(folder: Path) -> None:
    """Make a folder's entries (a rename, a new or removed name) durable.

    A folder that is gone already (pruned by a concurrent delete) needs nothing.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
