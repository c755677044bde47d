"""The journal's wire format: every operation a site replays, as a typed, versioned contract.

A journal entry is what one site tells the others of one change. Its operation is one of the
frozen dataclasses below; nothing else in Meridian reads an operation by key. On the wire
(``GET /api/v1/journal``) and in the SQLite store an entry is JSON::

    {"seq": 42, "origin": "east", "origin_seq": 17, "hlc": 116..., "op": {"op": "create", ...}}

and the journal answer carries ``"format": JOURNAL_FORMAT``. ``docs/replication.md`` documents
every operation and field; a site refuses an answer in a format newer than its own.

This module holds the operations: each decodes itself from its wire form (:func:`op_from_wire`,
every required key present, no unknown key, every value of its type) and checks its fields as
strictly as a local change is checked (``Op.check``). The entry around an operation, and the
two gates built on these (``entry_from_wire``, ``check_entry``), are in ``entries.py``; the
values all of them rely on (limits, patterns, version helpers, the field reader and checker) are
in ``wirevalues.py``.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from meridian.errors import InvalidJournalEntry
from meridian.meta.wirevalues import (
    MAX_ID,
    MAX_SIZE,
    MAX_XATTR_VALUE,
    FieldChecker,
    WireFields,
    value_kind,
)
from meridian.meta.wirevalues import version as version
from meridian.meta.wirevalues import version_hlc as version_hlc
from meridian.meta.wirevalues import version_origin as version_origin

JOURNAL_FORMAT = 2  # the version of the wire format below (docs/replication.md); 2: undo ops
JOURNAL_STREAM_MEDIA_TYPE = "application/x-ndjson"  # a journal answer of one batch per line

# -- the operations -----------------------------------------------------------------------------
class Op:
    """One namespace or content operation. ``KIND`` is its name on the wire."""

    __slots__ = ()
    KIND: ClassVar[str]

    @property
    def file_id(self) -> str | None:
        """The file the operation changes (None for content-only operations)."""
        return None

    @property
    def place(self) -> tuple[str | None, str | None]:
        """(directory file id, name) the operation names the file by, if it does."""
        return None, None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"op": self.KIND}
        for f in fields(self):  # type: ignore[arg-type]
            wire[f.name] = getattr(self, f.name)
        return wire

    def check(self, c: FieldChecker) -> None:
        """Raise InvalidJournalEntry if a field holds what no site could have written."""


_O = TypeVar("_O", bound=Op)
_DECODERS: dict[str, Callable[[WireFields], Op]] = {}


def _wire(kind: str) -> Callable[[type[_O]], type[_O]]:
    def register(cls: type[_O]) -> type[_O]:
        cls.KIND = kind
        _DECODERS[kind] = cls.decode  # type: ignore[attr-defined]
        return cls
    return register


class _FileOp(Op):
    __slots__ = ()
    fid: str

    @property
    def file_id(self) -> str | None:
        return self.fid


@_wire("create")
@dataclass(frozen=True, slots=True)
class CreateOp(_FileOp):
    """A file, directory, symlink, FIFO, socket or device node made in ``parent``."""

    parent: str
    name: str
    fid: str
    mode: int  # full st_mode: type and permission bits
    uid: int
    gid: int
    target: str | None = None  # symlinks only
    rdev: int = 0  # device nodes only

    @property
    def place(self) -> tuple[str | None, str | None]:
        return self.parent, self.name

    @classmethod
    def decode(cls, f: WireFields) -> CreateOp:
        return cls(f.text("parent"), f.text("name"), f.text("fid"), f.number("mode"),
                   f.number("uid"), f.number("gid"), f.maybe_text("target", required=False),
                   f.maybe_number("rdev", required=False) or 0)

    def check(self, c: FieldChecker) -> None:
        c.file_id("parent", self.parent)
        c.name("name", self.name)
        c.file_id("fid", self.fid)
        c.mode("mode", self.mode, full=True)
        c.owner("uid", self.uid)
        c.owner("gid", self.gid)
        is_link = stat.S_ISLNK(self.mode)
        if is_link != (self.target is not None):
            raise InvalidJournalEntry("op.target", "a symlink needs a target and nothing else has one")
        if self.target is not None:
            c.target("target", self.target)
        c.bounded("rdev", self.rdev, MAX_SIZE)


@_wire("link")
@dataclass(frozen=True, slots=True)
class LinkOp(_FileOp):
    """One more name for a file."""

    fid: str
    parent: str
    name: str

    @property
    def place(self) -> tuple[str | None, str | None]:
        return self.parent, self.name

    @classmethod
    def decode(cls, f: WireFields) -> LinkOp:
        return cls(f.text("fid"), f.text("parent"), f.text("name"))

    def check(self, c: FieldChecker) -> None:
        c.file_id("fid", self.fid)
        c.file_id("parent", self.parent)
        c.name("name", self.name)


@_wire("unlink")
@dataclass(frozen=True, slots=True)
class UnlinkOp(_FileOp):
    """One name of a non-directory removed; ``seen`` is the content version it removed,
    ``left`` how many names the file kept at the origin (0: deleted; None: not said, as
    deleted), ``bound`` the version of the change that gave it that name (for hard links)."""

    parent: str
    name: str
    fid: str
    seen: str | None = None
    left: int | None = None
    bound: str | None = None

    @property
    def place(self) -> tuple[str | None, str | None]:
        return self.parent, self.name

    @classmethod
    def decode(cls, f: WireFields) -> UnlinkOp:
        return cls(f.text("parent"), f.text("name"), f.text("fid"),
                   f.maybe_text("seen", required=False), f.maybe_number("left", required=False),
                   f.maybe_text("bound", required=False))

    def check(self, c: FieldChecker) -> None:
        c.file_id("parent", self.parent)
        c.name("name", self.name)
        c.file_id("fid", self.fid)
        c.version("seen", self.seen)
        if self.left is not None:
            c.bounded("left", self.left, MAX_ID)
        c.version("bound", self.bound)


@_wire("rmdir")
@dataclass(frozen=True, slots=True)
class RmdirOp(_FileOp):
    """An empty directory removed."""

    parent: str
    name: str
    fid: str

    @property
    def place(self) -> tuple[str | None, str | None]:
        return self.parent, self.name

    @classmethod
    def decode(cls, f: WireFields) -> RmdirOp:
        return cls(f.text("parent"), f.text("name"), f.text("fid"))

    def check(self, c: FieldChecker) -> None:
        c.file_id("parent", self.parent)
        c.name("name", self.name)
        c.file_id("fid", self.fid)


@_wire("rename")
@dataclass(frozen=True, slots=True)
class RenameOp(_FileOp):
    """A name moved; what it saw: the name's version (``name_seen``), the version of the
    change that gave the file the name moved (``bound``, for hard links), and the file it
    replaced at the destination (``replaced``) with that file's content version
    (``replaced_seen``)."""

    parent: str
    name: str
    new_parent: str
    new_name: str
    fid: str
    name_seen: str | None = None
    replaced: str | None = None
    replaced_seen: str | None = None
    bound: str | None = None
    replaced_left: int | None = None
    replaced_bound: str | None = None

    @property
    def place(self) -> tuple[str | None, str | None]:
        return self.new_parent, self.new_name

    @classmethod
    def decode(cls, f: WireFields) -> RenameOp:
        return cls(f.text("parent"), f.text("name"), f.text("new_parent"), f.text("new_name"),
                   f.text("fid"), f.maybe_text("name_seen", required=False),
                   f.maybe_text("replaced", required=False),
                   f.maybe_text("replaced_seen", required=False),
                   f.maybe_text("bound", required=False),
                   f.maybe_number("replaced_left", required=False),
                   f.maybe_text("replaced_bound", required=False))

    def check(self, c: FieldChecker) -> None:
        c.file_id("parent", self.parent)
        c.name("name", self.name)
        c.file_id("new_parent", self.new_parent)
        c.name("new_name", self.new_name)
        c.file_id("fid", self.fid)
        c.version("name_seen", self.name_seen)
        if self.replaced is not None:
            c.file_id("replaced", self.replaced)
        c.version("replaced_seen", self.replaced_seen)
        c.version("bound", self.bound)
        if self.replaced_left is not None:
            c.bounded("replaced_left", self.replaced_left, MAX_ID)
        c.version("replaced_bound", self.replaced_bound)


@_wire("setattr")
@dataclass(frozen=True, slots=True)
class SetattrOp(_FileOp):
    """Mode, owner or times changed (None: left as it was)."""

    fid: str
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    atime_ns: int | None = None
    mtime_ns: int | None = None

    @property
    def changes_owner(self) -> bool:
        return self.mode is not None or self.uid is not None or self.gid is not None

    def to_wire(self) -> dict[str, Any]:
        return {key: value for key, value in Op.to_wire(self).items() if value is not None}

    @classmethod
    def decode(cls, f: WireFields) -> SetattrOp:
        return cls(f.text("fid"), *(f.maybe_number(key, required=False)
                                    for key in ("mode", "uid", "gid", "atime_ns", "mtime_ns")))

    def check(self, c: FieldChecker) -> None:
        c.file_id("fid", self.fid)
        if self.mode is not None:
            c.mode("mode", self.mode, full=False)
        for key in ("uid", "gid"):
            value = getattr(self, key)
            if value is not None:
                c.owner(key, value)
        for key in ("atime_ns", "mtime_ns"):
            value = getattr(self, key)
            if value is not None:
                c.time(key, value)


@_wire("content")
@dataclass(frozen=True, slots=True)
class ContentOp(_FileOp):
    """A file's content replaced (``hash`` None: empty), based on content version ``base``.
    It carries where and how the file was (``parent``, ``name``, ``name_version``, ``mode``,
    owner), enough to bring it back at a site that deleted it meanwhile."""

    fid: str
    hash: str | None
    size: int
    mtime: int
    base: str | None = None
    parent: str | None = None
    name: str | None = None
    name_version: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    @property
    def place(self) -> tuple[str | None, str | None]:
        return self.parent, self.name

    @classmethod
    def decode(cls, f: WireFields) -> ContentOp:
        return cls(f.text("fid"), f.maybe_text("hash"), f.number("size"), f.number("mtime"),
                   f.maybe_text("base", required=False), f.maybe_text("parent", required=False),
                   f.maybe_text("name", required=False),
                   f.maybe_text("name_version", required=False),
                   f.maybe_number("mode", required=False), f.maybe_number("uid", required=False),
                   f.maybe_number("gid", required=False))

    def check(self, c: FieldChecker) -> None:
        c.file_id("fid", self.fid)
        if self.hash is not None:
            c.hash("hash", self.hash)
        c.bounded("size", self.size, MAX_SIZE)
        c.time("mtime", self.mtime)
        c.version("base", self.base)
        if (self.parent is None) != (self.name is None):
            raise InvalidJournalEntry("op.name", "parent and name come together or not at all")
        if self.parent is not None and self.name is not None:
            c.file_id("parent", self.parent)
            c.name("name", self.name)
        c.version("name_version", self.name_version)
        if self.mode is not None:
            c.mode("mode", self.mode, full=True)
            if not stat.S_ISREG(self.mode):
                raise InvalidJournalEntry("op.mode", f"{self.mode:o}: only regular files have content")
        for key in ("uid", "gid"):
            value = getattr(self, key)
            if value is not None:
                c.owner(key, value)


@_wire("setxattr")
@dataclass(frozen=True, slots=True)
class SetxattrOp(_FileOp):
    """An extended attribute set (hex on the wire)."""

    fid: str
    name: str
    value: bytes

    def to_wire(self) -> dict[str, Any]:
        return {"op": self.KIND, "fid": self.fid, "name": self.name, "value": self.value.hex()}

    @classmethod
    def decode(cls, f: WireFields) -> SetxattrOp:
        text = f.text("value")
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise InvalidJournalEntry("op.value", "must be hexadecimal") from None
        return cls(f.text("fid"), f.text("name"), value)

    def check(self, c: FieldChecker) -> None:
        c.file_id("fid", self.fid)
        c.xattr_name("name", self.name)
        if len(self.value) > MAX_XATTR_VALUE:
            raise InvalidJournalEntry("op.value", f"{len(self.value)} bytes: at most "
                                                  f"{MAX_XATTR_VALUE}")


@_wire("removexattr")
@dataclass(frozen=True, slots=True)
class RemovexattrOp(_FileOp):
    """An extended attribute removed."""

    fid: str
    name: str

    @classmethod
    def decode(cls, f: WireFields) -> RemovexattrOp:
        return cls(f.text("fid"), f.text("name"))

    def check(self, c: FieldChecker) -> None:
        c.file_id("fid", self.fid)
        c.xattr_name("name", self.name)


@_wire("instance")
@dataclass(frozen=True, slots=True)
class InstanceOp(Op):
    """A content is complete in the bucket."""

    hash: str
    size: int
    volume: str = "bucket"

    @classmethod
    def decode(cls, f: WireFields) -> InstanceOp:
        return cls(f.text("hash"), f.number("size"), f.maybe_text("volume", required=False)
                   or "bucket")

    def check(self, c: FieldChecker) -> None:
        c.hash("hash", self.hash)
        c.bounded("size", self.size, MAX_SIZE)
        if self.volume != "bucket":
            raise InvalidJournalEntry("op.volume", f"{self.volume!r}: only 'bucket' is known")


@_wire("retire")
@dataclass(frozen=True, slots=True)
class RetireOp(Op):
    """A content is about to be deleted from the bucket (garbage collection)."""

    hash: str

    @classmethod
    def decode(cls, f: WireFields) -> RetireOp:
        return cls(f.text("hash"))

    def check(self, c: FieldChecker) -> None:
        c.hash("hash", self.hash)


# the undo operations (trash, purge, snapshot, unsnapshot) register themselves: format 2
from meridian.meta import undoops as _undoops  # noqa: E402,F401

OP_KINDS = tuple(_DECODERS)


def op_from_wire(data: object) -> Op:
    """The operation of ``data`` (its wire form). Raises InvalidJournalEntry."""
    if not isinstance(data, Mapping):
        raise InvalidJournalEntry("op", f"must be an object, got {value_kind(data)}")
    kind = data.get("op")
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise InvalidJournalEntry("op.op", f"unknown operation {kind!r} (known: "
                                           f"{', '.join(OP_KINDS)})")
    reader = WireFields(data, str(kind))
    op = decoder(reader)
    reader.done()
    return op
