"""`make demo`: the multi-site Flame workflow of docs/flame.md on this one machine.

Two sites, east (the timeline) and west (the artists), from `meridian up` with embedded
defaults (a local-directory bucket; `DEMO_BUCKET=s3` puts the bucket on moto's S3 server). Each
site's steps run through `meridian exec --site …`, so the absolute paths written into clips and
setups (under /mnt/meridian) are valid at both sites:

1. east holds the deployment guide's Objective, verbatim, and publishes a small timeline
   (demo/sq010.edl, four shots; plate frames generated as real EXR files) into
   hs-mount/project;
2. west sees the folders, Batch setups and Open Clips, and reads sh010's plate frames (fetched
   on first access, with sequence read-ahead); a workstation at west reads them again over
   west's NFS export (`nfs-cat`, a userspace NFSv4 client), byte for byte the same;
3. west "renders" v001 and adds the version to sh010's clip (what a farm's hook does);
4. east's `meridian flame watch` reports the new version and its delay; the Objective has
   already pulled the new clip to east's volume;
5. east caches all of v001's frames with `meridian flame cache`.

It prints the timings, exits 0, and leaves no mount and no process behind. It fails only if a
step never happens within a generous timeout, never because a delay was long.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "demo-data"
STUDIO = DATA / "studio"
COMMON = "/mnt/meridian"
MERIDIAN = [sys.executable, "-m", "meridian.cli.main"]
RULE = """IF FNMATCH("./hs-mount/project/*/flame/*.clip",PATH)
THEN {SLO('place-on-local-volumes')}"""
PROJECT = f"{COMMON}/hs-mount/project"
HANDLES = 4
TIMEOUT = 120.0
timings: list[tuple[str, float]] = []


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(*args: str, site: str | None = None, show: bool = True) -> str:
    """A meridian command, at a site (through `meridian exec`) or on the host."""
    cmd = [*MERIDIAN, *args]
    if site is not None:
        cmd = [*MERIDIAN, "exec", "--site", site, "--root", str(STUDIO), "--", *cmd]
    if show:
        where = f"[{site}] " if site else ""
        print(f"{where}$ meridian {' '.join(args)}", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if show and done.stdout:
        print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise RuntimeError(f"meridian {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def at(site: str, *cmd: str) -> str:
    """Any command at a site (its mount at the common path)."""
    done = subprocess.run([*MERIDIAN, "exec", "--site", site, "--root", str(STUDIO), "--", *cmd],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} at {site} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def wait(what: str, check: object, timeout: float = TIMEOUT) -> float:
    started = time.monotonic()
    while True:
        try:
            if check():  # type: ignore[operator]
                return time.monotonic() - started
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


def timed(label: str, seconds: float) -> None:
    timings.append((label, seconds))
    print(f"   → {label}: {seconds:.2f} s", flush=True)


def make_media(folder: Path) -> int:
    """Source frames for the EDL's four events (real EXR files when the OpenEXR package is
    there, else small placeholder files with .exr names), numbered by source timecode."""
    events = [("A001C003", 86640, 12), ("A001C007", 89280, 10), ("B002C001", 172920, 8),
              ("B002C004", 187200, 6)]  # reel, first source frame at 24 fps, frames in the cut
    folder.mkdir(parents=True)
    count = 0
    try:
        import numpy
        import OpenEXR

        def write(path: Path, value: float) -> None:
            noise = numpy.random.default_rng(int(value * 100)).random((360, 640, 3))
            pixels = (noise * 0.1 + value).astype("float16")  # grain: frames of ~1.4 MB
            with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"RGB": pixels}) as image:
                image.write(str(path))
    except ImportError:
        def write(path: Path, value: float) -> None:
            path.write_bytes(os.urandom(400_000))
    for reel, first, frames in events:
        for frame in range(first - HANDLES, first + frames + HANDLES):
            write(folder / f"{reel}.{frame:06d}.exr", (frame % 100) / 100)
            count += 1
    return count


def read_nfs(url: str, path: Path, expected: bytes, patience: float = 10.0) -> None:
    """Read ``url`` with ``nfs-cat`` (a userspace NFSv4 client) and check it is ``expected``
    byte for byte. A client that fails (the export still starting on a loaded machine, a
    time-out) is retried for ``patience`` seconds; bytes that arrive whole and differ are an
    error at once."""
    deadline = time.monotonic() + patience
    attempt = 0
    while True:
        attempt += 1
        done = subprocess.run(["nfs-cat", url], capture_output=True, check=False)
        if done.returncode == 0:
            if done.stdout != expected:
                raise RuntimeError(f"{path} read over NFS differs from the mount's bytes "
                                   f"({len(done.stdout)} bytes, expected {len(expected)})")
            return
        why = done.stderr.decode(errors="replace").strip()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} could not be read over NFS ({attempt} attempts in "
                               f"{patience:.0f} s): {why}")
        print(f"   nfs-cat {path}: exit {done.returncode} ({why}); trying again")
        time.sleep(min(2.0, 0.25 * attempt))


def main() -> int:
    # A studio's shared tree is readable by every artist: the published folders and plates
    # are made with umask 022 whatever the caller's is (with 077 the workstation reading
    # over NFS, squashed to nobody, could not even look the plates up).
    os.umask(0o022)
    s3 = os.environ.get("DEMO_BUCKET", "file") == "s3"
    for mount in STUDIO.glob("*/mnt"):
        subprocess.run(["fusermount3", "-u", "-z", str(mount)], capture_output=True, check=False)
    shutil.rmtree(DATA, ignore_errors=True)
    DATA.mkdir(parents=True)
    moto = None
    extra: list[str] = []
    if s3:
        from moto.server import ThreadedMotoServer
        import boto3

        for key, value in (("AWS_ACCESS_KEY_ID", "demo"), ("AWS_SECRET_ACCESS_KEY", "demo"),
                           ("AWS_DEFAULT_REGION", "us-east-1")):
            os.environ.setdefault(key, value)
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="studio")
        extra = ["--bucket", "s3://studio", "--endpoint-url", endpoint]

    step("0. two sites on this machine: east holds the timeline, west the artists")
    log = open(DATA / "up.log", "w")
    up = subprocess.Popen([*MERIDIAN, "up", "--sites", "east,west", "--root", str(STUDIO),
                           "--exports", "nfs", *extra], stdout=log, stderr=subprocess.STDOUT)
    watch = None
    try:
        took = wait("meridian up ready", lambda: (STUDIO / "up.json").exists(), 90)
        rows = {row["site"]: row for row in json.loads((STUDIO / "up.json").read_text())["sites"]}
        for row in rows.values():
            print(f"   {row['site']:<5} mount {row['mount']}  api {row['api']}  {row['nfs']}")
        timed("both sites mounted and linked", took)

        step("1. east: the deployment guide's Objective, verbatim, then Shot Publish")
        east_config = str(STUDIO / "east" / "meridian.toml")
        run("objective", "add", "--config", east_config, RULE)
        frames = make_media(DATA / "media")
        print(f"   {frames} source frames generated in {DATA / 'media'}")
        at("east", "mkdir", "-p", PROJECT)
        started = time.monotonic()
        run("flame", "publish", str(REPO / "demo" / "sq010.edl"), "--root", PROJECT, "--media",
            str(DATA / "media"), "--handles", str(HANDLES), site="east")
        timed("publish at east (4 shots)", time.monotonic() - started)

        step("2. west sees the tree, the Batch setups and the Open Clips, and reads the plates")
        west = STUDIO / "west" / "mnt" / "hs-mount" / "project" / "sq010"
        clip = "sq010/sh010/flame/sh010.clip"
        took = wait("west sees sh010's clip and setup",
                    lambda: (west / "sh010" / "flame" / "sh010.clip").exists()
                    and any((west / "sh010" / "batch").glob("*")))
        timed("tree, setups and clips visible at west", took)
        print(at("west", "ls", f"{PROJECT}/sq010", f"{PROJECT}/sq010/sh010/plates"), end="")
        run("flame", "versions", f"{PROJECT}/{clip}", site="west")
        started = time.monotonic()
        read = at("west", sys.executable, "-c",
                  "import glob,sys; n=0\n"
                  f"for f in sorted(glob.glob('{PROJECT}/sq010/sh010/plates/*.exr')):\n"
                  "    n += len(open(f,'rb').read())\n"
                  "print(n)")
        timed(f"west reads sh010's plate frames, first access ({int(read) / 1e6:.1f} MB)",
              time.monotonic() - started)
        plates = sorted((west / "sh010" / "plates").glob("*.exr"))
        host_port, _, export = rows["west"]["nfs"].removeprefix("nfs://").partition("/")
        host, _, port = host_port.partition(":")
        started = time.monotonic()
        for plate in plates:
            path = plate.relative_to(STUDIO / "west" / "mnt")
            url = f"nfs://{host}/{export}/{path}?version=4&nfsport={port}"
            read_nfs(url, path, plate.read_bytes())
        print(f"   nfs-cat {rows['west']['nfs']}/{plates[0].relative_to(STUDIO / 'west' / 'mnt')}"
              f" ... {len(plates)} frames, the same bytes as the mount's")
        timed(f"a workstation at west reads sh010's {len(plates)} plates over NFS",
              time.monotonic() - started)

        step("3. east watches the clips; west renders v001 and adds the version")
        watch = subprocess.Popen([*MERIDIAN, "exec", "--site", "east", "--root", str(STUDIO),
                                  "--", *MERIDIAN, "flame", "watch", PROJECT, "--count", "1",
                                  "--timeout", str(TIMEOUT)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.5)  # the watch is following the event stream
        renders = f"{PROJECT}/sq010/sh010/renders/v001"
        at("west", sys.executable, "-c",  # the "render": each plate, graded, as a new frame
           "import glob,os\n"
           f"os.makedirs('{renders}', exist_ok=True)\n"
           f"for f in sorted(glob.glob('{PROJECT}/sq010/sh010/plates/*.exr')):\n"
           "    frame = f.rsplit('.', 2)[1]\n"
           "    data = bytearray(open(f, 'rb').read())\n"
           "    data[-4096:] = bytes(b ^ 0x5A for b in data[-4096:])\n"
           f"    open('{renders}/sh010_v001.' + frame + '.exr', 'wb').write(data)\n")
        first = sorted(p.name for p in (west / "sh010" / "renders" / "v001").iterdir())
        numbers = [name.split(".")[1] for name in first]
        pattern = f"{renders}/sh010_v001.[{numbers[0]}-{numbers[-1]}].exr"
        added = time.monotonic()
        run("flame", "version-add", f"{PROJECT}/{clip}", "--frames", pattern, site="west")

        step("4. east: the new version appears (the Objective pulled the clip to east)")
        out, _ = watch.communicate(timeout=TIMEOUT + 30)
        print(out, end="")
        if "new version v001" not in out:
            raise RuntimeError("east's watch did not report v001")
        timed("v001 added at west → reported at east", time.monotonic() - added)
        run("objective", "explain", "--config", east_config, f"./hs-mount/project/{clip}")

        step("5. east caches all of v001's frames")
        started = time.monotonic()
        run("flame", "cache", f"{PROJECT}/{clip}", "--version", "v001", site="east")
        timed("v001 cached at east", time.monotonic() - started)
        run("status", "--config", east_config)

        step("timings")
        for label, seconds in timings:
            print(f"   {seconds:7.2f} s  {label}")
        return 0
    finally:
        if watch is not None and watch.poll() is None:
            watch.kill()
        step("stop: Ctrl-C to meridian up (every site unmounts)")
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()
        if moto is not None:
            moto.stop()
        left = [line.split()[1] for line in open("/proc/mounts") if str(STUDIO) in line]
        print(f"   meridian up exited {up.returncode}; mounts left: {left or 'none'}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        sys.exit(1)
