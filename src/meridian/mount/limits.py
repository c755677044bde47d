"""The largest file the mount accepts: what every part of the store can hold.

A file's bytes are staged, then kept, as one file on the site's local volume (whose file
system has its own limit: 16 TiB on ext4 with 4 KiB blocks, 8 EiB on XFS or tmpfs), and stored
in the bucket as at most ``MAX_BLOCKS`` blocks of the bucket's block size. A truncate or a
write past the smaller of the two is refused with EFBIG before anything changes.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from meridian.objects.layout import DEFAULT_BLOCK_SIZE, MAX_BLOCKS

LARGEST_OFFSET = (1 << 63) - 1  # off_t
BUCKET_LIMIT = MAX_BLOCKS * DEFAULT_BLOCK_SIZE
"""The most bytes a content can have in a bucket this Meridian lays out (~381 TiB)."""


def file_system_limit(directory: Path) -> int:
    """The largest size a file in ``directory`` can be given (found with ftruncate on an
    unnamed file there, by bisection: each step only changes a length; nothing is written)."""
    with tempfile.TemporaryFile(dir=directory) as probe:
        fd = probe.fileno()
        good, bad = 0, LARGEST_OFFSET + 1
        while bad - good > 1:
            middle = (good + bad) // 2
            try:
                os.ftruncate(fd, middle)
            except OSError as exc:
                if exc.errno not in (errno.EFBIG, errno.EINVAL):
                    raise
                bad = middle
            else:
                good = middle
        os.ftruncate(fd, 0)
    return good


def largest_file_size(volume_root: Path) -> int:
    """The largest file size the mount takes, for a local volume at ``volume_root``."""
    return min(BUCKET_LIMIT, file_system_limit(volume_root))
