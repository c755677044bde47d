"""`meridian up`: several sites on one machine, linked as peers; Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import tomllib
from pathlib import Path

from tests.sitehelpers import MERIDIAN, wait_for


def start_up(root: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*MERIDIAN, "up", "--sites", "east,west", "--root", str(root), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_ready(process: subprocess.Popen[str], root: Path, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"meridian up exited {process.returncode}: {process.stdout.read() if process.stdout else ''}")
        if (root / "up.json").exists():
            info: dict[str, object] = json.loads((root / "up.json").read_text())
            return info
        time.sleep(0.1)
    process.kill()
    raise AssertionError("meridian up was not ready in time")


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    return process.returncode, out


def test_up_runs_linked_sites_and_stops_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "studio"
    process = start_up(root)
    try:
        info = wait_ready(process, root)
        sites = {row["site"]: row for row in info["sites"]}  # type: ignore[attr-defined]
        assert set(sites) == {"east", "west"}
        for name in ("east", "west"):
            mount = root / name / "mnt"
            assert json.loads((mount / ".meridian" / "site.json").read_text())["site"] == name
            config = tomllib.loads((root / name / "meridian.toml").read_text())
            other = "west" if name == "east" else "east"
            assert sites[other]["api"].startswith("https://127.0.0.1:")  # TLS between sites
            assert config["peers"] == [{"name": other, "url": sites[other]["api"]}]
            presented = json.loads((root / name / "secrets" / "peers.json").read_text())
            accepted = (root / other / "secrets" / "credentials.json").read_text()
            assert presented["peers"][other] not in accepted  # the other keeps its hash only
            assert (root / name / "tls" / "ca.crt").read_bytes() == \
                (root / "east" / "tls" / "ca.crt").read_bytes()  # one namespace CA
            assert config["bucket"]["url"] == f"file://{root / 'bucket'}"
        frame = os.urandom(3 * 1024 * 1024)
        (root / "east" / "mnt" / "kept.exr").write_bytes(frame)  # copied in at east ...
        arrived = root / "west" / "mnt" / "kept.exr"
        wait_for(lambda: arrived.exists() and arrived.read_bytes() == frame,
                 what="kept.exr at west")  # ... appears at west with the same bytes
        status = json.loads(subprocess.run(
            [*MERIDIAN, "status", "--json", "--config", str(root / "east" / "meridian.toml")],
            capture_output=True, text=True, timeout=60).stdout)
        assert [(p["name"], p["reachable"]) for p in status["peers"]] == [("west", True)]
        common = tmp_path / "common"
        for name in ("east", "west"):  # the same absolute path, each site's own tree behind it
            done = subprocess.run(
                [*MERIDIAN, "exec", "--site", name, "--root", str(root), "--at", str(common), "--",
                 "sh", "-c", f"echo {name} > {common}/written-at-{name}"],
                capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert (root / name / "mnt" / f"written-at-{name}").read_text() == f"{name}\n"
        assert not any(common.iterdir())  # the bind mounts lived in private namespaces only
        missing = subprocess.run([*MERIDIAN, "exec", "--site", "north", "--root", str(root), "--",
                                  "true"], capture_output=True, text=True, timeout=60)
        assert missing.returncode == 2 and "no site 'north'" in missing.stderr
    finally:
        code, out = stop(process)
    assert code == 0, out
    assert "ready" in out
    assert str(root) not in Path("/proc/mounts").read_text()
    assert not (root / "up.json").exists()
    leftovers = subprocess.run(["pgrep", "-f", f"--config {root}/"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""

    again = start_up(root)  # resumes with the data it has
    try:
        wait_ready(again, root)
        assert (root / "west" / "mnt" / "kept.exr").read_bytes() == frame
    finally:
        code, out = stop(again)
    assert code == 0, out


def test_up_refuses_bad_site_names(tmp_path: Path) -> None:
    result = subprocess.run([*MERIDIAN, "up", "--sites", "east,East Coast", "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "'East Coast'" in result.stderr
    assert not (tmp_path / "east").exists()
