"""Starting and stopping a site: signals unmount cleanly, a busy mount point is refused."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.sitehelpers import MERIDIAN, RunningSite, init_site, meridian


def mounted(path: Path) -> bool:
    return f" {path} " in Path("/proc/mounts").read_text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_unmounts_and_exits_zero(tmp_path: Path, sig: int) -> None:
    site = init_site(tmp_path, "solo", f"file://{tmp_path}/bucket")
    site.start()
    (site.mount / "kept.txt").write_text("still here")
    assert mounted(site.mount)
    status = json.loads(meridian("status", "--json", "--config", str(site.config)).stdout)
    assert status["running"] and status["mount"] == str(site.mount)
    assert site.process is not None
    site.process.send_signal(sig)
    assert site.process.wait(timeout=20) == 0, site.log()
    assert not mounted(site.mount), "the site exited but left its mount behind"
    assert "stopped" in site.log()
    status = json.loads(meridian("status", "--json", "--config", str(site.config)).stdout)
    assert not status["running"]
    site.process = None
    site.start()  # and it comes back with what it had
    try:
        assert (site.mount / "kept.txt").read_text() == "still here"
    finally:
        site.stop()


def test_a_started_site_freezes_its_startup_heap(file_site: RunningSite) -> None:
    """Once up, the site takes what it loaded out of the collector's full passes
    (meridian.site.heap): the log says how much, for whoever wonders about its memory."""
    deadline = time.monotonic() + 20
    while "kept out of the collector's passes" not in file_site.log():
        assert time.monotonic() < deadline, file_site.log()
        time.sleep(0.05)
    frozen = re.search(r"startup heap: (\d+) objects", file_site.log())
    assert frozen is not None and int(frozen.group(1)) > 10_000, file_site.log()


def test_a_second_site_on_a_live_mount_point_is_refused(file_site: RunningSite, tmp_path: Path) -> None:
    other = init_site(tmp_path, "other", f"file://{tmp_path}/bucket2")
    result = meridian("site", "run", "--config", str(other.config), "--mount",
                      str(file_site.mount), check=False, timeout=30)
    assert result.returncode == 2 and "already a mount point" in result.stderr
    assert (file_site.mount / ".meridian" / "site.json").read_text()  # the first one is untouched


def test_running_without_a_mount_point_is_bad_input(tmp_path: Path) -> None:
    site: RunningSite = init_site(tmp_path, "solo", f"file://{tmp_path}/bucket")
    result = meridian("site", "run", "--config", str(site.config), check=False)
    assert result.returncode == 2 and "no mount point" in result.stderr


def test_commands_find_their_site_from_inside_the_mount(file_site: RunningSite) -> None:
    (file_site.mount / "shots" / "sh010").mkdir(parents=True)
    (file_site.mount / "shots" / "sh010" / "plate.exr").write_bytes(b"p" * 1000)
    env = {"MERIDIAN_CONFIG": ""}
    inside = subprocess.run([*MERIDIAN, "status", "--json"], cwd=file_site.mount / "shots",
                            capture_output=True, text=True, env={**os.environ, **env})
    assert inside.returncode == 0, inside.stderr
    assert json.loads(inside.stdout)["site"] == "solo"
    by_path = meridian("ls", str(file_site.mount / "shots" / "sh010"), env=env)
    assert by_path.stdout.split() == ["/shots/sh010/plate.exr"]


def test_running_site_serves_its_api_over_tls_with_its_admin_credential(
        file_site: RunningSite) -> None:
    import ssl
    import stat as stat_module
    import urllib.error
    import urllib.request

    status = json.loads(meridian("status", "--json", "--config", str(file_site.config)).stdout)
    url = status["api"]
    assert url.startswith("https://127.0.0.1:")
    secrets = file_site.data / "secrets"
    credential = (secrets / "admin.token").read_text().strip()
    assert credential not in file_site.config.read_text()
    assert credential not in (secrets / "credentials.json").read_text()  # kept hashed
    for secret in (secrets / "admin.token", secrets / "credentials.json",
                   file_site.data / "tls" / "site.key", file_site.data / "tls" / "ca.key"):
        assert stat_module.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert credential not in meridian("status", "--config", str(file_site.config)).stdout
    assert credential not in file_site.log()
    context = ssl.create_default_context(cafile=str(file_site.data / "tls" / "ca.crt"))
    request = urllib.request.Request(url + "/site",
                                     headers={"Authorization": f"Bearer {credential}"})
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        assert json.loads(answer.read())["site"] == "solo"
    try:
        urllib.request.urlopen(url + "/site", timeout=10, context=context)
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    else:
        raise AssertionError("a request without a credential was answered")
