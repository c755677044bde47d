"""A seeded churn of file operations through real mounts, and the ledger the no-loss check reads.

``Churn.step`` makes one random operation (write, overwrite, mkdir, rename within and across
directories and over existing files, unlink, rmdir, chmod, symlink, hard link, setxattr) at a
random site, with plain ``os`` calls on its mount, and appends a line to ``trace``. The random
stream does not depend on what the operations find (every choice draws the same numbers
whether or not its target exists), so a seed always asks for the same operations; what they
find depends on timing and is in the trace.

The ledger: every write whose close returned is *acknowledged* (``written``: its bytes, unique
per write, to the step that made it). Before an operation that removes or replaces a file
(unlink, rename over it, overwrite), the site reads the file's bytes through its mount; if that
operation then succeeds, the version read was deliberately dropped by a site that could see it
(``dropped``), and only those versions may be missing at the end.
"""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DIRS = ("", "", "d1", "d2", "d1/e")  # where files are made ("" is the root)
SUBDIRS = ("d1", "d2", "d1/e", "d2/e")  # directories made, renamed and removed
NAMES = ("a.txt", "b.exr", "shot.clip", "notes")
MODES = (0o644, 0o600, 0o640, 0o755)
DIR_MODES = (0o755, 0o750, 0o700)

# What an operation may meet when other sites changed the tree meanwhile; anything else
# (EIO above all) fails the run.
EXPECTED_ERRNOS = frozenset({errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR,
                             errno.ENOTDIR, errno.EINVAL, errno.ELOOP, errno.EPERM,
                             errno.ENOTSUP, errno.ENODATA})


@dataclass
class Churn:
    """Random operations at ``mounts`` (site name -> mount point), drawn from ``rng``."""

    mounts: dict[str, Path]
    rng: random.Random
    tag: str  # in every written file's bytes, so versions of different runs never match
    written: dict[bytes, str] = field(default_factory=dict)  # acknowledged bytes -> trace line
    dropped: set[bytes] = field(default_factory=set)
    trace: list[str] = field(default_factory=list)
    steps: int = 0

    def step(self) -> None:
        """One operation at one site; its outcome goes to ``trace``."""
        self.steps += 1
        site = self.rng.choice(sorted(self.mounts))
        ops: list[tuple[int, Callable[[str, Path], str]]] = [
            (30, self._write), (10, self._unlink), (14, self._rename), (8, self._mkdir),
            (5, self._rmdir), (4, self._rename_dir), (6, self._chmod), (5, self._symlink),
            (5, self._link), (7, self._setxattr)]
        op = self.rng.choices([op for _, op in ops], weights=[w for w, _ in ops])[0]
        mount = self.mounts[site]
        try:
            what = op(site, mount)
        except OSError as exc:
            if exc.errno not in EXPECTED_ERRNOS:
                self.trace.append(f"{self.steps:3d} {site:5s} {op.__name__[1:]}: {exc!r}")
                raise
            what = f"{op.__name__[1:]} -> {errno.errorcode.get(exc.errno or 0, exc.errno)}"
        self.trace.append(f"{self.steps:3d} {site:5s} {what}")

    def note(self, line: str) -> None:
        self.trace.append(f"    {line}")

    # -- choices (each draws the same numbers whatever the tree holds) ----------------------

    def _file_path(self) -> str:
        return os.path.join(self.rng.choice(DIRS), self.rng.choice(NAMES))

    def _existing_or_pool(self, mount: Path) -> str:
        """Mostly a name from the pool; sometimes a file that is there now (a conflict copy,
        say), so those get renamed and deleted too."""
        pick_existing, pick, pooled = self.rng.random() < 0.3, self.rng.random(), self._file_path()
        if pick_existing:
            directory = os.path.dirname(pooled)
            try:
                names = sorted(n for n in os.listdir(mount / directory)
                               if not os.path.isdir(mount / directory / n))
            except OSError:
                names = []
            if names:
                return os.path.join(directory, names[int(pick * len(names))])
        return pooled

    # -- what a site saw before it removed or replaced something ----------------------------

    def _seen(self, mount: Path, rel: str) -> bytes | None:
        """The bytes of the regular file at ``rel`` as the site shows them now, or None (no
        such file, a symlink, a directory)."""
        try:
            fd = os.open(mount / rel, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                return None
            raise
        with os.fdopen(fd, "rb") as handle:
            try:
                return handle.read()
            except IsADirectoryError:
                return None

    def _seen_replaced(self, mount: Path, src: str, dst: str) -> bytes | None:
        """``_seen`` of what a rename of ``src`` onto ``dst`` replaces: nothing when both are
        names of one file (rename(2) then does nothing). Removing one name of a file that has
        others counts as dropping its version: a site that removes the other name meanwhile
        removes the file, and neither change is wrong."""
        try:
            if os.lstat(mount / src).st_ino == os.lstat(mount / dst).st_ino:
                return None
        except OSError:
            return None
        return self._seen(mount, dst)

    def _drop(self, seen: bytes | None) -> str:
        if seen is None:
            return ""
        if seen in self.written:
            self.dropped.add(seen)
            return f" (dropped the version of {self.written[seen].split()[0]})"
        return " (dropped an unknown version!)" if seen else ""

    # -- the operations ---------------------------------------------------------------------

    def _write(self, site: str, mount: Path) -> str:
        rel = self._file_path()
        repeat = self.rng.randint(1, 2000)
        data = f"{self.tag} step {self.steps} at {site}: {rel}\n".encode() * repeat
        seen = self._seen(mount, rel)
        fd = os.open(mount / rel, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        line = f"{self.steps} {site} write {rel} ({len(data)} bytes)"
        self.written[data] = line  # acknowledged: close returned
        return f"write {rel} ({len(data)} bytes){self._drop(seen)}"

    def _unlink(self, site: str, mount: Path) -> str:
        rel = self._existing_or_pool(mount)
        seen = self._seen(mount, rel)
        os.unlink(mount / rel)
        return f"unlink {rel}{self._drop(seen)}"

    def _rename(self, site: str, mount: Path) -> str:
        src = self._existing_or_pool(mount)
        dst = self._file_path()
        if not os.path.lexists(mount / src) or os.path.isdir(mount / src):
            raise FileNotFoundError(errno.ENOENT, "no file to rename", src)
        seen = self._seen_replaced(mount, src, dst)
        os.rename(mount / src, mount / dst)
        return f"rename {src} -> {dst}{self._drop(seen)}"

    def _mkdir(self, site: str, mount: Path) -> str:
        rel = self.rng.choice(SUBDIRS)
        os.mkdir(mount / rel)
        return f"mkdir {rel}"

    def _rmdir(self, site: str, mount: Path) -> str:
        rel = self.rng.choice(SUBDIRS)
        os.rmdir(mount / rel)
        return f"rmdir {rel}"

    def _rename_dir(self, site: str, mount: Path) -> str:
        src, dst = self.rng.choice(SUBDIRS), self.rng.choice(SUBDIRS)
        if not os.path.isdir(mount / src):
            raise NotADirectoryError(errno.ENOTDIR, "no directory to rename", src)
        os.rename(mount / src, mount / dst)
        return f"rename dir {src} -> {dst}"

    def _chmod(self, site: str, mount: Path) -> str:
        on_dir, rel_dir = self.rng.random() < 0.3, self.rng.choice(SUBDIRS)
        rel_file = self._file_path()
        mode, dir_mode = self.rng.choice(MODES), self.rng.choice(DIR_MODES)
        rel = rel_dir if on_dir else rel_file
        if os.path.islink(mount / rel):
            raise OSError(errno.ELOOP, "a symlink", rel)
        os.chmod(mount / rel, dir_mode if on_dir else mode)
        return f"chmod {rel} {oct(dir_mode if on_dir else mode)}"

    def _symlink(self, site: str, mount: Path) -> str:
        rel, target = self._file_path(), self.rng.choice(NAMES)
        os.symlink(target, mount / rel)
        return f"symlink {rel} -> {target}"

    def _link(self, site: str, mount: Path) -> str:
        src, dst = self._file_path(), self._file_path()
        os.link(mount / src, mount / dst, follow_symlinks=False)
        return f"link {src} => {dst}"

    def _setxattr(self, site: str, mount: Path) -> str:
        rel, key = self._file_path(), self.rng.choice(("user.status", "user.take"))
        value = f"{site}-{self.steps}".encode()
        os.setxattr(mount / rel, key, value, follow_symlinks=False)
        return f"setxattr {rel} {key}={value.decode()}"
