"""The values of the journal's wire format: limits, the patterns of site names, versions,
file ids and hashes, the version helpers, and the two tools operations are built with:
``WireFields`` (decode one operation's fields, naming the field in every error) and
``FieldChecker`` (the checks an entry from a peer passes). ``journal.py`` defines the
operations on top of them, ``entries.py`` the entry around one."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from typing import Any

from meridian.errors import InvalidJournalEntry

MAX_NAME = 255  # bytes in one path component
MAX_TARGET = 4095  # bytes in a symlink target (PATH_MAX less its NUL)
MAX_XATTR_NAME = 255
MAX_XATTR_VALUE = 65536
MAX_SIZE = (1 << 63) - 1
MAX_ID = (1 << 32) - 1  # uid, gid
_PHYSICAL_SHIFT = 16  # an HLC is (ms << 16) | counter (meta/clock.py)

_SITE = r"[a-z0-9][a-z0-9_-]{0,62}"
SITE_RE = re.compile(_SITE)
_VERSION = rf"[0-9a-f]{{16}}\.{_SITE}"
_VERSION_RE = re.compile(_VERSION)
# a file's id: Meridian's own directories, "<site id>.<counter>", or a conflict copy's id,
# "<file id>!<version it keeps>" (meta/replica.py copy_file_id)
_FILE_ID_RE = re.compile(rf"(?:root|meridian|lost\+found|[0-9a-f]{{32}}\.[1-9][0-9]{{0,18}})"
                         rf"(?:!{_VERSION})*")
_HASH_RE = re.compile(r"[0-9a-f]{64}")
_FILE_TYPES = frozenset({stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO, stat.S_IFSOCK,
                         stat.S_IFCHR, stat.S_IFBLK})


def version(hlc: int, origin: str) -> str:
    """A change's version: strings that compare as rule 5 of docs/design.md orders changes (the
    later HLC wins; equal clocks are ordered by site name)."""
    return f"{hlc:016x}.{origin}"


def version_hlc(ver: str) -> int:
    """The clock value inside a version ("" gives 0)."""
    return int(ver.split(".", 1)[0], 16) if ver else 0


def version_origin(ver: str) -> str:
    return ver.split(".", 1)[1] if ver else ""


# -- decoding -----------------------------------------------------------------------------------
class WireFields:
    """Reads one operation's fields from its wire form, naming the field in every error."""

    def __init__(self, data: Mapping[str, Any], kind: str) -> None:
        self.data = data
        self.kind = kind
        self.read: set[str] = {"op"}

    def _get(self, key: str, required: bool) -> Any:
        self.read.add(key)
        if key not in self.data:
            if required:
                raise InvalidJournalEntry(f"op.{key}", f"missing from a {self.kind} operation")
            return None
        return self.data[key]

    def text(self, key: str) -> str:
        value = self._get(key, True)
        if not isinstance(value, str):
            raise InvalidJournalEntry(f"op.{key}", f"must be a string, got {value_kind(value)}")
        return value

    def maybe_text(self, key: str, required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is not None and not isinstance(value, str):
            raise InvalidJournalEntry(f"op.{key}", f"must be a string or null, got {value_kind(value)}")
        return value

    def number(self, key: str) -> int:
        value = self.maybe_number(key)
        if value is None:
            raise InvalidJournalEntry(f"op.{key}", "must be a whole number, got null")
        return value

    def maybe_number(self, key: str, required: bool = True) -> int | None:
        value = self._get(key, required)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidJournalEntry(f"op.{key}", f"must be a whole number, got {value_kind(value)}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise InvalidJournalEntry(f"op.{unknown[0]}", f"unknown in a {self.kind} operation")


def value_kind(value: object) -> str:
    return "null" if value is None else type(value).__name__



class FieldChecker:
    """The field checks operations use; every failure names ``op.<field>``."""

    def __init__(self, limit_ms: int | None) -> None:
        self.limit_ms = limit_ms

    def clock(self, key: str, hlc: int) -> None:
        if not 0 <= hlc <= MAX_SIZE:
            raise InvalidJournalEntry(key, f"{hlc} is not a clock value")
        if self.limit_ms is not None and hlc >> _PHYSICAL_SHIFT > self.limit_ms:
            ahead = ((hlc >> _PHYSICAL_SHIFT) - self.limit_ms) / 1000
            raise InvalidJournalEntry(
                key, f"clock {hlc >> _PHYSICAL_SHIFT} ms is {ahead:.1f} s beyond this site's "
                     f"clock plus replication.max_clock_skew")

    def name(self, key: str, value: str) -> None:
        if not value or value in (".", "..") or "/" in value or "\0" in value:
            raise InvalidJournalEntry(f"op.{key}", f"{value[:80]!r} is not one path component")
        size = len(os.fsencode(value))
        if size > MAX_NAME:
            raise InvalidJournalEntry(f"op.{key}", f"name of {size} bytes (at most {MAX_NAME})")

    def file_id(self, key: str, value: str) -> None:
        if len(value) > 4096 or _FILE_ID_RE.fullmatch(value) is None:
            raise InvalidJournalEntry(f"op.{key}", f"{value[:80]!r} is not a file id")

    def version(self, key: str, value: str | None) -> None:
        if value is None or value == "":
            return
        if _VERSION_RE.fullmatch(value) is None:
            raise InvalidJournalEntry(f"op.{key}", f"{value[:80]!r} is not a version")
        self.clock(f"op.{key}", version_hlc(value))

    def hash(self, key: str, value: str) -> None:
        if _HASH_RE.fullmatch(value) is None:
            raise InvalidJournalEntry(f"op.{key}", f"{value[:80]!r} is not a content hash "
                                                   "(64 lower-case hex characters)")

    def mode(self, key: str, value: int, *, full: bool) -> None:
        kind = stat.S_IFMT(value)
        if not 0 <= value <= 0o177777 or (kind and kind not in _FILE_TYPES) or (full and not kind):
            raise InvalidJournalEntry(f"op.{key}", f"{value:o} is not a file mode")

    def owner(self, key: str, value: int) -> None:
        self.bounded(key, value, MAX_ID)

    def time(self, key: str, value: int) -> None:
        """Nanoseconds since the epoch; before 1970 is allowed, as in a file system."""
        if not -MAX_SIZE - 1 <= value <= MAX_SIZE:
            raise InvalidJournalEntry(f"op.{key}", f"{value} is not a time in nanoseconds")

    def bounded(self, key: str, value: int, top: int) -> None:
        if not 0 <= value <= top:
            raise InvalidJournalEntry(f"op.{key}", f"{value} is out of range (0 to {top})")

    def target(self, key: str, value: str) -> None:
        size = len(os.fsencode(value))
        if not value or "\0" in value or size > MAX_TARGET:
            raise InvalidJournalEntry(f"op.{key}", f"a symlink target of {size} bytes, or with "
                                                   f"NUL (1 to {MAX_TARGET} bytes)")

    def xattr_name(self, key: str, value: str) -> None:
        size = len(os.fsencode(value))
        if not value or "\0" in value or size > MAX_XATTR_NAME:
            raise InvalidJournalEntry(f"op.{key}", f"{value[:80]!r} is not an attribute name "
                                                   f"(1 to {MAX_XATTR_NAME} bytes, no NUL)")
