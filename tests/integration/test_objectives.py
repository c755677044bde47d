"""Objectives at running sites: the deployment guide's rule, cache and evict."""

from __future__ import annotations

import json
import os
from pathlib import Path


from tests.sitehelpers import RunningSite, init_linked, init_site, meridian, wait_for

GUIDE_RULE = """IF FNMATCH("./hs-mount/project/*/flame/*.clip",PATH)
THEN {SLO('place-on-local-volumes')}"""


def placement(site: RunningSite, path: str) -> dict[str, object]:
    """The file's row of `ls --placement --json` ({} while the site does not have it yet)."""
    out = meridian("ls", "--placement", "--json", "--config", str(site.config), path,
                   check=False)
    if out.returncode == 2 and "no such file" in out.stderr:
        return {"state": None, "content": None}
    rows = json.loads(out.stdout)
    assert len(rows) == 1, rows
    row: dict[str, object] = rows[0]
    return row


def test_the_guide_rule_keeps_clips_written_anywhere_local_at_its_site(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    sites = init_linked(tmp_path, ["east", "west"], f"file://{tmp_path / 'bucket'}")
    for site in sites.values():
        stopper.append(site)
        site.start()
    east, west = sites["east"], sites["west"]
    bad = meridian("objective", "add", "--config", str(east.config),
                   'IF FNMATCH("x*" PATH) THEN {SLO(\'place-on-local-volumes\')}', check=False)
    assert bad.returncode == 2 and "1:17" in bad.stderr
    added = meridian("objective", "add", "--config", str(east.config), GUIDE_RULE)
    assert "added o1" in added.stdout
    listed = meridian("objective", "list", "--config", str(east.config))
    assert "o1" in listed.stdout and "place-on-local-volumes" in listed.stdout
    assert "o2" not in listed.stdout  # the refused rule changed nothing

    shot = west.mount / "hs-mount" / "project" / "sh010"
    (shot / "flame" / "renders").mkdir(parents=True)
    clip = shot / "flame" / "sh010.clip"
    clip.write_bytes(b"<clip version='v000'/>" + os.urandom(2000))
    (shot / "flame" / "renders" / "f.0001.exr").write_bytes(os.urandom(300_000))
    east_clip = "./hs-mount/project/sh010/flame/sh010.clip"
    wait_for(lambda: placement(east, east_clip)["state"] in ("local", "both"),
             what="the clip on east's volume without anyone reading it")
    row = placement(east, east_clip)
    assert row["objective"]["state"] == "aligned"  # type: ignore[index]
    assert row["objective"]["rules"] == {"place-on-local-volumes": "o1"}  # type: ignore[index]
    wait_for(lambda: placement(east, "./hs-mount/project/sh010/flame/renders/f.0001.exr")
             ["state"] == "bucket", what="the frame in the bucket")
    assert placement(east, "./hs-mount/project/sh010/flame/renders/f.0001.exr")["state"] == "bucket"

    clip.write_bytes(b"<clip version='v001'/>" + os.urandom(2000))  # rewritten at west
    new_hash = json.loads(meridian("ls", "--placement", "--json", "--config", str(west.config),
                                   "./hs-mount/project/sh010/flame/sh010.clip").stdout)[0]["content"]
    wait_for(lambda: placement(east, east_clip)["content"] == new_hash
             and placement(east, east_clip)["state"] in ("local", "both"),
             what="the new version on east's volume")
    explained = meridian("objective", "explain", "--config", str(east.config), east_clip)
    assert "o1" in explained.stdout and "matches" in explained.stdout
    assert "pinned: yes" in explained.stdout


def test_cache_and_evict_follow_the_rules(tmp_path: Path, stopper: list[RunningSite]) -> None:
    site = init_site(tmp_path, "solo", f"file://{tmp_path / 'bucket'}")
    stopper.append(site)
    site.start()
    shots = site.mount / "shots"
    shots.mkdir()
    data = {f"f{n}.exr": os.urandom(200_000) for n in range(6)}
    for name, content in data.items():
        (shots / name).write_bytes(content)
    (shots / "keep.exr").write_bytes(os.urandom(1000))
    meridian("objective", "add", "--config", str(site.config),
             'IF NAME == "keep.exr" THEN {SLO("keep-online")}')
    wait_for(lambda: "0 queued" in meridian("status", "--config", str(site.config)).stdout,
             what="everything uploaded")
    with open(shots / "f0.exr", "rb") as held_open:
        held_open.read(10)
        evicted = meridian("evict", "--config", str(site.config), str(shots))
    assert "skipped ./shots/keep.exr: pinned" in evicted.stdout
    assert "skipped ./shots/f0.exr: open" in evicted.stdout
    assert placement(site, "./shots/f1.exr")["state"] == "bucket"
    assert placement(site, "./shots/keep.exr")["state"] == "both"

    # content an objective keeps out of the bucket is never uploaded: the only instance
    meridian("objective", "add", "--config", str(site.config),
             "IF FNMATCH('./private/*', PATH) THEN {SLO('exclude-from-shared-object-volumes')}")
    (site.mount / "private").mkdir()
    (site.mount / "private" / "secret.exr").write_bytes(os.urandom(5000))
    wait_for(lambda: "held: an objective confines" in meridian(
        "status", "--config", str(site.config)).stdout, what="the upload held")
    only = meridian("evict", "--config", str(site.config), "./private")
    assert "skipped ./private/secret.exr: only copy" in only.stdout
    assert placement(site, "./private/secret.exr")["state"] in ("local", "in flight")

    bad = meridian("cache", "--config", str(site.config), "./shots/../etc", check=False)
    assert bad.returncode == 2 and ".." in bad.stderr
    cached = meridian("cache", "--config", str(site.config), "./shots/f*.exr")
    assert "0 failed" in cached.stdout
    for name in data:
        assert placement(site, f"./shots/{name}")["state"] == "both"
    assert (shots / "f3.exr").read_bytes() == data["f3.exr"]


def test_pinned_content_never_pushes_the_volume_past_its_capacity(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    import tomllib

    import tomli_w

    sites = init_linked(tmp_path, ["east", "west"], f"file://{tmp_path / 'bucket'}")
    east, west = sites["east"], sites["west"]
    doc = tomllib.loads(east.config.read_text())
    doc["volumes"][0]["capacity"] = "1MiB"
    doc["mover"] = {"space_wait": 0.5}
    east.config.write_text(tomli_w.dumps(doc))
    for site in (east, west):
        stopper.append(site)
        site.start()
    meridian("objective", "add", "--config", str(east.config),
             "IF MATCH_EXTENSION('pin', NAME) THEN {SLO('place-on-local-volumes')}")
    for n in range(3):
        (west.mount / f"big{n}.pin").write_bytes(os.urandom(600 * 1024))

    def waiting() -> bool:
        out = meridian("status", "--config", str(east.config)).stdout
        return "1 files aligned" in out and "2 unaligned (2 waiting for space)" in out
    wait_for(waiting, timeout=60, what="one pinned file local, two waiting for space")
    usage = json.loads(meridian("status", "--json", "--config", str(east.config)).stdout)
    assert usage["volume"]["used"] <= 1024 * 1024  # the capacity holds
    local = [n for n in range(3) if placement(east, f"./big{n}.pin")["state"] in ("local", "both")]
    assert len(local) == 1
    metrics = json.loads(meridian("objective", "explain", "--json", "--config", str(east.config),
                                  f"./big{(local[0] + 1) % 3}.pin").stdout)
    assert metrics["alignment"]["state"] == "unaligned"
    assert "waiting for space" in metrics["alignment"]["reason"]
