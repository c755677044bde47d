"""`meridian flame watch ROOT`: report new versions of the Open Clips under ROOT, as they come.

On a Meridian mount it follows the site's event stream (server-sent events, filtered to
``.clip`` files under ROOT) — no polling of the tree: a clip rewritten at any site is an event
here once replication applies it. Each changed clip is read and compared with what was known of
it; a version not seen before is reported (``sh010: new version v001 (from west, 0.31 s)``, the
delay measured from the change's clock at the writing site). Conflict copies of clips that
appear (two sites added a version at once) are merged as they come.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meridian.errors import MeridianError
from meridian.sitecall import SiteClient


@dataclass(frozen=True)
class NewVersion:
    shot: str  # the clip's name (file name without .clip)
    version: str
    origin: str  # the site that wrote the clip
    delay: float  # seconds from the write at the origin to this report
    path: Path

    def __str__(self) -> str:
        return (f"{self.shot}: new version {self.version} (from {self.origin}, "
                f"{self.delay:.2f} s)")


def hlc_seconds(hlc: int) -> float:
    """Wall time of a hybrid logical clock value (ms << 16 | counter)."""
    return (hlc >> 16) / 1000.0


class ClipWatcher:
    """Follows one site's event stream for the clips under ``root`` (a folder in its mount,
    ``namespace_root`` the same folder as a namespace path ``/a/b``)."""

    def __init__(self, client: SiteClient, mount: Path, namespace_root: str,
                 on_version: Callable[[NewVersion], None],
                 on_note: Callable[[str], None] = print) -> None:
        self.client = client
        self.mount = mount
        self.namespace_root = "/" + namespace_root.strip("/")
        self.on_version = on_version
        self.on_note = on_note
        self.known: dict[str, set[str]] = {}

    def prime(self) -> None:
        """Remember the versions of the clips that exist now (they are not news)."""
        top = self.mount / self.namespace_root.lstrip("/")
        for clip in top.rglob("*.clip"):
            self.known[str(clip)] = self._versions(clip)

    def _versions(self, path: Path) -> set[str]:
        from meridian.flame.openclip import OpenClip, scan_versions

        try:
            clip = OpenClip.read(path)
        except (MeridianError, OSError):
            return set()
        if clip.kind == "scan" and clip.scan_pattern:
            return set(scan_versions(clip.scan_pattern, self.mount))
        return {v.name for v in clip.versions()}

    def events(self, after: int | None = None, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The stream's events, in order. A replay that stops at a page's end yields
        ``{"continue": N}``: ask again with ``after=N``."""
        glob = "." + self.namespace_root.rstrip("/") + "/*.clip"
        params: dict[str, Any] = {"glob": glob, "heartbeat": 5}
        if after is not None:
            params["after"] = after
        deadline = time.monotonic() + timeout if timeout else None
        kind = "change"
        for line in self.client.stream_lines("/events", params):
            if deadline is not None and time.monotonic() > deadline:
                return
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                event: dict[str, Any] = json.loads(line.removeprefix("data: "))
                if kind == "continue":
                    yield {"continue": int(event["after"])}
                    return
                yield event

    def handle(self, event: dict[str, Any]) -> list[NewVersion]:
        """One event: report the versions it brought (and merge conflict copies)."""
        path_text = event.get("path")
        if not path_text or event.get("op") not in ("content", "rename", "create"):
            return []
        path = self.mount / str(path_text).lstrip("/")
        if ".conflict-" in path.name:
            from meridian.flame.openclip import merge_conflicts
            for note in merge_conflicts(path.parent):
                self.on_note(note)
            return []
        found = self._versions(path)
        before = self.known.get(str(path), set())
        self.known[str(path)] = found | before
        news = []
        for version in sorted(found - before):
            delay = max(0.0, time.time() - hlc_seconds(int(event.get("hlc") or 0)))
            news.append(NewVersion(path.stem, version, str(event.get("origin")), delay, path))
        for item in news:
            self.on_version(item)
        return news
