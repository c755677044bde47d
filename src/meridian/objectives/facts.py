"""What a rule can ask about one file: :class:`FileFacts`, built by the caller (no I/O here)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass


@dataclass(frozen=True)
class FileFacts:
    """Everything evaluation needs about one file at one moment.

    ``path`` is the namespace path written ``./a/b/c`` (``./`` for the root). Times are unix
    seconds; an age is ``now`` minus the event's time (negative if the clocks disagree).
    ``last_use`` is the last close, read or write; None means ``max(atime, mtime)``.
    ``owner``/``group`` are names when known. ``origin_site`` is the site that wrote the current
    content; the data is local when it equals ``this_site``.
    """

    path: str
    size: int = 0
    kind: str = "file"  # "file" | "directory" | "symlink"
    mtime: float = 0.0
    atime: float = 0.0
    ctime: float = 0.0  # used for CREATE_AGE
    last_use: float | None = None
    uid: int = 0
    gid: int = 0
    owner: str | None = None
    group: str | None = None
    is_open: bool = False
    origin_site: str = ""
    this_site: str = ""
    now: float = 0.0

    @property
    def name(self) -> str:
        """The last path component; "" for the root."""
        last = self.path.rstrip("/").rsplit("/", 1)[-1]
        return "" if last == "." else last

    @property
    def extension(self) -> str:
        """The name's extension without the dot, lower-case; "" if none.

        As ``os.path.splitext``: only the last dot counts, and leading dots do not start an
        extension (``a.tar.gz`` → ``gz``, ``.bashrc`` → ``""``, ``a.`` → ``""``).
        """
        return posixpath.splitext(self.name)[1][1:].lower()

    @property
    def last_use_time(self) -> float:
        """When the file was last used: ``last_use``, or ``max(atime, mtime)`` if unknown."""
        return self.last_use if self.last_use is not None else max(self.atime, self.mtime)
