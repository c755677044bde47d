"""The namespace store: one interface, several engines (sqlite, memory; postgres later).

A store holds one site's copy of the namespace (inodes, directory entries, extended
attributes), what it knows of every content (size, whether it is complete in the bucket), the
site's queue of uploads, and the site's journal. Every change is one transaction, and the
journal entry that records it is appended in that same transaction: a change and its journal
entry are durable together or not at all.

Contracts shared by every engine (the conformance suite in ``tests/meta`` checks them):

- Operations are atomic: they raise before changing anything, or change everything.
- Names are ``str`` (bytes from the kernel decoded with ``os.fsdecode``); a name is one path
  component: not empty, no ``/``, no NUL, not ``.`` or ``..`` (``BadPath`` otherwise).
- Errors are the ``NamespaceError`` subclasses of ``meridian.errors`` with POSIX meaning.
- ``ino`` numbers are local to the site; ``file_id`` is the identity that is the same at every
  site: ``"<site id, 32 hex>.<per-site counter>"``; the root is ``"root"`` everywhere.
- Journal sequence numbers start at 1, increase by one per entry, and are never reused.
"""

from __future__ import annotations

import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from meridian.errors import BadPath, NameTooLong
from meridian.meta.entries import JournalEntry as JournalEntry

ROOT_INO = 1
ROOT_FILE_ID = "root"


@dataclass(slots=True, eq=True)
class Inode:
    """One file, directory or symlink as this site knows it.

    A value: never changed after it is made (``dataclasses.replace`` makes a changed copy).
    Not declared frozen only because frozen dataclasses are ten times slower to build, and a
    directory listing builds thousands."""

    ino: int
    file_id: str
    mode: int  # full st_mode: type bits and permission bits
    uid: int
    gid: int
    size: int
    nlink: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    content: str | None = None  # hash of the current content (files only); None = empty file
    target: str | None = None  # symlink target
    origin_site: str = ""  # the site that wrote the current content (or created it)
    rdev: int = 0  # device number of a character or block device
    # Versions of the three things replication resolves separately (``version()`` strings,
    # ordered as rule 5 of docs/design.md orders changes: HLC, then site name). "" = before any.
    content_version: str = ""  # the change that set the current content
    name_version: str = ""  # the change that gave the inode its (first) name
    attr_version: str = ""  # the last change of mode or owner

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)


@dataclass(frozen=True)
class AttrChanges:
    """What ``setattr`` changes; ``None`` leaves a field as it is."""

    mode: int | None = None  # permission bits only (the type bits are kept)
    uid: int | None = None
    gid: int | None = None
    atime_ns: int | None = None
    mtime_ns: int | None = None


@dataclass(frozen=True)
class ContentRecord:
    """What the site knows of one content: its size and whether the bucket holds it whole."""

    hash: str
    size: int
    in_bucket: bool


@dataclass(frozen=True)
class StoredObjective:
    """One rule of this site, as stored: its stable id, its text, when it was added."""

    id: str
    text: str
    added: float


@dataclass(frozen=True)
class PendingUpload:
    """One content waiting to be uploaded; higher ``priority`` goes first."""

    hash: str
    size: int
    priority: int
    attempts: int
    next_try: float  # unix time before which it is not tried again
    last_error: str = ""


class MetaStore(ABC):
    """The namespace store of one site. Not thread-safe: one caller (the site's event loop)."""

    site_name: str
    site_id: str  # 32 hex chars, random, chosen when the store was created

    # -- reading ----------------------------------------------------------------------------
    @abstractmethod
    def getattr(self, ino: int) -> Inode:
        """The inode ``ino``. Raises NotFound."""

    @abstractmethod
    def lookup(self, parent: int, name: str) -> Inode:
        """The entry ``name`` in directory ``parent``. Raises NotFound, NotADirectory."""

    @abstractmethod
    def list_dir(self, parent: int) -> list[tuple[str, Inode]]:
        """Every entry of ``parent``, sorted by name. Raises NotFound, NotADirectory."""

    def list_dir_page(self, parent: int, offset: int, limit: int
                      ) -> tuple[int, list[tuple[str, Inode]]]:
        """How many entries ``parent`` has, and its entries ``[offset, offset + limit)`` in
        ``list_dir``'s order (for a browser of a folder of a million files). This default
        lists the whole folder; a store may read only the page. Raises NotFound,
        NotADirectory."""
        listing = self.list_dir(parent)
        return len(listing), listing[offset: offset + limit]

    @abstractmethod
    def resolve(self, path: str) -> Inode:
        """The inode at a namespace path (``./a/b``, ``/a/b`` or ``a/b``). Raises BadPath, NotFound."""

    @abstractmethod
    def path_of(self, ino: int) -> str:
        """One path (``/a/b``) of ``ino``; for hard links, the first name found. Raises NotFound."""

    @abstractmethod
    def by_file_id(self, file_id: str) -> Inode | None:
        """The inode with this site-independent id, or None."""

    @abstractmethod
    def parent_of(self, ino: int) -> int:
        """The directory holding ``ino`` (the root for the root; the first name's directory
        for a hard-linked file). Raises NotFound."""

    @abstractmethod
    def walk(self, top: int = ROOT_INO) -> Iterator[tuple[str, Inode]]:
        """Every inode under ``top`` (``top`` itself first), depth first, with its path."""

    @abstractmethod
    def count_inodes(self) -> int:
        """How many inodes the namespace holds (for statfs)."""

    # -- namespace changes (each one transaction + one journal entry) -----------------------
    @abstractmethod
    def create(
        self, parent: int, name: str, mode: int, uid: int, gid: int, target: str | None = None,
        rdev: int = 0,
    ) -> Inode:
        """Make a file, directory, symlink, FIFO, socket or device node (by ``mode``'s type
        bits; ``target`` for a symlink, ``rdev`` for a device). Only regular files have content.

        Raises AlreadyExists, NotFound (parent), NotADirectory (parent), BadPath (name).
        """

    @abstractmethod
    def link(self, ino: int, new_parent: int, new_name: str) -> Inode:
        """Add a hard link to a file. Raises AlreadyExists, NotFound, IsADirectory (``ino``
        is a directory: not allowed, as on Linux: EPERM is the kernel's answer; we raise
        IsADirectory and the mount maps it)."""

    @abstractmethod
    def unlink(self, parent: int, name: str) -> Inode:
        """Remove a non-directory entry; returns the inode with its new ``nlink``. An inode
        left with no name (nlink 0) is kept until ``forget`` (it may still be open).
        Raises NotFound, IsADirectory."""

    @abstractmethod
    def rmdir(self, parent: int, name: str) -> None:
        """Remove an empty directory. Raises NotFound, NotADirectory, DirectoryNotEmpty."""

    @abstractmethod
    def rename(
        self, parent: int, name: str, new_parent: int, new_name: str, *, replace: bool = True
    ) -> Inode | None:
        """Move an entry, replacing an existing target atomically as rename(2) does.

        Returns the replaced inode (with its new nlink), or None. ``replace=False`` raises
        AlreadyExists if the target exists (RENAME_NOREPLACE). Raises NotFound, NotADirectory
        (directory over a non-directory), IsADirectory (non-directory over a directory),
        DirectoryNotEmpty, InvalidOperation (a directory into its own subtree).
        Renaming a name onto a hard link of the same inode changes nothing.
        """

    @abstractmethod
    def setattr(self, ino: int, changes: AttrChanges) -> Inode:
        """Change mode, owner or times; ctime is set to now. Raises NotFound."""

    @abstractmethod
    def set_content(
        self, ino: int, content: str | None, size: int, *, upload_priority: int = 0,
        mtime_ns: int | None = None, base: str | None = None, durable: bool = True,
    ) -> Inode:
        """Make ``content`` (a hash, or None for empty) the file's current content, durably.

        ``base`` is the content version the writer started from (``Inode.content_version``
        when it opened the file for writing); when another site's version replaced it
        meanwhile, that version is kept as a conflict copy beside the file (this write is the
        later one), exactly as every other site will resolve it (docs/design.md, rule 5).

        Records the content (size, not yet in the bucket) if it is new, queues its upload in the
        same transaction (unless it is already in the bucket or queued), sets mtime to
        ``mtime_ns`` (default now: the time of the last write, or one set while the file was
        open, as ``cp -p`` does), ctime to now and ``origin_site`` to this site. The commit is synchronous (fsync'd): when this returns
        the new content is durable at this site; with ``durable=False`` it commits without
        waiting for the disk, and the caller makes it durable with :meth:`syncer` (off the
        event loop) before it relies on it. Raises NotFound, IsADirectory.
        """

    def forget(self, ino: int) -> bool:
        """Drop an inode that has no name left (nlink 0) and is no longer open. Idempotent;
        returns True if it was dropped, False if it still has a name or is already gone."""
        return self.forget_all([ino]) == 1

    @abstractmethod
    def forget_all(self, inos: Iterable[int]) -> int:
        """:meth:`forget` for each of ``inos``, in one transaction (one commit for a batch of
        unlinked files); returns how many were dropped."""

    # -- extended attributes ----------------------------------------------------------------
    @abstractmethod
    def getxattr(self, ino: int, name: str) -> bytes:
        """Raises NotFound (inode), NoAttribute."""

    @abstractmethod
    def listxattr(self, ino: int) -> list[str]:
        """The names, sorted by their bytes (``os.fsencode``), the same in every engine (the
        namespace digest lists them in this order). Raises NotFound."""

    @abstractmethod
    def setxattr(self, ino: int, name: str, value: bytes, *, create: bool = False,
                 replace: bool = False) -> None:
        """``create``: AlreadyExists if present (XATTR_CREATE); ``replace``: NoAttribute if
        absent (XATTR_REPLACE). Raises NotFound."""

    @abstractmethod
    def removexattr(self, ino: int, name: str) -> None:
        """Raises NotFound, NoAttribute."""

    # -- content and uploads ----------------------------------------------------------------
    @abstractmethod
    def content(self, hash: str) -> ContentRecord | None:
        """What is known of one content, or None."""

    def in_bucket(self, hash: str) -> bool:
        """Whether this site has recorded the content as complete in the bucket (its own
        upload, or a peer's ``instance`` entry)."""
        record = self.content(hash)
        return record is not None and record.in_bucket

    @abstractmethod
    def pending_uploads(self, limit: int = 100, *, now: float | None = None) -> list[PendingUpload]:
        """Uploads due (``next_try <= now``; all when ``now`` is None), highest priority first,
        then oldest first."""

    @abstractmethod
    def upload_count(self) -> int:
        """How many uploads are queued (due or waiting for a retry)."""

    @abstractmethod
    def upload_failed(self, hash: str, next_try: float, error: str) -> None:
        """Count a failed attempt and set when to try again. Idempotent if not queued."""

    def mark_in_bucket(self, hash: str) -> None:
        """The content is complete in the bucket: dequeue its upload, record it, and journal an
        ``instance`` entry. Idempotent (a second call journals nothing)."""
        self.mark_all_in_bucket([hash])

    @abstractmethod
    def mark_all_in_bucket(self, hashes: Iterable[str], *, durable: bool = True) -> None:
        """:meth:`mark_in_bucket` for each of ``hashes``, in one durable transaction (one fsync
        for uploads that finish together); ``durable=False`` as for :meth:`set_content`."""

    # -- replication ------------------------------------------------------------------------
    @abstractmethod
    def apply_entries(self, peer: str, entries: list[JournalEntry], *,
                      through: int | None = None) -> ApplyResult:
        """Apply entries pulled from ``peer``'s journal (in its order), in one transaction with
        ``peer``'s new position (the ``seq`` of the last entry taken). ``through``: the peer
        read its journal up to there and left out only this site's own changes, so the
        position moves there too (unless the batch stopped at a gap).

        Each origin's entries apply in order and once: an entry already held (or this site's
        own, relayed back) is skipped; one whose predecessor from its origin is missing stops
        the batch (``gap``; the position stays before it). Applied entries are appended to this
        site's journal with their origin, origin_seq and clock (so peers can relay them) and
        reach the commit listeners. Conflicts resolve as ``meta/replica.py`` says. Idempotent:
        re-delivery changes nothing."""

    @abstractmethod
    def applied_seq(self, origin: str) -> int:
        """How many changes of ``origin`` this site holds (for itself: how many it made)."""

    @abstractmethod
    def peer_position(self, peer: str) -> int:
        """The ``seq`` in ``peer``'s journal up to which this site has taken entries (0)."""

    # -- objectives (this site's rules; never journaled) -------------------------------------
    @abstractmethod
    def objectives(self) -> list[StoredObjective]:
        """This site's objectives, in order (the first listed wins a contradiction)."""

    @abstractmethod
    def add_objectives(self, texts: list[str]) -> list[str]:
        """Append rules (already validated by the caller) at the end, in one durable
        transaction; returns their new ids (stable, never reused)."""

    @abstractmethod
    def remove_objective(self, objective_id: str) -> StoredObjective:
        """Remove one rule, durably. Raises NotFound."""

    @abstractmethod
    def move_objective(self, objective_id: str, before: str | None) -> None:
        """Put a rule just before another (``None``: at the end), durably. Raises NotFound."""

    # -- site-local settings ----------------------------------------------------------------
    @abstractmethod
    def get_setting(self, key: str) -> str | None:
        """A value this site keeps for itself (never journaled), or None."""

    @abstractmethod
    def put_setting(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` (atomic, not journaled)."""

    # -- garbage collection -----------------------------------------------------------------
    @abstractmethod
    def unreferenced_contents(self, limit: int = 1000) -> list[ContentRecord]:
        """Contents no named inode of this site refers to, oldest first. (An inode without a
        name that is still open keeps its local instance: the volume counts open files.)"""

    @abstractmethod
    def referenced(self, hashes: list[str]) -> set[str]:
        """Those of ``hashes`` that a named inode of this site refers to."""

    @abstractmethod
    def retire_content(self, hash: str) -> int:
        """Journal that ``hash`` will be deleted from the bucket: every site records it as not
        in the bucket any more (so a new write of the same bytes uploads them again). Returns
        this site's origin sequence number of the entry. Durable."""

    @abstractmethod
    def forget_content(self, hash: str) -> None:
        """Drop what the site knows of ``hash`` (after the bucket deleted it). Idempotent."""

    @abstractmethod
    def mark_departed(self, site: str) -> None:
        """Record, durably, that ``site`` left the namespace (its peers stop pulling from it).
        Idempotent."""

    @abstractmethod
    def departed(self) -> set[str]:
        """The sites that left the namespace."""

    def snapshot_to(self, path: Path) -> int:
        """Write a consistent copy of the namespace to ``path`` for a joining site; returns
        the journal position it holds. Engines that cannot raise StoreError."""
        from meridian.errors import StoreError
        raise StoreError(f"the {type(self).__name__} engine does not make snapshots")

    @abstractmethod
    def positions(self) -> dict[str, int]:
        """``applied_seq`` of every origin this site knows."""

    # -- journal ----------------------------------------------------------------------------
    @abstractmethod
    def journal(self, after: int = 0, limit: int = 1000) -> list[JournalEntry]:
        """Entries with ``seq > after`` in order, at most ``limit``."""

    @abstractmethod
    def last_seq(self) -> int:
        """The highest journal sequence number (0 for an empty journal)."""

    @abstractmethod
    def sync(self) -> None:
        """Make every committed change durable (fsync). Namespace operations commit without
        waiting for the disk (atomic, ordered, durable by the next sync or content commit, as
        on ext4); ``set_content`` and ``mark_in_bucket`` are durable when they return."""

    def syncer(self) -> Callable[[], None]:
        """A call that makes every change committed so far durable, like :meth:`sync`, and that
        may run on another thread while this store goes on being used on its own (the fsync
        then does not hold up the event loop). Called on the store's thread; the call it
        returns runs anywhere, once."""
        return self.sync

    @abstractmethod
    def durable_seq(self) -> int:
        """The highest journal sequence known to be on disk: what may be shown to peers."""

    @abstractmethod
    def add_listener(self, listener: Callable[[list[JournalEntry]], None]) -> None:
        """Call ``listener`` with each committed transaction's journal entries, after the
        commit, in commit order (the HTTP API wakes long polls with it)."""

    @abstractmethod
    def close(self) -> None:
        """Release the store. Idempotent."""


@dataclass
class ApplyResult:
    """What one ``apply_entries`` call did.

    ``names`` are the (directory inode, name) pairs whose binding changed and ``inodes`` the
    inodes whose attributes or content changed: what the mount must drop from the kernel's
    cache. ``gap`` is True when the batch stopped at an entry whose predecessors from the same
    origin have not arrived yet (they will, through another peer; the position stays before
    it)."""

    applied: int = 0
    skipped: int = 0
    gap: bool = False
    names: list[tuple[int, str]] = field(default_factory=list)
    inodes: set[int] = field(default_factory=set)
    contents: dict[str, str] = field(default_factory=dict)  # content hash -> site that wrote it
    in_bucket: list[str] = field(default_factory=list)  # contents now known complete in the bucket
    retired: list[str] = field(default_factory=list)  # contents about to leave the bucket


MAX_NAME = 255

META_DIR_FILE_ID = "meridian"  # /.meridian, the same directory at every site

LOST_FOUND_FILE_ID = "lost+found"  # /.meridian/lost+found

RESERVED_FILE_IDS = (ROOT_FILE_ID, META_DIR_FILE_ID, LOST_FOUND_FILE_ID)

def check_name(name: str) -> str:
    """Return ``name`` if it is one valid path component, else raise BadPath."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise BadPath(f"invalid name {name!r}: a name is one path component")
    if len(os.fsencode(name)) > MAX_NAME:
        raise NameTooLong(f"name too long ({len(os.fsencode(name))} bytes, at most {MAX_NAME})")
    return name

def split_path(path: str) -> list[str]:
    """Components of a namespace path (``./a/b``, ``/a/b``, ``a/b``); ``..`` is refused."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for part in parts:
        if part == "..":
            raise BadPath(f"path {path!r} contains '..': paths are confined to the namespace")
        check_name(part)
    return parts
