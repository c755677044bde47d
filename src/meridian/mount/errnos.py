"""The mount's one mapping from errors to errno values, and the names the kernel sends.

Every ``MeridianError`` or ``OSError`` leaves a FUSE handler as ``FUSEError(errno)`` through
``fuse_errors``; nothing else in the mount chooses an errno for a store's error.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pyfuse3

from meridian.errors import (
    BadPath,
    ContentError,
    MeridianError,
    NamespaceError,
    NameTooLong,
    NoSpace,
    ObjectStoreError,
)
from meridian.meta import MAX_NAME

log = logging.getLogger(__name__)


def errno_of(exc: BaseException) -> int:
    """The errno a handler reports for ``exc`` (the mount's single mapping)."""
    if isinstance(exc, NamespaceError):
        return exc.errno
    if isinstance(exc, NameTooLong):
        return errno.ENAMETOOLONG
    if isinstance(exc, BadPath):
        return errno.EINVAL
    if isinstance(exc, NoSpace):
        return errno.ENOSPC
    if isinstance(exc, (ContentError, ObjectStoreError)):
        return errno.EIO
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO


@contextmanager
def fuse_errors(what: str) -> Iterator[None]:
    """Errors leave a handler as FUSEError. Anything else (a bug, or a vendor error a store
    let through) is logged with its traceback and answered EIO: raised into pyfuse3 it would
    end the whole mount, and with it every file's staged bytes."""
    try:
        yield
    except pyfuse3.FUSEError:
        raise
    except (MeridianError, OSError) as exc:
        code = errno_of(exc)
        level = logging.WARNING if code in (errno.EIO, errno.ENOSPC) else logging.DEBUG
        log.log(level, "%s: %s (%s)", what, exc, errno.errorcode.get(code, code))
        raise pyfuse3.FUSEError(code) from None
    except Exception:
        log.exception("%s: unexpected error (EIO)", what)
        raise pyfuse3.FUSEError(errno.EIO) from None


def fsname(name: bytes) -> str:
    """A name from the kernel, decoded; NameTooLong past 255 bytes. Lookup is where the
    kernel sends every name first (stat, chmod, unlink, rename, ...): it reaches us up to
    the kernel's own limit (far above 255), so this check is what makes them ENAMETOOLONG
    rather than ENOENT."""
    if len(name) > MAX_NAME:
        raise NameTooLong(f"name of {len(name)} bytes (at most {MAX_NAME})")
    return os.fsdecode(name)
