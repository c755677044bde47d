"""The Flame page's data: the Open Clips under a root, each clip's versions, and where and how
late the newest one arrived (from the event stream, as ``meridian flame watch`` reports it).

Clips are read from this site's volume when their content is here (a clip is small; the
guide's rule keeps them local); a clip whose content is not here yet is listed without its
versions, with a note. Caching a version starts a cache job on its frames: the frame paths a
clip names are those of the site that wrote it, so they are taken from the root's namespace
path onwards.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from meridian.errors import BadInput, MeridianError, NotFound
from meridian.flame.watch import hlc_seconds
from meridian.meta import ContentOp

if TYPE_CHECKING:
    from meridian.meta import JournalEntry
    from meridian.site import Site

DEFAULT_ROOT = "/hs-mount/project"
CLIPS_SHOWN = 300
CLIP_FETCHED = 4 << 20  # bytes: a clip larger than this is not fetched to be listed


class ClipArrivals:
    """For each file, the site and the delay of its latest content change, taken as each
    journal entry commits (cheap: no path is resolved; the Flame page looks clips up by file
    id). At most ``KEPT`` files are remembered, the oldest forgotten first."""

    KEPT = 10_000

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}

    def committed(self, entries: list[JournalEntry]) -> None:
        now = time.time()
        for entry in entries:
            fid = entry.op.file_id
            if isinstance(entry.op, ContentOp) and fid is not None:
                self.latest.pop(fid, None)
                self.latest[fid] = {
                    "origin": entry.origin, "delay": max(0.0, now - hlc_seconds(entry.hlc))}
        while len(self.latest) > self.KEPT:
            self.latest.pop(next(iter(self.latest)))


async def clips_under(site: Site, root: str, arrivals: ClipArrivals) -> list[dict[str, Any]]:
    """The clips under the namespace folder ``root``, each with its versions (newest last).
    A clip's content not on this volume is fetched first (as a read through the mount
    would: ``flame watch`` reads the clips it reports), if it is at most ``CLIP_FETCHED``."""
    from meridian.flame.openclip import OpenClip

    try:
        top = site.meta.resolve(root.strip("/")) if root.strip("/") else site.meta.getattr(1)
    except NotFound:
        return []
    clips: list[dict[str, Any]] = []
    for path, inode in site.meta.walk(top.ino):
        if not (inode.is_file and path.endswith(".clip")):
            continue
        shot = path.rsplit("/", 1)[-1][:-5]
        sequence = path[len(root.rstrip("/")):].strip("/").split("/")[0]
        entry: dict[str, Any] = {"path": path, "shot": shot, "sequence": sequence,
                                 "versions": [], "note": "",
                                 "arrival": arrivals.latest.get(inode.file_id)}
        if inode.content and not site.volume.has(inode.content) and inode.size <= CLIP_FETCHED:
            try:
                await site.mover.ensure_local(inode.content, inode.size, 0, inode.size,
                                              timeout=5.0)
            except (MeridianError, OSError) as exc:
                entry["note"] = f"not fetched: {exc}"
        if inode.content and site.volume.has(inode.content):
            try:
                data = site.volume.read(inode.content, 0, inode.size)
                clip = OpenClip.parse(data, path)
                entry["versions"] = [v.name for v in clip.versions()]
                entry["current"] = clip.current_version
            except (MeridianError, OSError, ValueError) as exc:
                entry["note"] = f"unreadable: {exc}"
        elif inode.content and not entry["note"]:
            entry["note"] = "the clip's content is not on this site's volume yet"
        clips.append(entry)
        if len(clips) >= CLIPS_SHOWN:
            break
    return clips


def version_frames(site: Site, clip_path: str, version: str, root: str) -> list[str]:
    """The namespace paths (``./a/b``) of the frames of ``version`` of the clip. Raises
    BadInput (no such version, frames outside the root) or NotFound."""
    from meridian.flame.openclip import FramePattern, OpenClip

    inode = site.meta.resolve(clip_path.strip("/"))
    if not inode.content or not site.volume.has(inode.content):
        raise BadInput(f"{clip_path}: the clip itself is not on this site's volume yet")
    clip = OpenClip.parse(site.volume.read(inode.content, 0, inode.size), clip_path)
    chosen = next((v for v in clip.versions() if v.name == version), None)
    if chosen is None:
        raise BadInput(f"{clip_path}: no version {version!r}")
    anchor = "/" + root.strip("/") + "/"
    frames: list[str] = []
    for pattern in chosen.paths.values():
        for frame in FramePattern.parse(pattern).frames():
            text = str(frame)
            at = text.find(anchor)
            if at < 0:
                raise BadInput(f"frame {text} of {version} is not under {root}")
            frames.append("." + text[at:])
    if not frames:
        raise BadInput(f"{clip_path}: version {version} names no frames")
    return frames
