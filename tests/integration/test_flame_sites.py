"""The Flame workflow across real sites: the demo end to end, and two sites adding a version to
one clip at the same moment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


from meridian.flame.openclip import OpenClip, new_clip
from tests.faultproxy import FaultProxy
from tests.integration.test_replication import _route_peers_through
from tests.sitehelpers import RunningSite, api_url, init_linked, meridian, wait_for

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_runs_the_whole_workflow() -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "sh010: new version v001 (from west" in out
    assert "cache sh010 v001: 20 files" in out and "0 failed" in out
    assert "mounts left: none" in out


def test_two_sites_adding_a_version_at_once_keep_both(tmp_path: Path,
                                                     stopper: list[RunningSite]) -> None:
    sites = init_linked(tmp_path, ["east", "west"], f"file://{tmp_path / 'bucket'}",
                        plain=True)  # the proxies speak plain HTTP
    proxies = {name: FaultProxy(api_url(site).removesuffix("/api/v1")).start()
               for name, site in sites.items()}
    try:
        _route_peers_through(sites, proxies)
        for site in sites.values():
            stopper.append(site)
            site.start()
        east, west = sites["east"], sites["west"]
        flame = east.mount / "sq010" / "sh010" / "flame"
        flame.mkdir(parents=True)
        new_clip("sh010", "/mnt/meridian/sq010/sh010/plates/sh010_plate.[1001-1010].exr").write(
            flame / "sh010.clip")
        west_clip = west.mount / "sq010" / "sh010" / "flame" / "sh010.clip"
        wait_for(lambda: west_clip.exists() and OpenClip.read(west_clip).current_version == "v000",
                 what="the clip at west")
        for proxy in proxies.values():
            proxy.refuse(True)  # both sites render v001 while cut off from each other
        for site in (east, west):
            meridian("flame", "version-add", str(site.mount / "sq010/sh010/flame/sh010.clip"),
                     "--frames", f"/mnt/meridian/sq010/sh010/renders/{site.name}/"
                                 "sh010_v001.[1001-1010].exr")
        for proxy in proxies.values():
            proxy.refuse(False)
        folder = east.mount / "sq010" / "sh010" / "flame"
        wait_for(lambda: any(".conflict-" in p.name for p in folder.iterdir()),
                 what="the conflict copy")
        merged = meridian("flame", "merge", str(east.mount / "sq010"))
        assert "v001" in merged.stdout
        clip = OpenClip.read(folder / "sh010.clip")
        names = [v.name for v in clip.versions()]
        paths = " ".join(p for v in clip.versions() for p in v.paths.values())
        assert names[:1] == ["v000"] and len(names) == 3, names
        assert "renders/east/" in paths and "renders/west/" in paths
        assert not [p for p in folder.iterdir() if ".conflict-" in p.name]
        west_folder = west.mount / "sq010" / "sh010" / "flame"
        wait_for(lambda: len(OpenClip.read(west_folder / "sh010.clip").versions()) == 3
                 and not [p for p in west_folder.iterdir() if ".conflict-" in p.name],
                 what="the merged clip at west")
    finally:
        for proxy in proxies.values():
            proxy.stop()
