"""Undo through real mounts at two sites: rm -rf at east, undelete at west, the same bytes at
both; a clip version overwritten at west restored at east; a snapshot made at east listed and
restored from at west. Every command goes through the CLI and the running site's API."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from tests.sitehelpers import RunningSite, init_linked, meridian, wait_for


def start_all(sites: dict[str, RunningSite], stopper: list[RunningSite]) -> None:
    for site in sites.values():
        stopper.append(site)
        site.start()


def files_under(root: Path) -> dict[str, bytes | str]:
    tree: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            tree[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                tree[os.path.relpath(path, root)] = f.read()
    return tree


def publish_shots(mount: Path) -> dict[str, bytes | str]:
    """A published shot tree: plates, a clip and a Batch setup per shot, and an empty folder."""
    for shot in ("sh010", "sh020"):
        base = mount / "shots" / shot
        (base / "plates").mkdir(parents=True)
        (base / "renders").mkdir()
        for frame in range(1001, 1004):
            (base / "plates" / f"{shot}_plate.{frame}.exr").write_bytes(os.urandom(70_000 + frame))
        (base / f"{shot}.clip").write_text(f"<clip><name>{shot}</name><version>v000</version></clip>")
        (base / f"{shot}.batch").write_text(f"<setup shot='{shot}'/>")
    return files_under(mount / "shots")


def test_rm_rf_at_east_undeleted_at_west_is_byte_identical_at_both(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    sites = init_linked(tmp_path, ["east", "west"], f"file://{tmp_path / 'bucket'}")
    start_all(sites, stopper)
    east, west = sites["east"], sites["west"]
    published = publish_shots(east.mount)
    wait_for(lambda: files_under(west.mount / "shots") == published, what="west sees the shots")

    shutil.rmtree(east.mount / "shots")
    wait_for(lambda: not (west.mount / "shots").exists(), what="west sees the removal")
    in_trash = west.mount / ".meridian" / "trash" / "shots"
    assert files_under(in_trash) == published  # read-only, every removed file's bytes
    listing = meridian("trash", "list", "./shots", "--site", "east", "--config", str(west.config))
    assert "./shots/sh010/plates/sh010_plate.1001.exr" in listing.stdout
    assert " east " in listing.stdout

    done = meridian("undelete", "./shots", "--config", str(west.config))
    assert "10 files, 7 folders" in done.stdout, done.stdout
    for site in (west, east):
        wait_for(lambda: files_under(site.mount / "shots") == published,
                 what=f"{site.name} has every file back with the same bytes")

    again = meridian("undelete", "./shots", "--config", str(west.config), check=False)
    assert again.returncode == 2 and "--as" in again.stderr, again.stderr
    beside = meridian("undelete", "./shots", "--as", "./shots-before", "--config",
                      str(east.config))
    assert "10 files" in beside.stdout
    wait_for(lambda: files_under(west.mount / "shots-before") == published,
             what="the second copy at west")


def test_a_clip_overwritten_at_west_is_restored_at_east(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    sites = init_linked(tmp_path, ["east", "west"], f"file://{tmp_path / 'bucket'}")
    start_all(sites, stopper)
    east, west = sites["east"], sites["west"]
    first = b"<clip><version>v001</version></clip>"
    (east.mount / "sh010.clip").write_bytes(first)
    wait_for(lambda: (west.mount / "sh010.clip").read_bytes() == first, what="west has v001")
    (west.mount / "sh010.clip").write_bytes(b"<clip><version>v002 broken</version></clip>")
    wait_for(lambda: b"v002" in (east.mount / "sh010.clip").read_bytes(), what="east has v002")

    versions = meridian("versions", "./sh010.clip", "--config", str(east.config)).stdout
    lines = [line for line in versions.splitlines() if line.strip()]
    assert len(lines) == 2 and " east " in lines[0] and " west " in lines[1], versions
    meridian("restore", "./sh010.clip", "--version", "1", "--config", str(east.config))
    for site in (east, west):
        wait_for(lambda: (site.mount / "sh010.clip").read_bytes() == first,
                 what=f"v001 is current again at {site.name}")
    after = meridian("versions", "./sh010.clip", "--config", str(west.config)).stdout
    assert "v002" not in after and len(after.strip().splitlines()) == 3  # nothing lost


def test_a_snapshot_made_at_east_is_listed_and_restored_from_at_west(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    sites = init_linked(tmp_path, ["east", "west"], f"file://{tmp_path / 'bucket'}")
    start_all(sites, stopper)
    east, west = sites["east"], sites["west"]
    published = publish_shots(east.mount)
    wait_for(lambda: files_under(west.mount / "shots") == published, what="west sees the shots")
    made = meridian("snapshot", "create", "before-review", "--config", str(east.config)).stdout
    assert "before-review: 17 entries" in made, made
    wait_for(lambda: "before-review" in meridian("snapshot", "list", "--config",
                                                 str(west.config)).stdout,
             what="west lists east's snapshot")
    assert os.listdir(west.mount / ".snapshot") == ["before-review"]
    in_snapshot = west.mount / ".snapshot" / "before-review" / "shots"
    assert files_under(in_snapshot) == published  # browsable at west, the bytes fetched
    assert ".snapshot" not in os.listdir(west.mount)  # found by name, not listed
    try:
        (in_snapshot / "sh010" / "sh010.clip").write_text("no")
        raise AssertionError("a snapshot file was writable")
    except OSError as exc:
        assert exc.errno == errno.EROFS
    (east.mount / "shots" / "sh010" / "sh010.clip").write_text("<clip>overwritten</clip>")
    shutil.rmtree(east.mount / "shots" / "sh020")
    wait_for(lambda: not (west.mount / "shots" / "sh020").exists(), what="removal at west")

    meridian("restore", "./shots/sh020", "--snapshot", "before-review", "--config",
             str(west.config))
    refused = meridian("restore", "./shots/sh010/sh010.clip", "--snapshot", "before-review",
                       "--config", str(west.config), check=False)
    assert refused.returncode == 2 and "--as" in refused.stderr
    meridian("restore", "./shots/sh010/sh010.clip", "--snapshot", "before-review", "--as",
             "./shots/sh010/sh010.clip.before", "--config", str(west.config))
    sh020 = {k[len("sh020/"):]: v for k, v in published.items() if k.startswith("sh020/")}
    for site in (east, west):
        wait_for(lambda: files_under(site.mount / "shots" / "sh020") == sh020,
                 what=f"sh020 back at {site.name}")
        wait_for(lambda: (site.mount / "shots/sh010/sh010.clip.before").read_bytes()
                 == published["sh010/sh010.clip"], what=f"the clip as it was at {site.name}")
    meridian("snapshot", "delete", "before-review", "--config", str(west.config))
    wait_for(lambda: "no snapshots" in meridian("snapshot", "list", "--config",
                                                str(east.config)).stdout,
             what="east forgets the deleted snapshot")


def test_a_versioning_objective_keeps_versions_past_the_trash_retention(
        tmp_path: Path, stopper: list[RunningSite]) -> None:
    import time
    import tomllib

    import tomli_w

    sites = init_linked(tmp_path, ["east", "west"], f"file://{tmp_path / 'bucket'}")
    for site in sites.values():
        doc = tomllib.loads(site.config.read_text())
        doc["namespace"] = {"trash_days": 3 / 86400}  # three seconds
        doc.setdefault("mover", {})["gc_interval"] = 1  # the undo round: every second
        site.config.write_text(tomli_w.dumps(doc))
    start_all(sites, stopper)
    east = sites["east"]
    meridian("objective", "add", "--no-wait", "--config", str(east.config),
             """IF FNMATCH("./*.clip",PATH) THEN {SLO('versioning-1-month')}""")
    for name in ("sh010.clip", "plate.exr"):
        (east.mount / name).write_bytes(b"v1")
        (east.mount / name).write_bytes(b"v2")

    def kept(name: str) -> int:
        out = meridian("versions", f"./{name}", "--config", str(east.config)).stdout
        return len([line for line in out.splitlines() if line.strip() and "no versions" not in line])

    assert kept("sh010.clip") == 2 and kept("plate.exr") == 2
    wait_for(lambda: kept("plate.exr") == 1, what="the plate's replaced version expired")
    time.sleep(2)  # two more rounds
    assert kept("sh010.clip") == 2
