"""The NFS and SMB gateways against the site's own mount, same run, same site.

`meridian up --sites east,west --exports nfs,smb`; every workload runs at east through the
mount, through east's NFS export (libnfs, userspace: tests/nfsclient.py) and through east's
SMB export (smbclient), and the script reports each figure and its ratio to the mount's:

- sequential write of one file (512 MiB by default);
- sequential read of that file, after every write below, in --rounds rounds (default 3;
  the order rotates from round to round, the page cache is dropped before every read, so
  reads come through the site): the mount (one reader, the kernel's read-ahead), NFS as a
  kernel client reads (--nfs-in-flight READs of the server's maximum size outstanding, 1 MiB
  for ganesha and libnfs), NFS one READ at a time (a client without read-ahead), NFS through
  the client's synchronous read (what this script measured before: libnfs's nfs_pread, its
  buffer copied twice in Python), SMB (smbclient keeps several reads in flight); medians,
  min and max, and the load average before and after;
- in the same rounds, the same file in a plain folder on the same disk, read locally and
  over its own ganesha (same configuration, FSAL VFS, same client): what ganesha and this
  client reach on this machine without Meridian under them;
- in the same rounds, the same file in a folder in memory (/dev/shm, untouched by the
  dropped page cache) over its own ganesha: neither disk nor FUSE under it, so no NFS read
  on this machine, with this client, can be faster. Its speed over the mount's in the same
  round is the ceiling of the NFS ratio here (measured 2026-12-06: 0.56x and 0.68x);
- 500 files of 64 KiB written, then read;
- 2,000 empty files created, then stat'ed.

NFS writes are the client's limit, not the gateway's: libnfs 4.0 cannot encode an NFSv4
WRITE much over 1 KiB, so its writes go 1 KiB per round trip (and the sequential NFS write
uses --nfs-write-mib, 32 MiB by default, to keep the run to a few minutes). Target from the
issue: the gateway's sequential read ≥ 0.7× the mount's.

    .venv/bin/python bench/gateways.py [--size-mib 512] [--rounds 3] [--nfs-in-flight 4]

Results: bench/results/gateways.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.machine import REPO, machine_info
from harness.site import Up

sys.path.insert(0, str(REPO))
from tests.nfsclient import NfsClient  # noqa: E402 - the repository's own test client

RESULTS = REPO / "bench" / "results"
BLOCK = 1 << 20
READERS = ("mount", "nfs", "nfs_one_read", "nfs_sync", "smb", "plain_local", "plain_nfs",
           "ram_nfs")


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


def local_read(path: Path) -> int:
    """Read ``path`` 1 MiB at a time, unbuffered, as the mount's figure always has."""
    total = 0
    with open(path, "rb", buffering=0) as src:
        while block := src.read(BLOCK):
            total += len(block)
    return total


def nfs_read(url: str, uid: int, path: str, in_flight: int) -> tuple[int, float]:
    """Bytes of ``path`` read over NFS with ``in_flight`` READs outstanding (1: one at a
    time; 0: the client's synchronous ``read``, what this script measured before), and the
    seconds the read took (the session is set up before the clock starts)."""
    with NfsClient(url, uid=uid, gid=uid) as nfs:
        started = time.perf_counter()
        if in_flight == 0:
            total = len(nfs.read(path))
        else:
            total = sum(len(piece) for piece in nfs.stream(path, in_flight=in_flight))
        return total, time.perf_counter() - started


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
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the sequential reads (default 3)")
    parser.add_argument("--nfs-in-flight", type=int, default=4,
                        help="NFS READs outstanding in the sequential read (default 4)")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="meridian-bench-gateways-", dir="/var/tmp"))
    scratch.chmod(0o711)  # smbd works as the SMB user, who must pass through to the mount
    root = scratch / "up"
    try:
        up = Up(root, "--exports", "nfs,smb")
        try:
            results = run(root, scratch, args)
        finally:
            up.stop()
    finally:
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
    write_big_file(local / "big.bin", size)
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

    m = figures["mount"]
    m["seq_write_MBps"] = size / 1e6 / timed(mount_write)
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

    # -- sequential reads, interleaved ------------------------------------------------------
    plain, plain_work = scratch / "plain", scratch / "plain-ganesha"
    plain.mkdir()
    plain_work.mkdir()
    (local / "big.bin").rename(plain / "big.bin")  # a plain folder on the same disk
    site_pid = int(east["pid"])
    ganesha_pid, smbd_pid = (int(next(root.glob(f"east/**/exports/{gw}/child.pid")).read_text())
                             for gw in ("nfs", "smb"))
    ram = Path(tempfile.mkdtemp(prefix="meridian-bench-ram-", dir="/dev/shm"))
    (ram / "plain").mkdir()
    (ram / "work").mkdir()
    shutil.copyfile(plain / "big.bin", ram / "plain" / "big.bin")
    try:
        with plain_ganesha(plain, plain_work) as (plain_url, plain_pid), \
                plain_ganesha(ram / "plain", ram / "work") as (ram_url, ram_pid):
            readers: dict[str, Callable[[], float]] = {
                "mount": lambda: timed(lambda: check(local_read(mount / "mount" / "big.bin"),
                                                     size)),
                "nfs": lambda: nfs_timed(east["nfs"], account.pw_uid, "/mount/big.bin",
                                         args.nfs_in_flight, size),
                "nfs_one_read": lambda: nfs_timed(east["nfs"], account.pw_uid, "/mount/big.bin",
                                                  1, size),
                "nfs_sync": lambda: nfs_timed(east["nfs"], account.pw_uid, "/mount/big.bin", 0,
                                              size),
                "smb": lambda: timed(lambda: smb.run(["get mount/big.bin /dev/null"])),
                "plain_local": lambda: timed(lambda: check(local_read(plain / "big.bin"), size)),
                "plain_nfs": lambda: nfs_timed(plain_url, 0, "/big.bin", args.nfs_in_flight, size),
                "ram_nfs": lambda: nfs_timed(ram_url, 0, "/big.bin", args.nfs_in_flight, size),
            }
            for path in (mount / "mount" / "big.bin", plain / "big.bin"):
                local_read(path)  # once untimed: the site settles after the write, and the
                # disk's own cache (a virtual disk's host) sees both files alike
            site, ganesha, smbd = {"site": site_pid}, {"ganesha": ganesha_pid}, {"smbd": smbd_pid}
            servers = {"mount": site, "nfs": site | ganesha, "nfs_one_read": site | ganesha,
                       "nfs_sync": site | ganesha, "smb": site | smbd, "plain_local": {},
                       "plain_nfs": {"ganesha": plain_pid}, "ram_nfs": {"ganesha": ram_pid}}
            rounds = read_rounds(readers, servers, size, args.rounds)
    finally:
        shutil.rmtree(ram, ignore_errors=True)  # /dev/shm is not under the scratch folder
    for gateway in ("mount", "nfs", "smb"):
        figures[gateway]["seq_read_MBps"] = statistics.median(rounds["MBps"][gateway])
    figures["nfs"]["seq_read_one_READ_MBps"] = statistics.median(rounds["MBps"]["nfs_one_read"])
    return {"figures": figures, "seq_read": rounds, "nfs_seq_write_mib": args.nfs_write_mib,
            "machine": machine_info(scratch)}


def write_big_file(path: Path, size: int) -> None:
    chunk = os.urandom(64 * BLOCK)
    with open(path, "wb") as out:
        for offset in range(0, size, len(chunk)):
            out.write(chunk[:min(len(chunk), size - offset)])


def check(got: int, size: int) -> None:
    if got != size:
        raise RuntimeError(f"read {got} of {size} bytes")


def nfs_timed(url: str, uid: int, path: str, in_flight: int, size: int) -> float:
    got, seconds = nfs_read(url, uid, path, in_flight)
    check(got, size)
    return seconds


def cpu_seconds(pid: int) -> float:
    """CPU time of process ``pid``, with that of the children it has reaped (smbd serves
    each connection from a child of its own)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # u, s, cu, cs


def own_cpu_seconds() -> float:
    """This process's CPU time and its reaped children's (smbclient)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def read_rounds(readers: dict[str, Callable[[], float]],
                servers: dict[str, dict[str, int]], size: int, rounds: int) -> dict[str, Any]:
    """Every reader once per round, the order rotating (so none is always first after the
    others), the page cache dropped before each; MB/s of each read, the CPU seconds per GiB
    its client (this process and its children) and its servers (``servers[name]``: the
    site, the gateway) spent, and the load average."""
    names = list(readers)
    speeds: dict[str, list[float]] = {name: [] for name in names}
    client_cpu: dict[str, list[float]] = {name: [] for name in names}
    server_cpu: dict[str, dict[str, list[float]]] = {
        name: {server: [] for server in servers[name]} for name in names}
    load_before = os.getloadavg()
    for round_ in range(rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            drop_caches()
            client = own_cpu_seconds()
            before = {server: cpu_seconds(pid) for server, pid in servers[name].items()}
            speeds[name].append(size / 1e6 / readers[name]())
            client_cpu[name].append((own_cpu_seconds() - client) * (1 << 30) / size)
            for server, pid in servers[name].items():
                server_cpu[name][server].append((cpu_seconds(pid) - before[server])
                                                * (1 << 30) / size)
    return {"MBps": speeds, "client_cpu_s_per_GiB": client_cpu,
            "server_cpu_s_per_GiB": server_cpu, "load_before": load_before,
            "load_after": os.getloadavg()}


@contextmanager
def plain_ganesha(directory: Path, workdir: Path) -> Iterator[tuple[str, int]]:
    """ganesha exporting ``directory`` (a plain folder), configured as a site's export is;
    yields its URL and pid, and stops it on the way out."""
    from meridian.cli.up_cmd import free_port
    from meridian.gateways.ganesha import ganesha_command, ganesha_config
    from meridian.site.exports import ExportConfig

    export = ExportConfig("nfs", f"127.0.0.1:{free_port()}", root_squash=False)
    conf = workdir / "ganesha.conf"
    conf.write_text(ganesha_config(export, directory, workdir, "bench-plain"))
    process = subprocess.Popen(ganesha_command(conf, workdir), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    url = export.url()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with NfsClient(url, uid=0, gid=0):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ganesha on {directory} did not start "
                                       f"(see {workdir / 'ganesha.log'})") from None
                time.sleep(0.2)
        yield url, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def spread_text(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


def paired_ratio(reads: dict[str, list[float]], name: str, base: str) -> float:
    """The median over rounds of ``name``'s speed over ``base``'s in the same round."""
    return round(statistics.median([v / b for v, b in zip(reads[name], reads[base])]), 2)


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    figures = results["figures"]
    mount = figures["mount"]
    ratios = {gw: {k: round(v / mount[k.replace("_one_READ", "")], 2)
                   for k, v in figures[gw].items()} for gw in ("nfs", "smb")}
    reads = results["seq_read"]["MBps"]
    bases = {"mount": "mount", "nfs": "mount", "nfs_one_read": "mount", "nfs_sync": "mount",
             "smb": "mount", "plain_local": "plain_local", "plain_nfs": "plain_local",
             "ram_nfs": "mount"}
    paired = {name: paired_ratio(reads, name, base) for name, base in bases.items()}
    paired["nfs_over_plain_nfs"] = paired_ratio(reads, "nfs", "plain_nfs")
    results.update(ratios=ratios, seq_read_paired_ratios=paired, args=vars(args),
                   date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateways.json").write_text(json.dumps(results, indent=2))
    load = results["seq_read"]
    labels = {"mount": "Meridian mount (one reader, kernel read-ahead)",
              "nfs": f"Meridian NFS, {args.nfs_in_flight} READs of 1 MiB in flight",
              "nfs_one_read": "Meridian NFS, one READ at a time (no read-ahead)",
              "nfs_sync": "Meridian NFS, before: synchronous nfs_pread, copied in Python",
              "smb": "Meridian SMB (smbclient get)",
              "plain_local": "plain folder, local read",
              "plain_nfs": f"plain folder over ganesha, {args.nfs_in_flight} READs in flight",
              "ram_nfs": f"folder in memory over ganesha, {args.nfs_in_flight} READs in flight "
                         f"(ratio: over the mount's read; the NFS ceiling here)"}
    lines = ["# Gateways against the mount (bench/gateways.py)", "",
             f"{results['date']}; {args.size_mib} MiB sequential (NFS write: "
             f"{results['nfs_seq_write_mib']} MiB, libnfs writes 1 KiB per round trip), "
             f"{args.files} x {args.file_kib} KiB, {args.creates} creates/stats; "
             f"{results['machine'].get('nproc')} cores.", "",
             f"Sequential reads of {args.size_mib} MiB: median (min–max) MB/s of {args.rounds} "
             f"rounds, every reader once per round, order rotating, page cache dropped before "
             f"each; load average {load['load_before'][0]:.1f} before, "
             f"{load['load_after'][0]:.1f} after. Ratio: median over rounds of the read's "
             f"speed over the local read's (the mount's, or the plain folder's) in the same "
             f"round.", "",
             "CPU: seconds per GiB read, medians; the client is this script's process (or "
             "smbclient), the servers are the site and the gateway (for the plain folder: its "
             "ganesha); the mount's and the plain folder's local reads spend theirs in the "
             "reading process (kernel time) and the site.", "",
             "| sequential read | MB/s | ratio | client CPU s/GiB | server CPU s/GiB |",
             "|---|---|---|---|---|"]

    def servers_text(name: str) -> str:
        each = {server: statistics.median(values) for server, values in server_cpu[name].items()}
        return (f"{sum(each.values()):.2f} (" + ", ".join(
            f"{server} {value:.2f}" for server, value in each.items()) + ")") if each else ""

    client_cpu = results["seq_read"]["client_cpu_s_per_GiB"]
    server_cpu = results["seq_read"]["server_cpu_s_per_GiB"]
    for name in READERS:
        lines.append(f"| {labels[name]} | {spread_text(reads[name])} | {paired[name]} | "
                     f"{statistics.median(client_cpu[name]):.2f} | {servers_text(name)} |")
    lines += ["", f"Meridian's NFS over the plain folder's NFS, same rounds: "
              f"{paired['nfs_over_plain_nfs']}.", "",
              "All workloads (sequential reads: the medians above):", "",
              "| workload | mount | NFS | NFS/mount | SMB | SMB/mount |",
              "|---|---|---|---|---|---|"]
    for key in mount:
        lines.append(f"| {key} | {mount[key]:.0f} | {figures['nfs'][key]:.0f} | "
                     f"{ratios['nfs'][key]} | {figures['smb'][key]:.0f} | {ratios['smb'][key]} |")
    lines.append(f"| seq_read_one_READ_MBps | | {figures['nfs']['seq_read_one_READ_MBps']:.0f} | "
                 f"{ratios['nfs']['seq_read_one_READ_MBps']} | | |")
    text = "\n".join(lines) + "\n"
    (RESULTS / "gateways.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
