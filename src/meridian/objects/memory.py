"""An object store in a dict: for unit tests of the layers above, and ``memory://`` URLs.

Nothing survives the process. Each :class:`MemoryObjectStore` is its own empty store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from meridian.errors import ObjectNotFound
from meridian.objects.interface import (
    ObjectInfo,
    ObjectStore,
    check_key,
    check_prefix,
    slice_range,
)


class MemoryObjectStore(ObjectStore):
    """A thread-safe in-memory :class:`ObjectStore` with the same contract as the others."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        """Store a copy of ``data`` (atomic, idempotent, overwrites)."""
        check_key(key)
        value = bytes(data)
        with self._lock:
            self._objects[key] = value

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)``, clipped; raises :class:`ObjectNotFound` for a missing key."""
        check_key(key)
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise ObjectNotFound(f"no object {key!r} in {self.url}")
        return slice_range(data, start, end)

    def head(self, key: str) -> ObjectInfo | None:
        """The object's key and size, ``None`` when missing."""
        check_key(key)
        with self._lock:
            data = self._objects.get(key)
        return None if data is None else ObjectInfo(key, len(data))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` sorted by key, from a snapshot taken at the first step."""
        check_prefix(prefix)
        return self._iter(prefix)

    def _iter(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._lock:
            items = [(k, len(v)) for k, v in self._objects.items() if k.startswith(prefix)]
        items.sort(key=lambda item: item[0].encode("utf-8"))
        for key, size in items:
            yield ObjectInfo(key, size)

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is fine."""
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def close(self) -> None:
        """Nothing to release; the objects stay readable (handy in tests)."""
