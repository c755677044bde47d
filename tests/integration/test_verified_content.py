"""Bytes you can trust: real sites (a process and a FUSE mount each) read damaged content.

A reader at any site gets the right bytes or EIO, never wrong bytes: a byte flipped in the
bucket, a truncated block object, a peer whose copy rotted on its disk. And a site keeps its
only copy of a content however loudly a peer says that content is in the bucket.
"""

from __future__ import annotations

import errno
import json
import os
import tomllib
from pathlib import Path

import pytest
import tomli_w

from tests.faultproxy import FaultProxy
from tests.sitehelpers import RunningSite, init_linked, meridian, wait_for

BLOCK = 4 * 1024 * 1024


def placement(site: RunningSite, path: str) -> dict[str, object]:
    rows = json.loads(meridian("ls", "--placement", "--json", "--config", str(site.config),
                               path).stdout)
    assert len(rows) == 1
    row: dict[str, object] = rows[0]
    return row


def set_config(site: RunningSite, section: str, **values: object) -> None:
    doc = tomllib.loads(site.config.read_text())
    doc.setdefault(section, {}).update(values)
    site.config.write_text(tomli_w.dumps(doc))


def local_copy(site: RunningSite, content: str) -> Path:
    return site.data / "volumes" / "local" / "content" / content[:2] / content


def flip_byte(path: Path, offset: int) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def read_or_errno(path: Path) -> bytes | int:
    try:
        return path.read_bytes()
    except OSError as exc:
        return exc.errno or -1


def start_all(sites: dict[str, RunningSite], stopper: list[RunningSite]) -> None:
    for site in sites.values():
        stopper.append(site)
        site.start()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_bucket_block_gives_right_bytes_or_eio_at_every_site(
        tmp_path: Path, stopper: list[RunningSite], damage: str) -> None:
    """east wrote it and still has it: west reads the damaged block from east. Once no site
    holds a good copy, every reader gets EIO, and the log names content, block and source."""
    bucket = tmp_path / "bucket"
    sites = init_linked(tmp_path, ["east", "west"], f"file://{bucket}")
    for site in sites.values():
        set_config(site, "mover", read_timeout=5)
    start_all(sites, stopper)
    east, west = sites["east"], sites["west"]
    data = os.urandom(3 * BLOCK + 4321)  # four blocks
    (east.mount / "plate.exr").write_bytes(data)
    wait_for(lambda: placement(east, "./plate.exr")["state"] == "both", what="uploaded")
    content = str(placement(east, "./plate.exr")["content"])
    block = bucket / "content" / content[:2] / content / "blocks" / "00000002"
    if damage == "flip":
        flip_byte(block, 1000)
    else:
        os.truncate(block, BLOCK - 1)

    target = west.mount / "plate.exr"
    wait_for(lambda: target.stat().st_size == len(data), what="west sees plate.exr")
    assert target.read_bytes() == data  # block 2 from east, checked
    assert "block 2 from the bucket failed verification" in west.log()
    assert (east.mount / "plate.exr").read_bytes() == data

    # now no site has a good copy of block 2: every reader gets EIO
    for site in (east, west):
        site.stop()
        for folder in ("content", "partial"):
            path = site.data / "volumes" / "local" / folder
            for item in path.rglob("*"):
                if item.is_file() and content in item.name:
                    item.unlink()
    for site in (east, west):
        site.start()
    for site in (east, west):
        with open(site.mount / "plate.exr", "rb") as f:
            assert f.read(BLOCK) == data[:BLOCK]  # blocks before it are fine
            f.seek(2 * BLOCK)
            with pytest.raises(OSError) as exc:
                f.read(BLOCK)
        assert exc.value.errno == errno.EIO
        assert read_or_errno(site.mount / "plate.exr") == errno.EIO
        log = site.log()
        assert f"content {content} block 2 from the bucket failed verification" in log
        assert "no source served it correctly" in log


def test_a_peer_whose_copy_rotted_is_never_believed(
        tmp_path: Path, stopper: list[RunningSite], s3_bucket: tuple[str, str]) -> None:
    """north's uploads cannot reach the bucket, so its files are read from north's API.
    A block of north's copy rots on its disk: a reader gets it right from another site that
    holds a checked copy, or EIO, never the rotten bytes."""
    endpoint, name = s3_bucket
    with FaultProxy(endpoint) as north_s3:
        sites = init_linked(tmp_path, ["north", "east", "west"], f"s3://{name}",
                            "--endpoint-url", endpoint)
        set_config(sites["north"], "bucket", endpoint_url=north_s3.url)
        for site in sites.values():
            set_config(site, "mover", read_timeout=5)
        start_all(sites, stopper)
        north, east, west = sites["north"], sites["east"], sites["west"]
        north_s3.refuse(True)
        data = os.urandom(2 * BLOCK + 999)  # three blocks
        (north.mount / "render.exr").write_bytes(data)
        for site in (east, west):
            target = site.mount / "render.exr"
            wait_for(lambda: target.stat().st_size == len(data), what=f"{site.name} sees it")
        assert (west.mount / "render.exr").read_bytes() == data  # a checked copy at west
        content = str(placement(north, "./render.exr")["content"])
        flip_byte(local_copy(north, content), 2 * BLOCK + 10)

        assert (east.mount / "render.exr").read_bytes() == data
        assert f"content {content} block 2 from peer north failed verification" in east.log()

        # a second file rots at north before any site read it: nobody can read it right
        other = os.urandom(2 * BLOCK + 5)
        (north.mount / "comp.exr").write_bytes(other)
        wait_for(lambda: placement(north, "./comp.exr")["state"] in ("local", "in flight"),
                 what="comp.exr committed at north")
        other_content = str(placement(north, "./comp.exr")["content"])
        flip_byte(local_copy(north, other_content), BLOCK + 3)
        for site in (east, west):
            target = site.mount / "comp.exr"
            wait_for(lambda: target.stat().st_size == len(other), what=f"{site.name} sees it")
            assert read_or_errno(target) == errno.EIO
        assert f"local instance of {other_content[:12]} hashes to" in north.log()
        north_s3.refuse(False)


def test_a_peers_word_never_evicts_the_only_copy(
        tmp_path: Path, stopper: list[RunningSite], s3_bucket: tuple[str, str]) -> None:
    """east's upload is held back (its way to the bucket refuses connections). west writes
    the same bytes, uploads them and says so (an ``instance`` entry); then the bucket loses
    them. Under capacity pressure east keeps its copy: the only one left."""
    import boto3

    endpoint, name = s3_bucket
    with FaultProxy(endpoint) as east_s3:
        sites = init_linked(tmp_path, ["east", "west"], f"s3://{name}", "--endpoint-url",
                            endpoint)
        east, west = sites["east"], sites["west"]
        set_config(east, "bucket", endpoint_url=east_s3.url)
        set_config(east, "mover", retry_base=0.2, retry_max=1.0, space_wait=1.0)
        doc = tomllib.loads(east.config.read_text())
        doc["volumes"] = [{"name": "local", "path": str(east.data / "volumes" / "local"),
                           "capacity": "12MiB"}]
        east.config.write_text(tomli_w.dumps(doc))
        start_all(sites, stopper)
        east_s3.refuse(True)
        data = os.urandom(6 * 1024 * 1024)
        (east.mount / "a-east.exr").write_bytes(data)
        assert placement(east, "./a-east.exr")["state"] == "in flight"
        (west.mount / "a-west.exr").write_bytes(data)
        # west's upload done and its word arrived: east's store now says "in the bucket"
        wait_for(lambda: placement(east, "./a-east.exr")["state"] == "both",
                 what="west's instance entry applied at east")
        content = str(placement(east, "./a-east.exr")["content"])
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        try:
            prefix = f"content/{content[:2]}/{content}/"
            listed = client.list_objects_v2(Bucket=name, Prefix=prefix).get("Contents", [])
            assert listed, "west's upload is in the bucket"
            for item in listed:  # the bucket loses it: east's copy is the only one
                client.delete_object(Bucket=name, Key=item["Key"])

            with pytest.raises(OSError) as exc:  # room only by evicting a-east.exr's copy
                (east.mount / "b.exr").write_bytes(os.urandom(8 * 1024 * 1024))
            assert exc.value.errno == errno.ENOSPC
            assert local_copy(east, content).exists()
            assert (east.mount / "a-east.exr").read_bytes() == data

            east_s3.refuse(False)  # east's own upload gets through: now the copy may go
            wait_for(lambda: client.list_objects_v2(Bucket=name, Prefix=prefix + "manifest")
                     .get("KeyCount", 0) == 1, what="east's upload of a-east.exr")
            (east.mount / "b.exr").unlink()  # what its failed write stored goes too
            fresh = os.urandom(8 * 1024 * 1024)
            wait_for(lambda: (east.mount / "c.exr").write_bytes(fresh) == len(fresh),
                     what="c.exr fits once a-east.exr is evictable")
            assert not local_copy(east, content).exists()
            assert (east.mount / "a-east.exr").read_bytes() == data  # from the bucket
        finally:
            client.close()
