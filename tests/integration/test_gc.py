"""Garbage collection across sites: unreferenced content leaves the bucket, and never while a
site that may still need it cannot say so."""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path

import blake3
import tomli_w

from meridian.objects import open_object_store
from meridian.objects.layout import ContentBucket
from tests.sitehelpers import RunningSite, init_linked, wait_for


def test_unreferenced_content_leaves_the_bucket_only_when_every_site_agrees(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    bucket_url = f"file://{tmp_path / 'bucket'}"
    sites = init_linked(tmp_path, ["east", "west"], bucket_url)
    for site in sites.values():
        doc = tomllib.loads(site.config.read_text())
        doc["mover"] = {"gc_grace": 0, "gc_interval": 0.3}
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
