"""Flame integration: Open Clip files (read, append versions, merge conflict copies, find the
versions of scan-pattern clips). ``meridian.flame.openclip`` documents the modules behind it."""

from meridian.flame.openclip import (
    ClipError,
    ClipVersion,
    FramePattern,
    OpenClip,
    merge,
    merge_conflicts,
    new_clip,
    scan_versions,
)

__all__ = [
    "ClipError",
    "ClipVersion",
    "FramePattern",
    "OpenClip",
    "merge",
    "merge_conflicts",
    "new_clip",
    "scan_versions",
]
