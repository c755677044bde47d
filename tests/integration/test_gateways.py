"""NFS and SMB gateways of real sites, through real userspace clients.

Two linked sites, each exporting its mount over NFSv4 (nfs-ganesha) and SMB (Samba): bytes
written over NFS at east are read, identical, over SMB and through the mount at west; names
changed through either gateway are what the other site sees; NFS file handles stay the
same across a restart of east; a dead server is started again; a client not on the list is refused; a read-only export
refuses writes. Clients: libnfs (tests/nfsclient.py) and ``smbclient``. Under CI a missing
server or client fails the test (tests/ciguard.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.nfsclient import NfsClient, NfsError
from tests.sitehelpers import RunningSite, free_port, init_linked, init_site, wait_for

TOOLS = ("ganesha.nfsd", "smbd", "smbclient", "pdbedit")
_MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"gateway tools missing: {_MISSING} "
                                "(make test installs them: $(STAMPS)/gateways)")
SMB_USER = "nobody"  # an account every Debian host has (the site's SMB users are Unix accounts)


def add_exports(site: RunningSite, nfs: dict[str, Any] | None, smb: dict[str, Any] | None) -> None:
    doc = tomllib.loads(site.config.read_text())
    doc["exports"] = {}
    if nfs is not None:
        doc["exports"]["nfs"] = {"listen": f"127.0.0.1:{free_port()}", **nfs}
    if smb is not None:
        doc["exports"]["smb"] = {"listen": f"127.0.0.1:{free_port()}", "users": [SMB_USER], **smb}
    site.config.write_text(tomli_w.dumps(doc))


def export_state(site: RunningSite) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((site.data / "exports" / "state.json").read_text())
    return state


def start_with_exports(site: RunningSite) -> None:
    site.start()
    wanted = set(tomllib.loads(site.config.read_text()).get("exports", {}))
    wait_for(lambda: all(export_state(site).get(p, {}).get("state") == "running"
                         for p in wanted), what=f"{site.name}'s exports running")


def nfs_url(site: RunningSite) -> str:
    return str(export_state(site)["nfs"]["url"])


def smb(site: RunningSite, *commands: str, user: str = SMB_USER) -> subprocess.CompletedProcess[str]:
    export = export_state(site)["smb"]
    password = dict(line.split(":", 1) for line in
                    (site.data / "secrets" / "smb-passwords").read_text().splitlines())[user]
    host_port, _, share = export["url"].removeprefix("//").partition("/")
    host, _, port = host_port.partition(":")
    return subprocess.run(["smbclient", f"//{host}/{share}", "-p", port, "-U",
                           f"{user}%{password}", "-c", "; ".join(commands)],
                          capture_output=True, text=True, timeout=60, check=False)


def smb_ok(site: RunningSite, *commands: str) -> str:
    result = smb(site, *commands)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "NT_STATUS" not in output, output
    return output


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    # not under pytest's 0700 temporary folders: smbd works as the user, who must reach the mount
    path = Path(tempfile.mkdtemp(prefix="meridian-gateways-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pair(root: Path) -> Iterator[dict[str, RunningSite]]:
    """east and west, both exporting NFS (west read-only) and SMB to 127.0.0.1."""
    sites = init_linked(root, ["east", "west"], f"file://{root}/bucket")
    add_exports(sites["east"], {"clients": ["127.0.0.1"]}, {"clients": ["127.0.0.1"]})
    add_exports(sites["west"], {"clients": ["127.0.0.1"], "access": "ro"},
                {"clients": ["127.0.0.1/8"]})
    try:
        for site in sites.values():
            start_with_exports(site)
        work = sites["east"].mount / "work"
        work.mkdir()
        work.chmod(0o1777)  # workstations write as themselves (root is squashed)
        wait_for(lambda: (sites["west"].mount / "work").is_dir(), what="work at west")
        yield sites
    finally:
        for site in sites.values():
            site.stop()
    for site in sites.values():  # nothing left running
        assert not (site.data / "exports" / "nfs" / "child.pid").exists()


def test_nfs_write_at_east_is_read_identical_over_smb_and_the_mount_at_west(
        pair: dict[str, RunningSite], tmp_path: Path) -> None:
    east, west = pair["east"], pair["west"]
    data = os.urandom(3 << 20) + b"tail"
    with NfsClient(nfs_url(east), uid=65534, gid=65534) as nfs:
        nfs.write("/work/plate.0001.exr", data)
        assert nfs.read("/work/plate.0001.exr") == data
        # several READs in flight, answered in any order, put back in order
        assert b"".join(nfs.stream("/work/plate.0001.exr", in_flight=8,
                                   chunk=64 << 10)) == data
    wait_for(lambda: (west.mount / "work" / "plate.0001.exr").read_bytes() == data,
             what="the plate at west's mount")
    smb_ok(west, f"get work/plate.0001.exr {tmp_path / 'via-smb'}")
    assert (tmp_path / "via-smb").read_bytes() == data
    with NfsClient(nfs_url(west)) as nfs:  # west's (read-only) NFS export reads it too
        assert nfs.read("/work/plate.0001.exr") == data


def test_names_changed_through_nfs_and_smb_reach_the_other_site(
        pair: dict[str, RunningSite], tmp_path: Path) -> None:
    east, west = pair["east"], pair["west"]
    with NfsClient(nfs_url(east), uid=65534, gid=65534) as nfs:
        nfs.mkdir("/work/nfs-dir")
        nfs.write("/work/nfs-dir/a.txt", b"from nfs")
        nfs.rename("/work/nfs-dir/a.txt", "/work/nfs-dir/b.txt")
        nfs.chmod("/work/nfs-dir/b.txt", 0o640)
        nfs.write("/work/nfs-dir/gone.txt", b"x")
        nfs.unlink("/work/nfs-dir/gone.txt")
    b = west.mount / "work" / "nfs-dir" / "b.txt"
    wait_for(lambda: b.read_bytes() == b"from nfs" and (b.stat().st_mode & 0o777) == 0o640
             and sorted(os.listdir(b.parent)) == ["b.txt"], what="NFS changes at west")
    assert b.stat().st_uid == 65534  # written by a workstation as nobody

    (tmp_path / "s.txt").write_bytes(b"from smb")
    smb_ok(west, "mkdir work/smb-dir", f"put {tmp_path / 's.txt'} work/smb-dir/s.txt",
           "rename work/smb-dir/s.txt work/smb-dir/t.txt", "mkdir work/smb-dir/sub",
           "rmdir work/smb-dir/sub", f"put {tmp_path / 's.txt'} work/smb-dir/gone.txt",
           "del work/smb-dir/gone.txt")
    t = east.mount / "work" / "smb-dir" / "t.txt"
    wait_for(lambda: t.read_bytes() == b"from smb" and os.listdir(t.parent) == ["t.txt"],
             what="SMB changes at east")
    assert t.stat().st_mode & 0o044 == 0o044  # Samba's create mask, not the site's umask
    # no chmod over SMB2/3: smbclient's needs SMB1's UNIX extensions, which the export does
    # not offer (docs/gateways.md, "Modes over SMB"); it is refused and changes nothing
    at_west = west.mount / "work" / "smb-dir" / "t.txt"
    mode = at_west.stat().st_mode
    refused = smb(west, "chmod work/smb-dir/t.txt 600")
    assert "doesn't support UNIX CIFS calls" in refused.stdout + refused.stderr
    assert at_west.stat().st_mode == mode and t.stat().st_mode == mode
    with NfsClient(nfs_url(east)) as nfs:
        assert nfs.listdir("/work/smb-dir") == ["t.txt"]
        assert nfs.read("/work/smb-dir/t.txt") == b"from smb"
    # a change made at the other site shows over SMB at once (no oplock or lease held back)
    (east.mount / "work" / "smb-dir" / "t.txt").write_bytes(b"changed at east")
    wait_for(lambda: (west.mount / "work" / "smb-dir" / "t.txt").read_bytes()
             == b"changed at east", what="the change at west")
    smb_ok(west, f"get work/smb-dir/t.txt {tmp_path / 'again'}")
    assert (tmp_path / "again").read_bytes() == b"changed at east"


def test_read_only_nfs_export_refuses_writes(pair: dict[str, RunningSite]) -> None:
    with NfsClient(nfs_url(pair["west"]), uid=65534, gid=65534) as nfs:
        assert "work" in nfs.listdir("/")
        with pytest.raises(NfsError):
            nfs.write("/work/refused.txt", b"no")
        with pytest.raises(NfsError):
            nfs.mkdir("/work/refused")
    assert not (pair["west"].mount / "work" / "refused.txt").exists()


def test_nfs_file_handles_stay_the_same_across_a_restart_of_the_site(
        pair: dict[str, RunningSite]) -> None:
    """libnfs does not reconnect an NFSv4 session to a restarted server, so what a userspace
    client can show is this: the handle the restarted server gives for each file is the one
    it gave before (ganesha builds it from the mount's kernel handle, which the mount keeps
    stable: tests/integration/test_export_handles.py shows those resolving after a restart)."""
    east = pair["east"]
    data = os.urandom(1 << 20)
    (east.mount / "work" / "held").mkdir(mode=0o755)
    (east.mount / "work" / "held").chmod(0o755)  # whatever this process's umask is
    (east.mount / "work" / "held" / "plate.bin").write_bytes(data)
    (east.mount / "work" / "held" / "plate.bin").chmod(0o644)
    paths = ["/work/held/plate.bin", "/work/plate.0001.exr"]
    (east.mount / "work" / "plate.0001.exr").write_bytes(b"second")
    (east.mount / "work" / "plate.0001.exr").chmod(0o644)
    with NfsClient(nfs_url(east)) as nfs:
        before = {path: nfs.file_handle(path) for path in paths}
    east.stop()
    start_with_exports(east)
    with NfsClient(nfs_url(east)) as nfs:
        assert {path: nfs.file_handle(path) for path in paths} == before
        assert len(set(before.values())) == len(paths)
        assert nfs.read("/work/held/plate.bin") == data


def test_the_supervisor_restarts_a_gateway_that_dies(pair: dict[str, RunningSite]) -> None:
    east = pair["east"]
    before = export_state(east)["smb"]
    os.kill(int(before["pid"]), 9)
    wait_for(lambda: export_state(east)["smb"]["state"] == "running"
             and export_state(east)["smb"]["pid"] != before["pid"], what="smbd started again")
    assert export_state(east)["smb"]["restarts"] == before["restarts"] + 1
    smb_ok(east, "ls work")


def test_clients_not_listed_are_refused_and_read_only_smb_refuses_writes(
        root: Path, tmp_path: Path) -> None:
    north = init_site(root, "north", f"file://{root}/north-bucket")
    add_exports(north, {"clients": ["10.9.9.0/24"]}, {"clients": ["10.9.9.0/24"]})
    try:
        start_with_exports(north)
        with pytest.raises(NfsError):
            NfsClient(nfs_url(north)).listdir("/")
        refused = smb(north, "ls")  # smbd closes the connection of a host not allowed
        assert refused.returncode != 0 and "NT_STATUS" in refused.stdout + refused.stderr
        north.stop()
        add_exports(north, {"clients": ["127.0.0.1"], "access": "ro"},
                    {"clients": ["127.0.0.1"], "access": "ro"})
        start_with_exports(north)
        smb_ok(north, "ls")
        (tmp_path / "x.txt").write_bytes(b"x")
        denied = smb(north, f"put {tmp_path / 'x.txt'} x.txt")
        assert "NT_STATUS_ACCESS_DENIED" in denied.stdout + denied.stderr
        with NfsClient(nfs_url(north)) as nfs:
            with pytest.raises(NfsError):
                nfs.mkdir("/nope")
        assert not (north.mount / "x.txt").exists() and not (north.mount / "nope").exists()
    finally:
        north.stop()


def test_up_gives_every_site_both_exports(root: Path, tmp_path: Path) -> None:
    """``meridian up --exports nfs,smb``: a file written over NFS at east is read with the same
    bytes over SMB at west; ``up.json`` and ``status`` name the exports; nothing is left."""
    import pwd
    import signal
    import sys

    up_root = root / "up"
    up_root.mkdir()
    up_root.chmod(0o711)  # smbd works as the user, who must pass through (any umask here)
    log = open(tmp_path / "up.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "meridian.cli.main", "up", "--sites",
                                "east,west", "--root", str(up_root), "--exports", "nfs,smb"],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (up_root / "up.json").exists() or process.poll() is not None,
                 timeout=90, what="up.json")
        assert process.poll() is None, (tmp_path / "up.log").read_text()
        rows = {row["site"]: row for row in json.loads((up_root / "up.json").read_text())["sites"]}
        for row in rows.values():
            assert row["nfs"].startswith("nfs://127.0.0.1:") and row["nfs"].endswith("/meridian")
            assert row["smb"].startswith("//127.0.0.1:") and row["smb"].endswith("/meridian")
        status = subprocess.run([sys.executable, "-m", "meridian.cli.main", "status", "--json",
                                 "--config", str(up_root / "west" / "meridian.toml")],
                                capture_output=True, text=True, timeout=60, check=True)
        exports = {e["protocol"]: e for e in json.loads(status.stdout)["exports"]}
        assert {p: (e["url"], e["state"]) for p, e in exports.items()} == {
            "nfs": (rows["west"]["nfs"], "running"), "smb": (rows["west"]["smb"], "running")}
        user = exports["smb"]["users"][0]
        work = up_root / "east" / "mnt" / "work"
        work.mkdir()
        work.chmod(0o1777)
        data = os.urandom(1 << 20)
        account = pwd.getpwnam(user)
        with NfsClient(rows["east"]["nfs"], uid=account.pw_uid, gid=account.pw_gid) as nfs:
            nfs.write("/work/from-east.bin", data)
        password = dict(line.split(":", 1) for line in
                        (up_root / "west" / "secrets" / "smb-passwords").read_text().splitlines())
        host_port = rows["west"]["smb"].removeprefix("//").partition("/")[0]

        def read_over_smb() -> bool:
            got = subprocess.run(["smbclient", "//127.0.0.1/meridian", "-p",
                                  host_port.partition(":")[2], "-U", f"{user}%{password[user]}",
                                  "-c", f"get work/from-east.bin {tmp_path / 'got'}"],
                                 capture_output=True, text=True, timeout=60, check=False)
            return got.returncode == 0 and (tmp_path / "got").read_bytes() == data

        wait_for(read_over_smb, what="east's file over SMB at west")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=90)
        log.close()
    for site in ("east", "west"):
        state = json.loads((up_root / site / "exports" / "state.json").read_text())
        assert {p: s["state"] for p, s in state.items()} == {"nfs": "stopped", "smb": "stopped"}
        assert f" {up_root / site / 'mnt'} " not in Path("/proc/mounts").read_text()
