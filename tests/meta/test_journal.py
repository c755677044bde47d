"""The journal's wire format (``meridian.meta.journal``): every operation round-trips through
JSON, and every field a peer could forge is refused with its name."""

from __future__ import annotations

import json
import os
import stat
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meridian.errors import InvalidJournalEntry
from meridian.meta.entries import JournalEntry, check_entry, entry_from_wire
from meridian.meta.journal import (
    ContentOp,
    CreateOp,
    InstanceOp,
    LinkOp,
    Op,
    RemovexattrOp,
    RenameOp,
    RetireOp,
    RmdirOp,
    SetattrOp,
    SetxattrOp,
    UnlinkOp,
    op_from_wire,
    version,
)

NOW_MS = 1_796_000_000_000  # 2026-11-30
HLC = NOW_MS << 16
SITE_ID = "0123456789abcdef0123456789abcdef"
FID = f"{SITE_ID}.7"
PARENT = f"{SITE_ID}.3"
HASH = "ab" * 32

sites = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True)
clocks = st.integers(min_value=0, max_value=HLC)
versions = st.one_of(st.just(""), st.builds(version, clocks, sites))
plain_ids = st.builds(lambda s, n: f"{s}.{n}", st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
                      st.integers(min_value=1, max_value=10**12))
file_ids = st.one_of(st.sampled_from(["root", "meridian", "lost+found"]), plain_ids,
                     st.builds(lambda f, v: f"{f}!{v}", plain_ids,
                               st.builds(version, clocks, sites)))
names = st.one_of(  # the kernel's names are any bytes but "/" and NUL: not UTF-8 ones too
    st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
            min_size=1, max_size=40),
    st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b)
    .map(os.fsdecode)).filter(lambda n: n not in (".", ".."))
hashes = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
sizes = st.integers(min_value=0, max_value=(1 << 63) - 1)
ids = st.integers(min_value=0, max_value=(1 << 32) - 1)
times = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
perms = st.integers(min_value=0, max_value=0o7777)
types = st.sampled_from([stat.S_IFREG, stat.S_IFDIR, stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR,
                         stat.S_IFBLK])
targets = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
                  min_size=1, max_size=60)


def _create(parent: str, name: str, fid: str, kind: int, perm: int, uid: int, gid: int,
            target: str, rdev: int, link: bool) -> CreateOp:
    if link:
        return CreateOp(parent, name, fid, stat.S_IFLNK | 0o777, uid, gid, target)
    return CreateOp(parent, name, fid, kind | perm, uid, gid, None, rdev)


ops = st.one_of(
    st.builds(_create, file_ids, names, file_ids, types, perms, ids, ids, targets, sizes,
              st.booleans()),
    st.builds(LinkOp, file_ids, file_ids, names),
    st.builds(UnlinkOp, file_ids, names, file_ids, st.none() | versions),
    st.builds(RmdirOp, file_ids, names, file_ids),
    st.builds(RenameOp, file_ids, names, file_ids, names, file_ids, st.none() | versions,
              st.none() | file_ids, st.none() | versions, st.none() | versions,
              st.none() | st.integers(0, 2**32 - 1), st.none() | versions),
    st.builds(SetattrOp, file_ids, st.none() | perms, st.none() | ids, st.none() | ids,
              st.none() | times, st.none() | times),
    st.builds(ContentOp, file_ids, st.none() | hashes, sizes, times, st.none() | versions,
              file_ids, names, st.none() | versions,
              st.none() | st.builds(lambda p: stat.S_IFREG | p, perms), st.none() | ids,
              st.none() | ids),
    st.builds(SetxattrOp, file_ids, names.filter(lambda n: len(os.fsencode(n)) <= 255),
              st.binary(max_size=300)),
    st.builds(RemovexattrOp, file_ids, names),
    st.builds(InstanceOp, hashes, sizes),
    st.builds(RetireOp, hashes),
)


@given(ops)
def test_every_operation_round_trips_through_json(op: Op) -> None:
    wire = json.loads(json.dumps(op.to_wire()))
    assert wire["op"] == op.KIND
    assert op_from_wire(wire) == op


@given(ops, st.integers(1, 10**9), sites, st.integers(1, 10**9), clocks)
def test_every_entry_round_trips_and_passes_the_checks(op: Op, seq: int, origin: str,
                                                       origin_seq: int, hlc: int) -> None:
    entry = JournalEntry(seq, origin, hlc, op, origin_seq)
    back = entry_from_wire(json.loads(json.dumps(entry.to_wire())))
    assert back == entry
    check_entry(back, max_ahead_ms=60_000, now_ms=NOW_MS)  # what a site writes is accepted


def wire(op: dict[str, Any], **entry: Any) -> dict[str, Any]:
    return {"seq": 1, "origin": "west", "origin_seq": 1, "hlc": HLC, "op": op, **entry}


CREATE = {"op": "create", "parent": PARENT, "name": "plate.exr", "fid": FID,
          "mode": stat.S_IFREG | 0o644, "uid": 0, "gid": 0, "target": None, "rdev": 0}
CONTENT = {"op": "content", "fid": FID, "hash": HASH, "size": 4, "mtime": 1, "base": "",
           "parent": PARENT, "name": "f", "name_version": "", "mode": stat.S_IFREG | 0o644,
           "uid": 0, "gid": 0}

HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("empty name", {**CREATE, "name": ""}, "op.name"),
    ("slash in a name", {**CREATE, "name": "a/b"}, "op.name"),
    ("dot-dot name", {**CREATE, "name": ".."}, "op.name"),
    ("dot name", {**CREATE, "name": "."}, "op.name"),
    ("NUL in a name", {**CREATE, "name": "a\0b"}, "op.name"),
    ("name of 256 bytes", {**CREATE, "name": "é" * 128}, "op.name"),
    ("missing key", {k: v for k, v in CREATE.items() if k != "fid"}, "op.fid"),
    ("unknown key", {**CREATE, "owner": "x"}, "op.owner"),
    ("unknown operation", {"op": "format_disk"}, "op.op"),
    ("wrong type", {**CREATE, "mode": "0644"}, "op.mode"),
    ("bool for a number", {**CREATE, "uid": True}, "op.uid"),
    ("unknown file type", {**CREATE, "mode": 0o170644}, "op.mode"),
    ("mode without a type", {**CREATE, "mode": 0o644}, "op.mode"),
    ("symlink without a target", {**CREATE, "mode": stat.S_IFLNK | 0o777}, "op.target"),
    ("symlink target too long", {**CREATE, "mode": stat.S_IFLNK | 0o777, "target": "x" * 4096},
     "op.target"),
    ("uid out of range", {**CREATE, "uid": 1 << 32}, "op.uid"),
    ("forged file id", {**CREATE, "fid": "../../etc"}, "op.fid"),
    ("forged parent id", {**CREATE, "parent": "x"}, "op.parent"),
    ("hash that climbs", {**CONTENT, "hash": "../" * 20 + "abcd"}, "op.hash"),
    ("negative size", {**CONTENT, "size": -1}, "op.size"),
    ("directory mode on content", {**CONTENT, "mode": stat.S_IFDIR | 0o755}, "op.mode"),
    ("forged version", {**CONTENT, "base": "yesterday"}, "op.base"),
    ("version a year ahead", {**CONTENT, "base": version(HLC + (365 * 86400_000 << 16), "east")},
     "op.base"),
    ("xattr name too long", {"op": "setxattr", "fid": FID, "name": "u" * 256, "value": ""},
     "op.name"),
    ("xattr value too large", {"op": "setxattr", "fid": FID, "name": "user.a",
                               "value": "00" * 65537}, "op.value"),
    ("xattr value not hex", {"op": "setxattr", "fid": FID, "name": "user.a", "value": "zz"},
     "op.value"),
    ("instance elsewhere", {"op": "instance", "hash": HASH, "size": 1, "volume": "/etc"},
     "op.volume"),
]


@pytest.mark.parametrize("op,field", [(op, field) for _, op, field in HOSTILE],
                         ids=[what for what, _, _ in HOSTILE])
def test_a_forged_operation_is_refused_naming_its_field(op: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidJournalEntry) as refused:
        check_entry(entry_from_wire(wire(op)), max_ahead_ms=60_000, now_ms=NOW_MS)
    assert refused.value.field == field, str(refused.value)


@pytest.mark.parametrize("entry,field", [
    (wire(CREATE, hlc=HLC + (61_000 << 16)), "hlc"),  # 61 s ahead: beyond the skew
    (wire(CREATE, hlc=-1), "hlc"),
    (wire(CREATE, seq=0), "seq"),
    (wire(CREATE, origin_seq=0), "origin_seq"),
    (wire(CREATE, origin="West Coast"), "origin"),
    (wire(CREATE, origin=7), "origin"),
    ({k: v for k, v in wire(CREATE).items() if k != "hlc"}, "hlc"),
    (wire(CREATE, extra=1), "extra"),
], ids=["clock ahead", "negative clock", "seq 0", "origin_seq 0", "bad origin",
        "origin not text", "missing hlc", "unknown key"])
def test_a_forged_entry_is_refused_naming_its_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidJournalEntry) as refused:
        check_entry(entry_from_wire(entry), max_ahead_ms=60_000, now_ms=NOW_MS)
    assert refused.value.field == field, str(refused.value)


def test_a_clock_within_the_skew_is_accepted() -> None:
    check_entry(entry_from_wire(wire(CREATE, hlc=HLC + (59_000 << 16))), max_ahead_ms=60_000,
                now_ms=NOW_MS)


def test_setattr_leaves_out_what_it_does_not_change() -> None:
    assert SetattrOp(FID, mode=0o600).to_wire() == {"op": "setattr", "fid": FID, "mode": 0o600}
