"""A site's data folder, volumes and config are its own: no other local user reads the bytes
the mount guards with its permission checks (docs/operations.md, "Private data")."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.sitehelpers import RunningSite, meridian


def _modes(root: Path) -> dict[Path, int]:
    found = {root: os.lstat(root).st_mode}
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            found[Path(folder, name)] = os.lstat(Path(folder, name)).st_mode
    return found


def _fsck(site: RunningSite) -> tuple[int, list[str]]:
    result = meridian("fsck", "--json", "--config", str(site.config), check=False)
    return result.returncode, json.loads(result.stdout)["problems"]


def test_data_volumes_and_config_are_private_and_fsck_reports_looser_modes(
        file_site: RunningSite) -> None:
    frames = file_site.mount / "frames"
    frames.mkdir()
    for n in range(5):
        (frames / f"f{n}.exr").write_bytes(os.urandom(50_000 + n))
    os.chmod(frames / "f0.exr", 0o644)
    file_site.stop()

    modes = _modes(file_site.data)
    content = [p for p in modes if "content" in p.parts and stat.S_ISREG(modes[p])]
    assert len(content) == 5 and file_site.config in modes
    assert any(p.name == "meta.db" or p.suffix == ".db" for p in modes)
    for path, mode in modes.items():
        if stat.S_ISDIR(mode):
            assert stat.S_IMODE(mode) == 0o700, f"{path}: {stat.S_IMODE(mode):o}"
        elif stat.S_ISREG(mode):
            assert mode & 0o077 == 0, f"{path}: {stat.S_IMODE(mode):o}"
    for path in content:
        assert stat.S_IMODE(modes[path]) == 0o400, f"{path}: content is read-only to its owner"
    assert _fsck(file_site) == (0, [])

    # what an older version left, or an administrator's chmod: fsck names each one
    os.chmod(content[0], 0o444)
    os.chmod(file_site.data, 0o755)
    os.chmod(file_site.config, 0o644)
    code, problems = _fsck(file_site)
    assert code == 1
    for path, mode in ((content[0], "0444"), (file_site.data, "0755"), (file_site.config, "0644")):
        assert any(p.startswith(f"{path}: ") and mode in p for p in problems), (path, problems)
    assert len(problems) == 3, problems

    file_site.start()  # the site closes them again when it starts
    assert stat.S_IMODE(os.stat(file_site.data).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(file_site.config).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(content[0]).st_mode) == 0o400
    shown = (frames / "f0.exr").stat()  # what the mount shows keeps its own modes
    assert shown.st_size == 50_000 and stat.S_IMODE(shown.st_mode) == 0o644
    file_site.stop()
    assert _fsck(file_site) == (0, [])
