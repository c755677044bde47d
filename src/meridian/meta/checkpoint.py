"""Background WAL checkpoints for the SQLite engine.

SQLite's automatic checkpoint runs inside the commit that crosses its threshold (1,000 pages):
every ~150th namespace change paid for copying the WAL into the database and two fsyncs, in
the FUSE request that made it. :class:`Checkpointer` does that work on its own thread and
connection instead, with ``PASSIVE`` checkpoints, which never block the writer or readers
(SQLite copies what no reader still needs and stops there).

Durability is unchanged: a checkpoint only moves committed pages from the WAL to the database
file, fsyncing the WAL before and the database after (``synchronous`` is FULL on this
connection), so nothing the writer made durable is ever only in memory.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class Checkpointer:
    """Checkpoint ``path``'s WAL every ``every`` seconds until :meth:`stop` (idempotent)."""

    def __init__(self, path: Path, every: float = 0.2) -> None:
        self.path = path
        self.every = every
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"checkpoint:{path.name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=FULL")
            while not self._stopping.wait(self.every):
                self.checkpoint(db)
        finally:
            db.close()

    def checkpoint(self, db: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint; failures are logged and retried at the next turn."""
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # done: no snapshot held
        except sqlite3.Error as exc:
            log.warning("checkpoint of %s failed (retried in %.1fs): %s", self.path, self.every,
                        exc)

    def stop(self) -> None:
        """Stop the thread and wait for it (a checkpoint in progress completes first)."""
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
