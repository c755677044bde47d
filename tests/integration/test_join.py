"""Sites come and go: a new site joins from a peer's snapshot, then tails its journal."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from tests.sitehelpers import (
    RunningSite,
    api_url,
    free_port,
    init_site,
    meridian,
    snapshot,
    wait_for,
)


def test_a_site_joins_from_a_snapshot_and_then_tails(tmp_path: Path) -> None:
    east = init_site(tmp_path, "east", f"file://{tmp_path / 'bucket'}",
                     "--api-listen", f"127.0.0.1:{free_port()}")
    token = tomllib.loads(east.config.read_text())["api"]["token"]
    west = RunningSite("west", tmp_path / "west", tmp_path / "west-mnt", tmp_path / "west.log")
    east.start()
    try:
        (east.mount / "shots" / "sh010").mkdir(parents=True)
        for n in range(50):
            (east.mount / "shots" / "sh010" / f"f{n:03d}.exr").write_bytes(os.urandom(1000 + n))
        os.chmod(east.mount / "shots", 0o750)

        refused = meridian("init", "--site", "west", "--data", str(west.data), "--join",
                           api_url(east), "--token", "wrong", check=False)
        assert refused.returncode == 3 and "refused the token" in refused.stderr
        assert not west.config.exists()  # a refused join leaves no half-made site
        clash = meridian("init", "--site", "east", "--data", str(tmp_path / "east2"),
                         "--join", api_url(east), "--token", token, check=False)
        assert clash.returncode == 2 and "east" in clash.stderr

        joined = meridian("init", "--site", "west", "--data", str(west.data), "--join",
                          api_url(east), "--token", token,
                          "--api-listen", f"127.0.0.1:{free_port()}")
        assert "joined east's namespace" in joined.stdout
        west.start()
        try:
            assert snapshot(west.mount) == snapshot(east.mount)  # at once: from the snapshot
            (east.mount / "shots" / "after-join.txt").write_text("tailing")
            wait_for(lambda: (west.mount / "shots" / "after-join.txt").read_text() == "tailing",
                     what="west tails east's journal")
        finally:
            west.stop()
    finally:
        east.stop()
