"""The row-level hooks every engine provides (sqlite, memory), under one transaction.

``NamespaceCore`` (``core.py``) and ``EngineStore`` (``base.py``) write the namespace logic once
over these; an engine implements only them (and ``_transaction``). Hooks never check anything:
the caller has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import AbstractContextManager

from meridian.meta.entries import JournalEntry
from meridian.meta.interface import (
    ContentRecord,
    Inode,
    PendingUpload,
)


class EngineHooks(ABC):
    """The storage primitives of one engine; every call runs inside ``_transaction``."""

    @abstractmethod
    def _transaction(self, durable: bool = False) -> AbstractContextManager[None]:
        """All hook writes inside are committed together or rolled back on an exception.

        ``durable``: the commit is on disk when it returns (and so is every commit before
        it); otherwise it is atomic and ordered, and on disk at the next durable commit or
        ``sync`` (group commit, as ext4 treats namespace operations)."""

    @abstractmethod
    def _get_inode(self, ino: int) -> Inode | None: ...

    @abstractmethod
    def _find_file_id(self, file_id: str) -> int | None: ...

    @abstractmethod
    def _put_inode(self, inode: Inode) -> None: ...

    @abstractmethod
    def _del_inode(self, ino: int) -> None: ...

    @abstractmethod
    def _get_entry(self, parent: int, name: str) -> int | None: ...

    @abstractmethod
    def _put_entry(self, parent: int, name: str, ino: int) -> None: ...

    @abstractmethod
    def _del_entry(self, parent: int, name: str) -> None: ...

    @abstractmethod
    def _list_entries(self, parent: int) -> list[tuple[str, int]]:
        """Sorted by name."""

    def _new_directory(self, ino: int) -> None:
        """Directory ``ino`` was just made here, with no entries (an engine that keeps
        listings may note it; by default nothing)."""

    @abstractmethod
    def _has_entries(self, parent: int) -> bool: ...

    @abstractmethod
    def _names_of(self, ino: int) -> list[tuple[int, str]]:
        """Every (parent, name) that points at ``ino``."""

    @abstractmethod
    def _get_xattr(self, ino: int, name: str) -> bytes | None: ...

    @abstractmethod
    def _put_xattr(self, ino: int, name: str, value: bytes) -> None: ...

    @abstractmethod
    def _del_xattr(self, ino: int, name: str) -> None: ...

    @abstractmethod
    def _list_xattrs(self, ino: int) -> list[str]:
        """The attribute names of ``ino``, in any order."""

    @abstractmethod
    def _get_kv(self, key: str) -> str | None: ...

    @abstractmethod
    def _put_kv(self, key: str, value: str) -> None: ...

    @abstractmethod
    def _del_kv(self, key: str) -> None: ...

    @abstractmethod
    def _append_journal(self, entry: JournalEntry) -> None: ...

    @abstractmethod
    def _read_journal(self, after: int, limit: int) -> list[JournalEntry]: ...

    @abstractmethod
    def _get_content(self, hash: str) -> ContentRecord | None: ...

    @abstractmethod
    def _put_content(self, record: ContentRecord) -> None: ...

    @abstractmethod
    def _get_upload(self, hash: str) -> PendingUpload | None: ...

    @abstractmethod
    def _put_upload(self, upload: PendingUpload) -> None: ...

    @abstractmethod
    def _del_upload(self, hash: str) -> None: ...

    @abstractmethod
    def _due_uploads(self, limit: int, now: float | None) -> list[PendingUpload]: ...

    @abstractmethod
    def _count(self, table: str) -> int:
        """Rows of ``inodes`` or ``uploads``."""

    @abstractmethod
    def _orphans(self) -> list[int]:
        """Inodes with nlink 0."""

    @abstractmethod
    def _content_in_use(self, hash: str) -> bool:
        """Whether an inode refers to ``hash``."""

    @abstractmethod
    def _unreferenced(self, limit: int) -> list[ContentRecord]: ...

    @abstractmethod
    def _del_content(self, hash: str) -> None: ...

    @abstractmethod
    def _snapshot_holds(self, hash: str) -> int:
        """How many snapshots hold ``hash`` here (``undo.py``)."""

    @abstractmethod
    def _add_snapshot_holds(self, hashes: Iterable[str], delta: int) -> None:
        """Count one more (``delta`` 1) or one fewer (-1) snapshot holding each of ``hashes``;
        a count that reaches 0 goes. One compact row per distinct content, shared by every
        snapshot that names it."""

    @abstractmethod
    def _kv_prefixed(self, prefix: str) -> list[tuple[str, str]]:
        """Every (key, value) whose key starts with ``prefix``."""
