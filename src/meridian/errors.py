"""The exception tree shared by every Meridian package.

Stores and services raise these; only two places translate them: the mount turns them into
errno values (``meridian.mount``), the CLI into exit codes and messages (``meridian.cli``).
Vendor exceptions (botocore, sqlite3, OSError from a volume) are translated into this tree at
the one module that talks to the vendor, so callers never catch a vendor type.

    MeridianError
    ├── BadInput                 input refused before anything changed   (CLI exit 2)
    │   ├── ConfigError          a config key missing or wrong (names the key)
    │   ├── BadPath              a path that is absolute where it must not be, has '..', ...
    │   │   └── NameTooLong      a name longer than 255 bytes                 (ENAMETOOLONG)
    │   └── InvalidJournalEntry  a journal entry no site could have written (names the field)
    ├── NamespaceError           a namespace operation refused; carries an errno
    │   ├── NotFound             ENOENT
    │   ├── AlreadyExists        EEXIST
    │   ├── NotADirectory        ENOTDIR
    │   ├── IsADirectory         EISDIR
    │   ├── DirectoryNotEmpty    ENOTEMPTY
    │   ├── InvalidOperation     EINVAL (e.g. rename a directory into itself)
    │   └── NoAttribute          ENODATA (extended attribute missing)
    ├── NoSpace                  a local volume is full and nothing is evictable   (ENOSPC)
    ├── ContentError             content missing, incomplete or corrupt            (EIO)
    │   └── ContentUnavailable   not local and could not be fetched in time
    ├── ObjectStoreError         the bucket failed
    │   ├── ObjectNotFound       a key that does not exist (get of a missing key)
    │   ├── BucketUnreachable    connection refused, timeout, DNS, 5xx after retries (exit 3)
    │   ├── BucketAccessDenied   credentials refused (exit 3)
    │   └── BucketFormatError    no format marker, or a format version we do not know
    └── StoreError               the metadata store is corrupt or from an unknown schema
"""

from __future__ import annotations

import errno as _errno


class MeridianError(Exception):
    """Root of every error Meridian raises on purpose."""


class BadInput(MeridianError):
    """Input refused before anything changed."""


class ConfigError(BadInput):
    """A configuration value is missing or wrong. ``key`` names it (dotted, e.g. ``bucket.url``)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config: {key}: {problem}")
        self.key = key
        self.problem = problem


class BadPath(BadInput):
    """A path from outside that cannot be used (``..``, empty component, NUL, too long)."""


class NameTooLong(BadPath):
    """A name longer than the 255 bytes a path component may have."""


class InvalidJournalEntry(BadInput):
    """A journal entry (from a peer, or read back) that breaks the wire format's contract.
    ``field`` names what is wrong (``op.name``, ``hlc``, ...)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NamespaceError(MeridianError):
    """A namespace operation was refused; ``errno`` says why in POSIX terms."""

    errno: int = _errno.EIO


class NotFound(NamespaceError):
    errno = _errno.ENOENT


class AlreadyExists(NamespaceError):
    errno = _errno.EEXIST


class NotADirectory(NamespaceError):
    errno = _errno.ENOTDIR


class IsADirectory(NamespaceError):
    errno = _errno.EISDIR


class DirectoryNotEmpty(NamespaceError):
    errno = _errno.ENOTEMPTY


class InvalidOperation(NamespaceError):
    errno = _errno.EINVAL


class NoAttribute(NamespaceError):
    errno = _errno.ENODATA


class NoSpace(MeridianError):
    """A local volume cannot take more bytes: it is full and nothing in it is evictable."""


class ContentError(MeridianError):
    """Content is missing, incomplete or does not match its hash."""


class ContentUnavailable(ContentError):
    """Content is not local and could not be fetched before the read timeout."""


class ObjectStoreError(MeridianError):
    """The object store (bucket) failed."""


class ObjectNotFound(ObjectStoreError):
    """The key does not exist in the bucket."""


class BucketUnreachable(ObjectStoreError):
    """The bucket could not be reached (refused, timed out, 5xx)."""


class BucketAccessDenied(ObjectStoreError):
    """The bucket refused our credentials or the operation (403)."""


class BucketFormatError(ObjectStoreError):
    """The bucket has no Meridian format marker we understand."""


class PeerUnreachable(MeridianError):
    """Another site's API could not be reached, or refused this site's token for it."""


class StoreError(MeridianError):
    """The metadata store is unusable (corrupt, or written by an unknown schema version)."""
