"""The object store interface: a flat map from keys to immutable-per-write byte strings.

Every backend (``memory``, ``local`` directory, ``s3``) implements :class:`ObjectStore` and passes
the one conformance suite in ``tests/objects/test_conformance.py``. Layers above (``layout``,
the mover) see only this interface and the exceptions of :mod:`meridian.errors`; no backend
lets a vendor exception (botocore, ``OSError``) escape.

Keys are ``/``-separated relative paths: non-empty components, none of them ``.`` or ``..``,
no NUL, no leading ``/``. :func:`check_key` enforces that for every backend, so a key that one
backend accepts every backend accepts. Components starting with :data:`RESERVED_PREFIX` are
refused too: the local backend uses that prefix for its temporary files.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from meridian.errors import BadPath

RESERVED_PREFIX = ".tmp-"
"""Key components may not start with this: the local backend names its temporary files so."""

MAX_KEY_BYTES = 1024
"""The longest key (UTF-8 bytes, before a backend's own prefix) that every backend accepts."""


@dataclass(frozen=True)
class ObjectInfo:
    """One object as listed: its key (relative to the store) and its size in bytes."""

    key: str
    size: int


def check_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid object key; raise :class:`BadPath` otherwise.

    Valid: a non-empty ``/``-separated relative path whose components are non-empty, are not
    ``.`` or ``..``, do not start with :data:`RESERVED_PREFIX`, and hold no NUL; at most
    :data:`MAX_KEY_BYTES` bytes of UTF-8. The message names the key and the problem.
    """
    if not isinstance(key, str):
        raise BadPath(f"object key {key!r}: not a string")
    problem = _key_problem(key)
    if problem is not None:
        raise BadPath(f"object key {key!r}: {problem}")
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start a valid key (for :meth:`ObjectStore.list`).

    ``""`` is valid (everything). A prefix may end inside a component (``content/a``) or with
    ``/`` (``content/``); the complete components before that must be valid as in
    :func:`check_key`. Raises :class:`BadPath` otherwise.
    """
    if not isinstance(prefix, str):
        raise BadPath(f"object key prefix {prefix!r}: not a string")
    if prefix == "":
        return prefix
    complete, _, _partial = prefix.rpartition("/")
    if "\x00" in prefix:
        problem: str | None = "contains NUL"
    elif prefix.startswith("/"):
        problem = "starts with '/'"
    else:
        problem = _key_problem(complete) if complete else None
    if problem is not None:
        raise BadPath(f"object key prefix {prefix!r}: {problem}")
    return prefix


def _key_problem(key: str) -> str | None:
    if key == "":
        return "empty"
    if "\x00" in key:
        return "contains NUL"
    if key.startswith("/"):
        return "starts with '/' (keys are relative)"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if size > MAX_KEY_BYTES:
        return f"longer than {MAX_KEY_BYTES} bytes"
    for part in key.split("/"):
        if part == "":
            return "has an empty component ('//' or a trailing '/')"
        if part in (".", ".."):
            return f"has a {part!r} component"
        if part.startswith(RESERVED_PREFIX):
            return f"a component starts with the reserved {RESERVED_PREFIX!r}"
    return None


def check_range(start: int, end: int | None) -> None:
    """Refuse a byte range that no backend can mean: a negative ``start`` or ``end``.

    Raises ``ValueError`` (a programming error, not input from outside). ``end <= start`` is
    allowed and means an empty range.
    """
    if start < 0:
        raise ValueError(f"range start {start} is negative")
    if end is not None and end < 0:
        raise ValueError(f"range end {end} is negative")


def slice_range(data: bytes, start: int, end: int | None) -> bytes:
    """``data[start:end]`` with the clipping rules of :meth:`ObjectStore.get`."""
    check_range(start, end)
    return data[start:end]


class ObjectStore(abc.ABC):
    """A flat key → bytes store: a local directory, an S3 bucket (with a key prefix), or memory.

    Every method may be called from several threads at once. Every method that takes a key
    validates it first (:func:`check_key`), so a bad key raises :class:`BadPath` before anything
    is read or changed. Failures of the store itself raise the :class:`ObjectStoreError` family:
    :class:`BucketUnreachable` (refused, timed out, 5xx after retries), :class:`BucketAccessDenied`
    (credentials or permissions refused). A store can be used as a context manager (closes it).
    """

    url: str
    """Display form (``file:///dir``, ``s3://bucket/prefix``, ``memory://``); never credentials."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any object there.

        Atomic: a concurrent or later reader sees the old object, no object, or all of the new
        one, never a part. Idempotent: putting the same bytes again changes nothing. Durable
        when it returns (fsync'd for the local backend; acknowledged by S3).
        """

    @abc.abstractmethod
    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Return bytes ``[start, end)`` of the object (``end=None``: to its end).

        A range reaching past the end is clipped; ``start`` at or beyond the size, or
        ``end <= start``, gives ``b""`` (as long as the object exists). Raises
        :class:`ObjectNotFound` when there is no object under ``key``, ``ValueError`` for a
        negative ``start`` or ``end``.
        """

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Return the object's :class:`ObjectInfo`, or ``None`` when there is none."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix``, sorted by key (UTF-8 order).

        Lazy: pages are fetched as the iterator advances, so a caller may stop early. Objects
        put or deleted while the iteration runs may or may not appear. Objects whose keys are
        not valid keys (written by something else) are skipped.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object under ``key``. Idempotent: a missing key is not an error."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and handles. Idempotent; the store is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
