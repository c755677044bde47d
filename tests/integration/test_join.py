"""Sites come and go: a new site joins from a peer's snapshot, then tails its journal."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

from tests.sitehelpers import (
    MERIDIAN,
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
    west = RunningSite("west", tmp_path / "west", tmp_path / "west-mnt", tmp_path / "west.log")
    east.start()
    try:
        (east.mount / "shots" / "sh010").mkdir(parents=True)
        for n in range(50):
            (east.mount / "shots" / "sh010" / f"f{n:03d}.exr").write_bytes(os.urandom(1000 + n))
        os.chmod(east.mount / "shots", 0o750)

        invitation = tmp_path / "west.join"
        meridian("peer", "invite", "west", "--config", str(east.config), "--out",
                 str(invitation))
        assert stat.S_IMODE(invitation.stat().st_mode) == 0o600
        doc = json.loads(invitation.read_text())
        assert doc["url"].startswith("https://") and "BEGIN CERTIFICATE" in doc["ca"]
        assert doc["credential"] not in (east.data / "secrets" / "credentials.json").read_text()

        on_command_line = meridian("init", "--site", "west", "--data", str(west.data), "--join",
                                   api_url(east), "--token", doc["credential"], check=False)
        assert on_command_line.returncode == 2 and "--join-file" in on_command_line.stderr
        forged = tmp_path / "forged.join"
        forged.write_text(json.dumps({**doc, "credential": "x" * 43}))
        refused = meridian("init", "--site", "west", "--data", str(west.data), "--join-file",
                           str(forged), check=False)
        assert refused.returncode == 3 and "refused the join credential" in refused.stderr
        assert not west.data.exists()  # a refused join leaves no half-made site
        clash = meridian("init", "--site", "east", "--data", str(tmp_path / "east2"),
                         "--join-file", str(invitation), check=False)
        assert clash.returncode == 2 and "invitation is for a site named 'west'" in clash.stderr

        joined = subprocess.run(  # the invitation on standard input
            [*MERIDIAN, "init", "--site", "west", "--data", str(west.data), "--join-file", "-",
             "--api-listen", f"127.0.0.1:{free_port()}"], input=invitation.read_text(),
            capture_output=True, text=True, timeout=60)
        assert joined.returncode == 0, joined.stderr
        assert "joined east's namespace" in joined.stdout
        again = meridian("init", "--site", "west", "--data", str(tmp_path / "west2"),
                         "--join-file", str(invitation), check=False)
        assert again.returncode == 3 and "refused" in again.stderr  # one time only
        west.start()
        try:
            assert snapshot(west.mount) == snapshot(east.mount)  # at once: from the snapshot
            (east.mount / "shots" / "after-join.txt").write_text("tailing")
            wait_for(lambda: (west.mount / "shots" / "after-join.txt").read_text() == "tailing",
                     what="west tails east's journal (over TLS, with its own credential)")
        finally:
            west.stop()
    finally:
        east.stop()


def test_an_expired_invitation_is_refused(tmp_path: Path) -> None:
    east = init_site(tmp_path, "east", f"file://{tmp_path / 'bucket'}",
                     "--api-listen", f"127.0.0.1:{free_port()}")
    east.start()
    try:
        invitation = tmp_path / "north.join"
        meridian("peer", "invite", "north", "--expires", "0.5", "--config", str(east.config),
                 "--out", str(invitation))
        time.sleep(1.0)
        late = meridian("init", "--site", "north", "--data", str(tmp_path / "north"),
                        "--join-file", str(invitation), check=False)
        assert late.returncode == 3 and "expired" in late.stderr
        assert not (tmp_path / "north").exists()
    finally:
        east.stop()
