"""A read-only view of a local volume, safe beside the running site that owns it.

``LocalVolume`` tidies up on open (it removes staging files a crash left), which must never
happen while the site runs; the CLI's ``status``, ``ls --placement`` and ``fsck`` use this
instead. It only reads the volume's folders (layout in ``layout.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

from meridian.content.layout import DATA_SUFFIX, VolumeLayout, decode_partial_record
from meridian.content.records import VolumeUsage


class VolumeInspector:
    def __init__(self, root: Path, capacity: int | None = None) -> None:
        self.layout = VolumeLayout(Path(root))
        self.capacity = capacity

    def has(self, hash: str) -> bool:
        """Whether a complete instance is on the volume."""
        return self.layout.content_path(hash).is_file()

    def present_bytes(self, hash: str) -> int:
        """Bytes present locally: the size for a complete instance, the fetched bytes of a
        partial one, 0 if there is none."""
        path = self.layout.content_path(hash)
        if path.is_file():
            return path.stat().st_size
        try:
            _, ranges = decode_partial_record(self.layout.partial_ranges_path(hash).read_bytes())
        except (OSError, ValueError):
            return 0
        return ranges.total()

    def usage(self) -> VolumeUsage:
        """Bytes on the volume now (complete, partial, staging), from the files themselves."""
        complete = partial = staging = count = 0
        for folder, kind in ((self.layout.content_dir, "complete"),
                             (self.layout.partial_dir, "partial"),
                             (self.layout.staging_dir, "staging")):
            for dirpath, _, files in os.walk(folder):
                for name in files:
                    try:
                        st = os.stat(os.path.join(dirpath, name))
                    except FileNotFoundError:
                        continue
                    used = st.st_blocks * 512 if kind == "partial" else st.st_size
                    if kind == "complete":
                        complete += used
                        count += 1
                    elif kind == "partial" and name.endswith(DATA_SUFFIX):
                        partial += used
                        count += 1
                    elif kind == "staging":
                        staging += used
        return VolumeUsage(capacity=self.capacity, used=complete + partial + staging,
                           staging=staging, complete=complete, partial=partial, count=count)
