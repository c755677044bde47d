"""The NFS and SMB gateways against the site's own mount, same run, same site.

`meridian up --sites east,west --exports nfs,smb`; every workload runs at east through the
mount, through east's NFS export (libnfs, userspace: tests/nfsclient.py) and through east's
SMB export (smbclient), and the script reports each figure and its ratio to the mount's:

- sequential write and read of one file (512 MiB by default; the page cache is dropped
  before every read, so reads come through the site); libnfs keeps one READ in flight, so
  the NFS read is also measured with --streams readers at once (separate processes), as a
  kernel client keeps several READs in flight (the mount's and SMB's figure is repeated);
- 500 files of 64 KiB written, then read;
- 2,000 empty files created, then stat'ed.

NFS writes are the client's limit, not the gateway's: libnfs 4.0 cannot encode an NFSv4
WRITE much over 1 KiB, so its writes go 1 KiB per round trip (and the sequential NFS write
uses --nfs-write-mib, 32 MiB by default, to keep the run to a few minutes). Target from the
issue: the gateway's sequential read ≥ 0.7× the mount's.

    .venv/bin/python bench/gateways.py [--size-mib 512] [--files 500] [--creates 2000]

Results: bench/results/gateways.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from seqio import machine_info
from visibility import REPO, Up

sys.path.insert(0, str(REPO))
from tests.nfsclient import NfsClient  # noqa: E402 - the repository's own test client

RESULTS = REPO / "bench" / "results"
BLOCK = 1 << 20


def _read_part(url: str, uid: int, path: str, start: int, end: int,
               at: float) -> tuple[int, float]:
    """One reader of a parallel read (its own process: libnfs names its NFSv4 client after
    the process, and two sessions of one process would take each other's state). Connects,
    waits for the wall-clock time ``at``, reads; returns the bytes read and when it ended."""
    with NfsClient(url, uid=uid, gid=uid) as nfs:
        handle = nfs.open(path)
        time.sleep(max(0.0, at - time.time()))
        offset = start
        while offset < end:
            got = nfs.pread(handle, offset, min(BLOCK, end - offset))
            if not got:
                break
            offset += len(got)
        ended = time.time()
        nfs.close_file(handle)
    return offset - start, ended


def parallel_nfs_read(url: str, uid: int, path: str, size: int, streams: int) -> float:
    """Read ``path`` in ``streams`` parts at once, as a kernel client keeps several READs in
    flight; returns the seconds from the common start to the last reader's end."""
    import multiprocessing

    part = -(-size // streams)
    at = time.time() + 5.0  # every reader connected and waiting by then
    with multiprocessing.get_context("spawn").Pool(streams) as pool:
        done = pool.starmap(_read_part, [(url, uid, path, i * part,
                                          min(size, (i + 1) * part), at)
                                         for i in range(streams)])
    if sum(n for n, _ in done) != size:
        raise RuntimeError(f"parallel NFS read: {sum(n for n, _ in done)} of {size} bytes")
    return max(ended for _, ended in done) - at


def drop_caches() -> None:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:  # not root: reads may come from the page cache (said in the report)
        pass


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


class Smb:
    def __init__(self, url: str, user: str, password: str) -> None:
        host_port, _, share = url.removeprefix("//").partition("/")
        host, _, self.port = host_port.partition(":")
        self.service = f"//{host}/{share}"
        self.auth = f"{user}%{password}"

    def run(self, commands: list[str]) -> None:
        """One smbclient session running ``commands`` (given on stdin, one per line)."""
        result = subprocess.run(["smbclient", self.service, "-p", self.port, "-U", self.auth],
                                input="\n".join(commands) + "\nquit\n", capture_output=True,
                                text=True, timeout=1800, check=False)
        output = result.stdout + result.stderr
        if result.returncode != 0 or "NT_STATUS" in output:
            raise RuntimeError(f"smbclient: {output[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--nfs-write-mib", type=int, default=32)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--file-kib", type=int, default=64)
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=4,
                        help="NFS readers of the parallel sequential read (default 4)")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="meridian-bench-gateways-", dir="/var/tmp"))
    scratch.chmod(0o711)  # smbd works as the SMB user, who must pass through to the mount
    root = scratch / "up"
    up = Up(root, "--exports", "nfs,smb")
    try:
        results = run(root, scratch, args)
    finally:
        up.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    report(results, args)
    return 0


def run(root: Path, scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    east = next(row for row in json.loads((root / "up.json").read_text())["sites"]
                if row["site"] == "east")
    config = json.loads(subprocess.run(
        [sys.executable, "-m", "meridian.cli.main", "status", "--json", "--config",
         east["config"]], capture_output=True, text=True, check=True, timeout=60).stdout)
    user = next(e for e in config["exports"] if e["protocol"] == "smb")["users"][0]
    account = pwd.getpwnam(user)
    passwords = dict(line.split(":", 1) for line in
                     (root / "east" / "secrets" / "smb-passwords").read_text().splitlines())
    smb = Smb(east["smb"], user, passwords[user])
    mount = Path(east["mount"])
    local = scratch / "local"
    local.mkdir()
    size = args.size_mib * BLOCK
    chunk = os.urandom(64 * BLOCK)
    with open(local / "big.bin", "wb") as out:
        for offset in range(0, size, len(chunk)):
            out.write(chunk[:min(len(chunk), size - offset)])
    small = os.urandom(args.file_kib * 1024)
    (local / "small").mkdir()
    for i in range(args.files):
        (local / "small" / f"f{i:04d}.bin").write_bytes(small)
    (local / "empty").write_bytes(b"")
    for name in ("mount", "nfs", "smb"):
        (mount / name).mkdir()
        (mount / name / "small").mkdir()
        (mount / name / "creates").mkdir()
        os.chown(mount / name, account.pw_uid, account.pw_gid)
        for sub in ("small", "creates"):
            os.chown(mount / name / sub, account.pw_uid, account.pw_gid)
    figures: dict[str, dict[str, float]] = {"mount": {}, "nfs": {}, "smb": {}}

    # -- the mount --------------------------------------------------------------------------
    def mount_write() -> None:
        with open(local / "big.bin", "rb") as src, open(mount / "mount" / "big.bin", "wb") as dst:
            while block := src.read(BLOCK):
                dst.write(block)

    def mount_read() -> None:
        with open(mount / "mount" / "big.bin", "rb", buffering=0) as src:
            while src.read(BLOCK):
                pass

    m = figures["mount"]
    m["seq_write_MBps"] = size / 1e6 / timed(mount_write)
    drop_caches()
    m["seq_read_MBps"] = size / 1e6 / timed(mount_read)
    m["seq_read_parallel_MBps"] = m["seq_read_MBps"]  # the mount's own read-ahead: one reader
    m["small_write_files_per_s"] = args.files / timed(lambda: [
        (mount / "mount" / "small" / f"f{i:04d}.bin").write_bytes(small) for i in range(args.files)])
    drop_caches()
    m["small_read_files_per_s"] = args.files / timed(lambda: [
        (mount / "mount" / "small" / f"f{i:04d}.bin").read_bytes() for i in range(args.files)])
    creates = mount / "mount" / "creates"
    m["creates_per_s"] = args.creates / timed(lambda: [
        os.close(os.open(creates / f"c{i:05d}", os.O_CREAT | os.O_WRONLY, 0o644))
        for i in range(args.creates)])
    drop_caches()
    m["stats_per_s"] = args.creates / timed(lambda: [
        os.stat(creates / f"c{i:05d}") for i in range(args.creates)])

    # -- NFS --------------------------------------------------------------------------------
    n = figures["nfs"]
    with NfsClient(east["nfs"], uid=account.pw_uid, gid=account.pw_gid) as nfs:
        nfs_size = min(size, args.nfs_write_mib * BLOCK)
        data = (local / "big.bin").read_bytes()[:nfs_size]
        n["seq_write_MBps"] = nfs_size / 1e6 / timed(lambda: nfs.write("/nfs/big.bin", data))
        del data
        drop_caches()
        read = timed(lambda: nfs.read("/mount/big.bin"))  # the same 512 MiB the mount read
        n["seq_read_MBps"] = size / 1e6 / read
        drop_caches()
        n["seq_read_parallel_MBps"] = size / 1e6 / parallel_nfs_read(
            east["nfs"], account.pw_uid, "/mount/big.bin", size, args.streams)
        n["small_write_files_per_s"] = args.files / timed(lambda: [
            nfs.write(f"/nfs/small/f{i:04d}.bin", small) for i in range(args.files)])
        drop_caches()
        n["small_read_files_per_s"] = args.files / timed(lambda: [
            nfs.read(f"/nfs/small/f{i:04d}.bin") for i in range(args.files)])
        n["creates_per_s"] = args.creates / timed(lambda: [
            nfs.write(f"/nfs/creates/c{i:05d}", b"") for i in range(args.creates)])
        drop_caches()
        n["stats_per_s"] = args.creates / timed(lambda: [
            nfs.stat(f"/nfs/creates/c{i:05d}") for i in range(args.creates)])

    # -- SMB --------------------------------------------------------------------------------
    s = figures["smb"]
    s["seq_write_MBps"] = size / 1e6 / timed(lambda: smb.run(
        [f"put {local / 'big.bin'} smb/big.bin"]))
    drop_caches()
    s["seq_read_MBps"] = size / 1e6 / timed(lambda: smb.run(["get mount/big.bin /dev/null"]))
    s["seq_read_parallel_MBps"] = s["seq_read_MBps"]  # smbclient keeps several reads in flight
    s["small_write_files_per_s"] = args.files / timed(lambda: smb.run(
        ["prompt off", f"lcd {local / 'small'}", "cd smb/small", "mput *"]))
    drop_caches()
    got = scratch / "got"
    got.mkdir()
    s["small_read_files_per_s"] = args.files / timed(lambda: smb.run(
        ["prompt off", f"lcd {got}", "cd smb/small", "mget *"]))
    s["creates_per_s"] = args.creates / timed(lambda: smb.run(
        [f"put {local / 'empty'} smb/creates/c{i:05d}" for i in range(args.creates)]))
    drop_caches()
    s["stats_per_s"] = args.creates / timed(lambda: smb.run(
        [f"allinfo smb/creates/c{i:05d}" for i in range(args.creates)]))
    assert len(os.listdir(got)) == args.files
    return {"figures": figures, "nfs_seq_write_mib": args.nfs_write_mib,
            "machine": machine_info(scratch)}


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    figures = results["figures"]
    mount = figures["mount"]
    ratios = {gw: {k: round(v / mount[k], 2) for k, v in figures[gw].items()}
              for gw in ("nfs", "smb")}
    results.update(ratios=ratios, args=vars(args),
                   date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateways.json").write_text(json.dumps(results, indent=2))
    lines = ["# Gateways against the mount (bench/gateways.py)", "",
             f"{results['date']}; {args.size_mib} MiB sequential (NFS write: "
             f"{results['nfs_seq_write_mib']} MiB, libnfs writes 1 KiB per round trip), "
             f"{args.files} x {args.file_kib} KiB, {args.creates} creates/stats; "
             f"{results['machine'].get('nproc')} cores.", "",
             "| workload | mount | NFS | NFS/mount | SMB | SMB/mount |", "|---|---|---|---|---|---|"]
    for key in mount:
        lines.append(f"| {key} | {mount[key]:.0f} | {figures['nfs'][key]:.0f} | "
                     f"{ratios['nfs'][key]} | {figures['smb'][key]:.0f} | {ratios['smb'][key]} |")
    text = "\n".join(lines) + "\n"
    (RESULTS / "gateways.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
