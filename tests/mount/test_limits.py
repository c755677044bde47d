"""The largest file the mount accepts (EFBIG past it)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from meridian.mount.limits import BUCKET_LIMIT, file_system_limit, largest_file_size


def test_the_limit_is_the_volume_file_system_or_the_bucket_layout(tmp_path: Path) -> None:
    limit = file_system_limit(tmp_path)
    probe = tmp_path / "probe"
    with open(probe, "wb") as f:
        os.ftruncate(f.fileno(), limit)  # the limit itself is allowed ...
        if limit < (1 << 63) - 1:
            with pytest.raises(OSError) as exc:  # ... one more byte is not
                os.ftruncate(f.fileno(), limit + 1)
            assert exc.value.errno in (errno.EFBIG, errno.EINVAL)
    assert largest_file_size(tmp_path) == min(limit, BUCKET_LIMIT)
    assert not [p for p in tmp_path.iterdir() if p != probe]  # the probe leaves nothing
