"""Upload holds: this site's promise, while another site deletes a content from the bucket,
not to upload that content meanwhile.

Garbage collection (``gc.py``) deletes a retired content only after every peer has
*acknowledged* its retirement: none of its files refers to it, it counts it as not in the
bucket, no upload of it is under way, and it will start none for the next ``hold`` seconds.
Without that promise a site that writes the same bytes again right after answering would
upload them, and the collector's delete, arriving a moment later, would remove the new copy
(the window between the last check and the delete). A write during the hold is kept: its upload
waits for the hold to end and then puts the bytes back in the bucket.

Holds are kept in the store (a site setting) and made durable before the answer leaves, so a
restart does not break the promise. Times are this site's wall clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable

from meridian.meta import MetaStore

SETTING = "gc_holds"
MAX_HOLD = 3600.0  # seconds: a collector cannot stop this site's uploads for longer


class UploadHolds:
    """The holds of one site (thread-safe)."""

    def __init__(self, meta: MetaStore) -> None:
        self.meta = meta
        self._lock = threading.Lock()
        raw = meta.get_setting(SETTING)
        self._until: dict[str, float] = {str(h): float(t) for h, t in
                                          (json.loads(raw).items() if raw else ())}

    def hold(self, hashes: Iterable[str], seconds: float, now: float | None = None) -> float:
        """Start no upload of ``hashes`` for ``seconds`` (at most MAX_HOLD) from ``now``;
        durable when it returns. Returns the seconds granted."""
        granted = max(0.0, min(float(seconds), MAX_HOLD))
        now = time.time() if now is None else now
        with self._lock:
            for hash in hashes:
                self._until[hash] = max(self._until.get(hash, 0.0), now + granted)
            self._save_locked(now)
        self.meta.sync()
        return granted

    def release(self, hashes: Iterable[str]) -> None:
        """End the holds on ``hashes`` (the collector here is done with them)."""
        with self._lock:
            for hash in hashes:
                self._until.pop(hash, None)
            self._save_locked(time.time())

    def held_until(self, hash: str, now: float | None = None) -> float | None:
        """When the hold on ``hash`` ends, or None if there is none now."""
        now = time.time() if now is None else now
        with self._lock:
            until = self._until.get(hash)
        return until if until is not None and until > now else None

    def _save_locked(self, now: float) -> None:
        self._until = {h: t for h, t in self._until.items() if t > now}
        self.meta.put_setting(SETTING, json.dumps(self._until))
