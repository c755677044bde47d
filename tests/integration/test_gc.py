"""Garbage collection across sites: unreferenced content leaves the bucket, and never while a
site that may still need it cannot say so."""

from __future__ import annotations

import json
import os
import time
import tomllib
from pathlib import Path

import blake3
import pytest
import tomli_w

from meridian.objects import open_object_store
from meridian.objects.layout import ContentBucket
from tests.sitehelpers import RunningSite, init_linked, meridian, wait_for


def test_unreferenced_content_leaves_the_bucket_only_when_every_site_agrees(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    bucket_url = f"file://{tmp_path / 'bucket'}"
    sites = init_linked(tmp_path, ["east", "west"], bucket_url)
    for site in sites.values():
        doc = tomllib.loads(site.config.read_text())
        doc["mover"] = {"gc_grace": 0, "gc_interval": 0.3}
        doc["namespace"] = {"trash_days": 0}  # no trash: a removed file's content is garbage
        site.config.write_text(tomli_w.dumps(doc))
        stopper.append(site)
        site.start()
    east, west = sites["east"], sites["west"]
    bucket = ContentBucket(open_object_store(bucket_url))

    def in_bucket(data: bytes) -> bool:
        return bucket.manifest(blake3.blake3(data).hexdigest()) is not None

    gone, kept, shared = os.urandom(100_000), os.urandom(100_000), os.urandom(50_000)
    (east.mount / "gone.exr").write_bytes(gone)
    (east.mount / "kept-while-west-is-down.exr").write_bytes(kept)
    (east.mount / "a.bin").write_bytes(shared)
    (west.mount / "b.bin").write_bytes(shared)  # the same bytes, referenced by another file
    for data in (gone, kept, shared):
        wait_for(lambda: in_bucket(data), what="uploaded")
    wait_for(lambda: (west.mount / "kept-while-west-is-down.exr").exists(), what="replicated")

    (east.mount / "gone.exr").unlink()
    (east.mount / "a.bin").unlink()
    wait_for(lambda: not in_bucket(gone), what="gone.exr's content collected")

    west.stop()  # west still refers to `kept`, and cannot say so while it is down
    (east.mount / "kept-while-west-is-down.exr").unlink()
    time.sleep(3)  # ten rounds of east's collector
    assert in_bucket(kept), "deleted while a site that refers to it was unreachable"
    assert in_bucket(shared), "deleted while another file refers to the same bytes"
    west.start()
    wait_for(lambda: not (west.mount / "kept-while-west-is-down.exr").exists(), what="delete replicated")
    wait_for(lambda: not in_bucket(kept), what="collected once west agrees")
    assert (west.mount / "b.bin").read_bytes() == shared and in_bucket(shared)


def _gc_config(site: RunningSite, **mover: float) -> None:
    doc = tomllib.loads(site.config.read_text())
    doc.setdefault("mover", {}).update(mover)
    doc["namespace"] = {"trash_days": 0}  # no trash: a removed file's content is garbage
    site.config.write_text(tomli_w.dumps(doc))


def test_a_site_that_is_not_a_peer_of_the_collector_holds_collection_back(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    """north's changes reach east through west, but east does not ask north: east must not
    collect (north may refer to anything) and must say that north holds it back."""
    bucket_url = f"file://{tmp_path / 'bucket'}"
    sites = init_linked(tmp_path, ["east", "west", "north"], bucket_url)
    east, west, north = sites["east"], sites["west"], sites["north"]
    doc = tomllib.loads(east.config.read_text())
    full_peers = doc["peers"]
    doc["peers"] = [p for p in full_peers if p["name"] != "north"]  # east pulls only from west
    east.config.write_text(tomli_w.dumps(doc))
    _gc_config(east, gc_grace=0, gc_interval=0.3)
    for other in (west, north):
        _gc_config(other, gc_interval=0)  # only east collects
    for site in sites.values():
        stopper.append(site)
        site.start()
    bucket = ContentBucket(open_object_store(bucket_url))
    data = os.urandom(120_000)
    digest = blake3.blake3(data).hexdigest()
    (north.mount / "n.bin").write_bytes(data)
    wait_for(lambda: bucket.manifest(digest) is not None, what="north's upload")
    wait_for(lambda: (east.mount / "n.bin").exists(), what="north's file relayed to east")
    (north.mount / "n.bin").unlink()
    wait_for(lambda: not (east.mount / "n.bin").exists(), what="the unlink relayed to east")
    wait_for(lambda: "site north made changes this site holds, but is not one of its peers"
             in east.log(), what="east saying north holds collection back")
    status = meridian("status", "--config", str(east.config)).stdout
    assert "collection WAITS: site north made changes" in status, status
    time.sleep(2)  # several more rounds of east's collector
    assert bucket.manifest(digest) is not None, "collected without asking a site of the mesh"

    east.stop()  # with north as a peer the content goes
    doc = tomllib.loads(east.config.read_text())
    doc["peers"] = full_peers
    east.config.write_text(tomli_w.dumps(doc))
    east.start()
    wait_for(lambda: bucket.manifest(digest) is None, what="collected once north is asked")


@pytest.mark.parametrize("point", ["gc.acknowledged", "gc.delete"])
def test_a_reference_made_during_the_collection_keeps_the_content(
        tmp_path: Path, stopper: list[RunningSite], point: str) -> None:
    """east pauses a collection after every peer acknowledged the retirement, either before
    its own last look (west's new file reaches it: revived) or right before the delete
    (west's upload is held until the delete is done). Both ways the bytes end up in the
    bucket and every site reads them."""
    bucket_url = f"file://{tmp_path / 'bucket'}"
    sites = init_linked(tmp_path, ["east", "west"], bucket_url)
    east, west = sites["east"], sites["west"]
    flag = tmp_path / "resume"
    _gc_config(east, gc_grace=0, gc_interval=0.3, gc_hold=20)
    _gc_config(west, gc_interval=0)
    east.extra_env = {"MERIDIAN_TESTPOINT": f"{point}:pause:{flag}"}
    for site in sites.values():
        stopper.append(site)
        site.start()
    bucket = ContentBucket(open_object_store(bucket_url))
    data = os.urandom(150_000)
    digest = blake3.blake3(data).hexdigest()
    (east.mount / "x.bin").write_bytes(data)
    wait_for(lambda: bucket.manifest(digest) is not None, what="east's upload")
    wait_for(lambda: (west.mount / "x.bin").exists(), what="replicated")
    (east.mount / "x.bin").unlink()
    wait_for(lambda: Path(f"{flag}.paused").exists(), what=f"east's collector at {point}")

    (west.mount / "y.bin").write_bytes(data)  # the same bytes again, during the collection
    wait_for(lambda: (east.mount / "y.bin").exists(), what="west's new file at east")
    time.sleep(1)  # west's uploaders have looked at the new upload
    flag.touch()

    def in_bucket_whole() -> bool:
        return (bucket.manifest(digest) is not None
                and bucket.get_block(digest, 0) == data)

    wait_for(in_bucket_whole, timeout=60, what="the content in the bucket after the collection")
    wait_for(lambda: _placement(west, "/y.bin") == "both", timeout=60,
             what="west recording its copy in the bucket")
    west.stop()  # east now reads through the bucket or its own copy, never from west
    assert (east.mount / "y.bin").read_bytes() == data
    east.stop()
    for site in (east, west):
        fsck = meridian("fsck", "--json", "--config", str(site.config), check=False)
        assert fsck.returncode == 0, fsck.stdout
    assert in_bucket_whole()


def _placement(site: RunningSite, path: str) -> str | None:
    rows = json.loads(meridian("ls", "--placement", "--json", "--config", str(site.config),
                               "./").stdout)
    return next((r["state"] for r in rows if r["path"] == path), None)


def test_a_site_that_left_does_not_hold_collection_back(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    """north (a peer of west only) writes, drains and leaves; east, which heard of north's
    changes through west but never had it as a peer, learns from west that north left, and
    collects what nobody refers to any more."""
    bucket_url = f"file://{tmp_path / 'bucket'}"
    sites = init_linked(tmp_path, ["east", "west", "north"], bucket_url)
    east, west, north = sites["east"], sites["west"], sites["north"]
    for site, without in ((east, "north"), (north, "east")):
        doc = tomllib.loads(site.config.read_text())
        doc["peers"] = [p for p in doc["peers"] if p["name"] != without]
        site.config.write_text(tomli_w.dumps(doc))
    _gc_config(east, gc_grace=0, gc_interval=0.3)
    for other in (west, north):
        _gc_config(other, gc_interval=0)
    for site in sites.values():
        stopper.append(site)
        site.start()
    bucket = ContentBucket(open_object_store(bucket_url))
    data = os.urandom(110_000)
    digest = blake3.blake3(data).hexdigest()
    (north.mount / "n.bin").write_bytes(data)
    wait_for(lambda: (east.mount / "n.bin").exists(), what="north's file relayed to east")
    (east.mount / "n.bin").unlink()
    wait_for(lambda: not (north.mount / "n.bin").exists(), what="the unlink at north")
    wait_for(lambda: "site north made changes" in east.log(), what="north holding east back")
    assert bucket.manifest(digest) is not None

    meridian("site", "drain", "--config", str(north.config), "--timeout", "120")
    left = meridian("site", "leave", "--config", str(north.config))
    assert "west: stopped pulling from north" in left.stdout
    assert north.process is not None and north.process.wait(timeout=30) == 0
    north.process = None
    wait_for(lambda: bucket.manifest(digest) is None, what="collected once north has left")


def test_trash_versions_and_snapshots_hold_content_until_purged_or_deleted(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    """The collector runs every 0.3 s with no grace: removed, overwritten and snapshotted
    content stays in the bucket while the trash, a version or a snapshot names it, and goes
    once the purge or the snapshot's deletion reached every site."""
    bucket_url = f"file://{tmp_path / 'bucket'}"
    sites = init_linked(tmp_path, ["east", "west"], bucket_url)
    for site in sites.values():
        doc = tomllib.loads(site.config.read_text())
        doc["mover"] = {"gc_grace": 0, "gc_interval": 0.3}
        site.config.write_text(tomli_w.dumps(doc))  # [namespace] trash_days: default, 7
        stopper.append(site)
        site.start()
    east, west = sites["east"], sites["west"]
    bucket = ContentBucket(open_object_store(bucket_url))

    def in_bucket(data: bytes) -> bool:
        return bucket.manifest(blake3.blake3(data).hexdigest()) is not None

    removed, old, new, snapped = (os.urandom(60_000) for _ in range(4))
    (east.mount / "removed.exr").write_bytes(removed)
    (east.mount / "clip.mov").write_bytes(old)
    (east.mount / "snapped.exr").write_bytes(snapped)
    for data in (removed, old, snapped):
        wait_for(lambda: in_bucket(data), what="uploaded")
    (east.mount / "removed.exr").unlink()
    (east.mount / "clip.mov").write_bytes(new)
    meridian("snapshot", "create", "keep", "--config", str(east.config))
    (east.mount / "snapped.exr").unlink()
    meridian("trash", "purge", "./snapped.exr", "--config", str(east.config))
    wait_for(lambda: in_bucket(new), what="the new version uploaded")
    time.sleep(3)  # ten rounds of each collector
    for name, data in (("removed", removed), ("old version", old), ("snapshotted", snapped)):
        assert in_bucket(data), f"the {name} content left the bucket while held"

    meridian("trash", "purge", "./removed.exr", "--config", str(west.config))
    wait_for(lambda: not in_bucket(removed), what="purged content collected")
    meridian("snapshot", "delete", "keep", "--config", str(west.config))
    wait_for(lambda: not in_bucket(snapped), what="content of the deleted snapshot collected")
    assert in_bucket(old) and in_bucket(new)  # the version is still kept (7 days)
