"""The undo service's round (retention, scheduled snapshots, releases), its config, the
undo SLOs and the CLI's times: on the memory engine and a memory bucket."""

from __future__ import annotations

import stat
from typing import Any

import pytest

from meridian.cli.undo_cmds import parse_time
from meridian.errors import BadInput, ConfigError
from meridian.meta import ROOT_INO
from meridian.meta.memory import MemoryMetaStore
from meridian.objectives.slos import RETENTION_SLOS, slo_problem
from meridian.objects.memory import MemoryObjectStore
from meridian.site.config import SnapshotSchedule, parse_config
from meridian.undo.service import DAY_NS, UndoService

FILE = stat.S_IFREG | 0o644


def write(meta: MemoryMetaStore, name: str, hash: str) -> None:
    try:
        ino = meta.lookup(ROOT_INO, name).ino
    except Exception:
        ino = meta.create(ROOT_INO, name, FILE, 0, 0).ino
    meta.set_content(ino, hash, 4)


def service(meta: MemoryMetaStore, **kw: Any) -> UndoService:
    return UndoService(meta, MemoryObjectStore(), site_name="east", **kw)


def test_a_round_expires_trash_and_keeps_versions_an_slo_asks_for() -> None:
    meta = MemoryMetaStore("east")
    kept_long = {"fid": ""}
    undo = service(meta, trash_days=1, keep_for=lambda fid: 30.0 if fid == kept_long["fid"] else 0)
    write(meta, "clip", "1" * 64)
    write(meta, "clip", "2" * 64)
    write(meta, "plate", "3" * 64)
    write(meta, "plate", "4" * 64)
    kept_long["fid"] = meta.lookup(ROOT_INO, "clip").file_id
    write(meta, "gone", "5" * 64)
    meta.unlink(ROOT_INO, "gone")
    now = meta.trash_list()[0].time_ns / 1e9
    assert undo.round(now + 3600)["expired"] == 0
    undo.round(now + 2 * 86400)
    assert meta.trash_list() == []
    assert [v.hash for v in meta.versions(kept_long["fid"])] == ["1" * 64, "2" * 64]
    plate = meta.lookup(ROOT_INO, "plate").file_id
    assert [v.hash for v in meta.versions(plate)] == ["4" * 64]  # the earlier one went
    assert meta.referenced(["1" * 64, "3" * 64, "5" * 64]) == {"1" * 64}


def test_scheduled_snapshots_are_made_and_the_oldest_beyond_keep_deleted() -> None:
    meta = MemoryMetaStore("east")
    write(meta, "a", "1" * 64)
    undo = service(meta, trash_days=7, schedules=(SnapshotSchedule("hourly", 3600, 2),
                                                  SnapshotSchedule("west-only", 60, 1, "west")))
    start = 1_800_000_000.0
    for hour in range(4):
        undo.round(start + hour * 3600 + 1)
    names = [s.name for s in meta.snapshots()]
    assert names == ["hourly-20270115-100001", "hourly-20270115-110001"]
    assert meta.held("1" * 64)
    assert undo.round(start + 3 * 3600 + 2)["made"] == 0  # not due yet


def test_a_deleted_snapshots_contents_are_released_by_the_round() -> None:
    meta = MemoryMetaStore("east")
    write(meta, "a", "1" * 64)
    undo = service(meta, trash_days=0)
    undo.snapshot_create("before")
    meta.unlink(ROOT_INO, "a")
    assert meta.held("1" * 64)
    undo.snapshot_delete("before")
    assert meta.held("1" * 64)  # until the round reads the manifest again
    undo.round()
    assert not meta.held("1" * 64) and meta.pending_releases() == []


def test_namespace_config() -> None:
    base: dict[str, Any] = {"site": {"name": "east", "data": "/srv/east"},
                            "bucket": {"url": "file:///srv/bucket"}}
    assert parse_config(base).namespace.trash_days == 7
    config = parse_config({**base, "namespace": {"trash_days": 0, "snapshots": [
        {"name": "hourly", "every": 3600, "keep": 48, "at": "east"}]}})
    assert config.namespace.trash_days == 0
    assert config.namespace.snapshots == (SnapshotSchedule("hourly", 3600.0, 48, "east"),)
    for bad, key in (({"trash_days": -1}, "namespace.trash_days"),
                     ({"trash_days": "week"}, "namespace.trash_days"),
                     ({"snapshots": [{"name": "h", "every": 10, "keep": 1}]},
                      "namespace.snapshots[0].every"),
                     ({"snapshots": [{"name": "h", "every": 60, "keep": 0}]},
                      "namespace.snapshots[0].keep"),
                     ({"snapshots": [{"name": "H 1", "every": 60, "keep": 1}]},
                      "namespace.snapshots[0].name"),
                     ({"colour": 1}, "namespace.colour")):
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            parse_config({**base, "namespace": bad})


def test_the_undo_slos_are_known_with_their_spans() -> None:
    for name in ("versioning-1-hour", "versioning-1-month", "undelete-1-day", "undelete-1-week"):
        assert slo_problem(name) is None
    assert RETENTION_SLOS["versioning-1-week"] == 7.0 and RETENTION_SLOS["undelete-1-hour"] == 1 / 24
    assert slo_problem("versioning-1-year") is not None


def test_cli_times() -> None:
    now = 1_800_000_000.0
    assert parse_time("2h", "--since", now) == int((now - 7200) * 1e9)
    assert parse_time("2027-01-15T08:00", "--at") == 1_800_000_000 * 10**9
    assert parse_time("2027-01-15T09:00+01:00", "--at") == 1_800_000_000 * 10**9
    with pytest.raises(BadInput, match="--before"):
        parse_time("yesterday", "--before")
    assert DAY_NS == 86_400 * 10**9
