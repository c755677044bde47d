"""A site's files are its own: no other local user reads its data, volumes or config.

The mount checks permissions from each file's mode and owner; the volume underneath holds the
same bytes without those checks, and the config holds the API token and bucket credentials.
So every folder a site makes is 0700 and every file 0600 (content files 0400): the site's
processes run with umask 077, and a folder or config found open to others when the site
starts is closed again. ``meridian fsck`` reports anything looser (docs/operations.md,
"Private data").
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from meridian.content.durable import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE
from meridian.site.config import SiteConfig

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
OPEN_TO_OTHERS = 0o077  # any group or other permission bit


def use_private_umask() -> None:
    """Make everything this process creates from now on private to its owner."""
    os.umask(PRIVATE_UMASK)


def _roots(config: SiteConfig) -> list[Path]:
    """The site's own folders, each once even if one holds another (volumes under data)."""
    roots: list[Path] = []
    for path in (config.data, *(v.path for v in config.volumes)):
        real = Path(os.path.realpath(path))
        if not any(real == r or r in real.parents for r in roots):
            roots = [r for r in roots if real not in r.parents] + [real]
    return roots


PASS_THROUGH_MODE = 0o711  # others may enter (to reach the mount inside), never list or write


def passed_through(config: SiteConfig) -> Path | None:
    """The data folder when other users must pass through it: the site has an SMB export
    (smbd works as the logged-in user) and its mount is inside the data folder."""
    if config.exports.smb is None or config.mount is None:
        return None
    data = Path(os.path.realpath(config.data))
    return data if data in Path(os.path.realpath(config.mount)).parents else None


def close_to_others(config: SiteConfig) -> list[Path]:
    """Close the site's folders (data, each volume) and its config file if they are open to
    other users; returns what was changed (and logs it). Content files inside a volume are
    closed when the volume opens. Missing paths are skipped. Raises OSError."""
    changed: list[Path] = []
    targets = [(p, PRIVATE_DIR_MODE) for p in _roots(config)]
    if config.path is not None:
        targets.append((config.path, PRIVATE_FILE_MODE))
    passage = passed_through(config)
    for path, mode in targets:
        try:
            current = os.stat(path).st_mode
        except FileNotFoundError:
            continue
        if Path(os.path.realpath(path)) == passage:
            if stat.S_IMODE(current) != PASS_THROUGH_MODE:
                os.chmod(path, PASS_THROUGH_MODE)
            continue
        if current & OPEN_TO_OTHERS:
            os.chmod(path, mode)
            changed.append(path)
    if changed:
        log.warning("closed to other local users (they could read them): %s",
                    ", ".join(str(p) for p in changed))
    return changed


def _walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """``root`` and everything under it, without following symbolic links."""
    try:
        yield root, os.lstat(root)
    except FileNotFoundError:
        return
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(folder, name)
            try:
                yield path, os.lstat(path)
            except FileNotFoundError:  # removed meanwhile (a running site)
                continue


def loose_modes(config: SiteConfig, limit: int = 20) -> list[str]:
    """One line per folder or file of the site (its data folder, volumes and config) that
    another local user may read, write or enter: at most ``limit`` lines, then one that
    counts the rest. Symbolic links are not followed. Empty when all is private."""
    found: list[str] = []
    more = 0
    roots = _roots(config)
    paths = [item for root in roots for item in _walk(root)]
    if config.path is not None:
        real = Path(os.path.realpath(config.path))
        if not any(r in real.parents for r in roots):
            paths.extend(_walk(real))
    passage = passed_through(config)
    for path, st in paths:
        if stat.S_ISLNK(st.st_mode) or not st.st_mode & OPEN_TO_OTHERS:
            continue
        if path == passage and stat.S_IMODE(st.st_mode) == PASS_THROUGH_MODE:
            continue
        if len(found) >= limit:
            more += 1
            continue
        kind, expected = ("folder", "0700") if stat.S_ISDIR(st.st_mode) else ("file", "0600")
        found.append(f"{path}: {kind} mode {stat.S_IMODE(st.st_mode):04o} is open to other "
                     f"local users (expected {expected} or stricter)")
    if more:
        found.append(f"… and {more} more folders or files open to other local users")
    return found
