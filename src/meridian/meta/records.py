"""What a site keeps beside its tree: uploads, objectives, settings, garbage collection
bookkeeping, departed sites and positions, and reading the journal.

``SiteRecords`` implements those ``MetaStore`` operations over the engine hooks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import replace as _replace

from meridian.errors import (
    NotFound,
)
from meridian.meta.core import NamespaceCore
from meridian.meta.entries import JournalEntry
from meridian.meta.interface import (
    ContentRecord,
    PendingUpload,
    StoredObjective,
)
from meridian.meta.journal import (
    InstanceOp,
    RetireOp,
)


class SiteRecords(NamespaceCore):
    """The ``MetaStore`` operations that are not namespace changes."""

    def content(self, hash: str) -> ContentRecord | None:
        return self._get_content(hash)

    def pending_uploads(self, limit: int = 100, *, now: float | None = None) -> list[PendingUpload]:
        return self._due_uploads(limit, now)

    def upload_count(self) -> int:
        return self._count("uploads")

    def upload_failed(self, hash: str, next_try: float, error: str) -> None:
        with self._transaction(durable=False):
            upload = self._get_upload(hash)
            if upload is not None:
                self._put_upload(_replace(upload, attempts=upload.attempts + 1, next_try=next_try,
                                          last_error=error[:500]))

    def mark_all_in_bucket(self, hashes: Iterable[str], *, durable: bool = True) -> None:
        with self._transaction(durable=durable):
            for hash in hashes:
                record = self._get_content(hash)
                self._del_upload(hash)
                if record is None or record.in_bucket:
                    continue
                self._put_content(_replace(record, in_bucket=True))
                self._journal(self._clock.now(), InstanceOp(hash, record.size))

    def objectives(self) -> list[StoredObjective]:
        raw = self._get_kv("objectives")
        return [StoredObjective(**row) for row in json.loads(raw)] if raw else []

    def _put_objectives(self, rules: list[StoredObjective]) -> None:
        self._put_kv("objectives", json.dumps([vars(r) for r in rules]))

    def add_objectives(self, texts: list[str]) -> list[str]:
        with self._transaction(durable=True):
            rules = self.objectives()
            ids = [f"o{self._bump('next_objective')}" for _ in texts]
            now = time.time()
            rules += [StoredObjective(i, t, now) for i, t in zip(ids, texts)]
            self._put_objectives(rules)
        return ids

    def remove_objective(self, objective_id: str) -> StoredObjective:
        with self._transaction(durable=True):
            rules = self.objectives()
            found = next((r for r in rules if r.id == objective_id), None)
            if found is None:
                raise NotFound(f"no objective {objective_id!r} at site {self.site_name}")
            self._put_objectives([r for r in rules if r.id != objective_id])
        return found

    def move_objective(self, objective_id: str, before: str | None) -> None:
        with self._transaction(durable=True):
            rules = self.objectives()
            ids = [r.id for r in rules]
            for wanted in (objective_id, before):
                if wanted is not None and wanted not in ids:
                    raise NotFound(f"no objective {wanted!r} at site {self.site_name}")
            moving = rules[ids.index(objective_id)]
            rest = [r for r in rules if r.id != objective_id]
            at = len(rest) if before is None else [r.id for r in rest].index(before)
            rest.insert(at, moving)
            self._put_objectives(rest)

    def get_setting(self, key: str) -> str | None:
        return self._get_kv(f"setting:{key}")

    def put_setting(self, key: str, value: str) -> None:
        with self._transaction():
            self._put_kv(f"setting:{key}", value)

    def referenced(self, hashes: list[str]) -> set[str]:
        return {h for h in hashes if self._content_in_use(h)}

    def unreferenced_contents(self, limit: int = 1000) -> list[ContentRecord]:
        return self._unreferenced(limit)

    def retire_content(self, hash: str) -> int:
        with self._transaction(durable=True):
            record = self._get_content(hash)
            if record is not None:
                self._put_content(_replace(record, in_bucket=False))
            self._journal(self._clock.now(), RetireOp(hash))
        return self.applied_seq(self.site_name)

    def forget_content(self, hash: str) -> None:
        with self._transaction():
            if not self._content_in_use(hash):
                self._del_content(hash)
                self._del_upload(hash)

    def mark_departed(self, site: str) -> None:
        with self._transaction(durable=True):
            self._put_kv(f"departed:{site}", "1")

    def departed(self) -> set[str]:
        return {key.split(":", 1)[1] for key, _ in self._kv_prefixed("departed:")}

    def peer_position(self, peer: str) -> int:
        return int(self._get_kv(f"peer:{peer}") or "0")

    def positions(self) -> dict[str, int]:
        return {key.split(":", 1)[1]: int(value) for key, value in self._kv_prefixed("applied:")}

    def journal(self, after: int = 0, limit: int = 1000) -> list[JournalEntry]:
        return self._read_journal(after, limit)
