"""Journal entries: one change as peers replay it, and the two gates an entry passes.

An entry wraps one operation (``journal.py``) with where it was made, its place in its origin's
order and in this site's journal, and its clock. Two levels of checking:

- :func:`entry_from_wire` decodes: every required key present, no unknown key, every value of
  its type. Used for the store's own rows too (cheap).
- :func:`check_entry` is the gate for entries from a peer, as strict as the checks a local
  change passes: names, file ids, versions, hashes, modes and file types, sizes, symlink and
  extended attribute sizes, and the entry's clock against this site's. It raises
  :class:`~meridian.errors.InvalidJournalEntry` naming the field.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meridian.errors import InvalidJournalEntry
from meridian.meta.journal import Op, op_from_wire
from meridian.meta.wirevalues import SITE_RE, FieldChecker, value_kind, version


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One change as peers replay it: where it was made, its place in its origin's order and
    in this site's journal, its clock, and the operation."""

    seq: int  # position in this site's journal (what a peer pulling it counts)
    origin: str  # the site where the change was made
    hlc: int  # hybrid logical clock: (physical ms << 16) | logical counter
    op: Op
    origin_seq: int = 0  # position in the origin's own sequence (1, 2, ... per origin)

    @property
    def version(self) -> str:
        return version(self.hlc, self.origin)

    def to_wire(self) -> dict[str, Any]:
        return {"seq": self.seq, "origin": self.origin, "origin_seq": self.origin_seq,
                "hlc": self.hlc, "op": self.op.to_wire()}


_ENTRY_KEYS = ("seq", "origin", "origin_seq", "hlc", "op")


def entry_from_wire(data: object) -> JournalEntry:
    """A journal entry from its wire form. Raises InvalidJournalEntry naming the field."""
    if not isinstance(data, Mapping):
        raise InvalidJournalEntry("entry", f"must be an object, got {value_kind(data)}")
    for key in _ENTRY_KEYS:
        if key not in data:
            raise InvalidJournalEntry(key, "missing")
    unknown = sorted(set(data) - set(_ENTRY_KEYS))
    if unknown:
        raise InvalidJournalEntry(unknown[0], "unknown in a journal entry")
    numbers = {}
    for key in ("seq", "origin_seq", "hlc"):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidJournalEntry(key, f"must be a whole number, got {value_kind(value)}")
        numbers[key] = value
    if not isinstance(data["origin"], str):
        raise InvalidJournalEntry("origin", f"must be a string, got {value_kind(data['origin'])}")
    return JournalEntry(numbers["seq"], data["origin"], numbers["hlc"], op_from_wire(data["op"]),
                        numbers["origin_seq"])


def check_entry(entry: JournalEntry, *, max_ahead_ms: int | None = None,
                now_ms: int | None = None) -> None:
    """Check an entry from a peer as strictly as a local change is checked. ``max_ahead_ms``:
    how far the entry's clock (and every version it carries) may be ahead of this site's wall
    clock (``now_ms``, default now). Raises InvalidJournalEntry naming the field."""
    if entry.seq < 1:
        raise InvalidJournalEntry("seq", f"{entry.seq}: journal positions start at 1")
    if entry.origin_seq < 1:
        raise InvalidJournalEntry("origin_seq", f"{entry.origin_seq}: origin positions start at 1")
    if SITE_RE.fullmatch(entry.origin) is None:
        raise InvalidJournalEntry("origin", f"{entry.origin!r} is not a site name")
    limit = None
    if max_ahead_ms is not None:
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        limit = now + max_ahead_ms
    checker = FieldChecker(limit)
    checker.clock("hlc", entry.hlc)
    entry.op.check(checker)
