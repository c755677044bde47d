"""Which contents this site saw complete in the bucket itself, remembered across restarts.

Only those may leave the local volume (a peer's word is not enough: the site checks first).
Without this file a site would have to check every local copy its store says is in the bucket
each time it starts (a HEAD per block), and until then could evict nothing. The file is a
hint that only ever saves a check: a hash in it counts only while the store still says the
content is in the bucket, a retired content is struck out (a ``-<hash>`` line), and a lost
or torn file costs checks, never a copy. One hash per line, appended; rewritten at start
with what is still relevant.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)
_HASH = re.compile(r"[0-9a-f]{64}")


class ConfirmedLog:
    """An append-only list of hashes in one file. Loop thread only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, still_relevant: Callable[[str], bool]) -> set[str]:
        """The hashes in the file that ``still_relevant`` keeps; the file is rewritten with
        just those (atomically). A missing or unreadable file gives an empty set."""
        try:
            lines = self.path.read_text(encoding="ascii", errors="replace").split()
        except FileNotFoundError:
            lines = []
        except OSError as exc:
            log.warning("%s: unreadable (%s): local copies are checked in the bucket again",
                        self.path, exc)
            lines = []
        listed: set[str] = set()
        for line in lines:  # in order: a later strike-out wins over an earlier line
            if _HASH.fullmatch(line):
                listed.add(line)
            elif line.startswith("-"):
                listed.discard(line[1:])
        kept = {h for h in listed if still_relevant(h)}
        try:
            temporary = self.path.with_name(self.path.name + ".tmp")
            temporary.write_text("".join(f"{h}\n" for h in sorted(kept)), encoding="ascii")
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("%s: cannot rewrite (%s)", self.path, exc)
        return kept

    def add(self, hashes: Iterable[str]) -> None:
        """Append ``hashes`` (not fsync'd: a line lost in a crash only costs a check)."""
        self._append("".join(f"{h}\n" for h in hashes))

    def strike(self, content_hash: str) -> None:
        """The content is leaving the bucket: it no longer counts, here or after a restart.
        fsync'd: a strike-out lost in a crash could let a copy go on a stale line."""
        self._append(f"-{content_hash}\n", durable=True)

    def _append(self, text: str, durable: bool = False) -> None:
        if not text:
            return
        try:
            with open(self.path, "a", encoding="ascii") as f:
                f.write(text)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as exc:
            log.warning("%s: cannot record (%s)", self.path, exc)
