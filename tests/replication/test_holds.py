"""Upload holds: a site's promise not to upload what a collector is deleting (holds.py)."""

from __future__ import annotations

from pathlib import Path

from meridian.meta.sqlite import SqliteMetaStore
from meridian.replication.holds import MAX_HOLD, UploadHolds

A, B = "a" * 64, "b" * 64


def test_a_hold_lasts_its_seconds_and_survives_a_restart(tmp_path: Path) -> None:
    store = SqliteMetaStore(tmp_path / "meta.db", "east")
    holds = UploadHolds(store)
    assert holds.hold([A], 30.0, now=1000.0) == 30.0
    assert holds.held_until(A, now=1000.0) == 1030.0
    assert holds.held_until(A, now=1030.5) is None  # over
    assert holds.held_until(B, now=1000.0) is None  # never held
    store.close()

    store = SqliteMetaStore(tmp_path / "meta.db", "east")  # as after a crash and restart
    try:
        again = UploadHolds(store)
        assert again.held_until(A, now=1010.0) == 1030.0
        again.hold([A], 5.0, now=1010.0)  # a shorter hold never shortens a longer one
        assert again.held_until(A, now=1010.0) == 1030.0
        again.release([A])
        assert again.held_until(A, now=1010.0) is None
    finally:
        store.close()


def test_a_collector_cannot_hold_uploads_longer_than_the_cap(tmp_path: Path) -> None:
    store = SqliteMetaStore(tmp_path / "meta.db", "east")
    try:
        holds = UploadHolds(store)
        assert holds.hold([A, B], 10 * MAX_HOLD, now=0.0) == MAX_HOLD
        assert holds.held_until(B, now=0.0) == MAX_HOLD
        assert holds.hold([A], -5.0, now=0.0) == 0.0  # nonsense asks for nothing
    finally:
        store.close()
