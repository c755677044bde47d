"""The contenders of the bench/compare_*.py scripts, all over one moto S3 server.

* ``MotoServer``: ``python -m moto.server -H 127.0.0.1 -p PORT`` as a subprocess (its CPU
  does not share the bench's GIL), fresh buckets on demand.
* ``meridian``: two sites from ``meridian up --sites east,west --bucket s3://B`` (near =
  east's mount, far = west's); durable = east's upload queue empty (the site API's
  ``meridian_uploads_queued`` metric, the figure ``meridian status --json`` shows as
  ``uploads.queued``).
* ``rclone``: ``rclone mount :s3:B --vfs-cache-mode full`` (rclone's defaults otherwise:
  ``--vfs-write-back 5s``, ``--dir-cache-time 5m``) plus ``--s3-no-head`` (bench/ANCHORS.md: moto
  answers the HEAD after a multipart upload with 400 and rclone retries forever); a second
  mount of the same bucket with its own cache dir is the far site. Durable = every object in
  the bucket with its size (polled with boto3).
* ``s3fs``: ``s3fs B MNT -o url=...,use_path_request_style`` (defaults otherwise: no data
  cache), a second mount as the far site. Durable = polled in the bucket like rclone (s3fs
  uploads on close, so the poll returns at once).
* ``local``: a plain directory on the same disk; far = the same directory; durable = fsync of
  every file written.

``open_contenders`` starts the ones asked for on an ExitStack: one that cannot start is kept as
the string "could not start: <reason>" so the tables show it. Every mount is unmounted and every
process stopped when the stack closes, on failure too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import ssl
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import tomli_w

from harness.machine import default_root, drop_caches, is_mounted, machine_info
from harness.site import MERIDIAN, Up
from harness.units import log

ALL = ("local", "meridian", "rclone", "s3fs")
CREDS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
         "AWS_DEFAULT_REGION": "us-east-1"}
os.environ.update(CREDS)  # dummy values for moto, for boto3 and every child process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.02,
             alive: Callable[[], bool] | None = None) -> float:
    """Seconds until ``check()``; raises after ``timeout`` or as soon as ``alive()`` is false."""
    started = time.monotonic()
    while not check():
        if alive is not None and not alive():
            raise RuntimeError(f"{what}: the contender's process is gone")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)
    return time.monotonic() - started


def version_of(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not installed"


class MotoServer:
    def __init__(self, scratch: Path) -> None:
        import boto3
        from botocore.config import Config

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = scratch / "moto.log"
        with open(self.log_path, "wb") as logf:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.client = boto3.client("s3", endpoint_url=self.endpoint,
                                   config=Config(max_pool_connections=32))
        self._n = 0

        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto exited: {self.log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(up, 30, "moto server", every=0.1)

    def bucket(self, prefix: str) -> str:
        self._n += 1
        name = f"{prefix}-{self._n}-{os.getpid()}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        found: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                            Prefix=prefix):
            found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return found

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM,
                 timeout: float = 30) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def unmount(path: Path) -> None:
    for cmd in (["fusermount3", "-u", str(path)], ["fusermount3", "-u", "-z", str(path)],
                ["umount", "-l", str(path)]):
        if not is_mounted(path):
            return
        subprocess.run(cmd, capture_output=True, check=False, timeout=60)
        time.sleep(0.2)


def mounts_under(scratch: Path) -> list[Path]:
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    return [Path(p) for p in points if p.startswith(str(scratch) + "/")]


def pids_under(scratch: Path) -> list[int]:
    """Processes whose command line names the scratch folder (the mounts' daemons)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (str(scratch) + "/").encode() in (entry / "cmdline").read_bytes() \
                        and int(entry.name) != os.getpid():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@dataclass
class Contender:
    name: str
    near: Path           # where a figure writes
    far: Path            # the other site's view of the same data
    bucket: str | None
    config: str          # how it was started, for the tables
    durable_fn: Callable[[Sequence[Path]], None]
    settle_fn: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)
    root: Path | None = None  # everything of this contender lives under it

    def kill(self) -> None:
        """From a watchdog: SIGKILL its processes and detach its mounts, so that I/O blocked on
        a hung mount fails instead of hanging the benchmark."""
        if self.root is None:
            return
        for pid in pids_under(self.root):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for point in mounts_under(self.root):
            subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)

    def durable(self, paths: Sequence[Path]) -> None:
        """Returns when the bytes of ``paths`` (written at ``near``) are in the bucket."""
        self.durable_fn(paths)

    def settle(self) -> None:
        """Waits until background work (uploads, deletes) is over; untimed, between steps."""
        self.settle_fn()


def _poll_bucket(moto: MotoServer, bucket: str, near: Path, alive: Callable[[], bool],
                 timeout: float = 900) -> Callable[[Sequence[Path]], None]:
    def durable(paths: Sequence[Path]) -> None:
        want = {str(p.relative_to(near)): os.stat(p).st_size for p in paths}
        prefix = os.path.commonprefix(list(want))
        prefix = prefix[:prefix.rfind("/") + 1] if "/" in prefix else ""

        def there() -> bool:
            have = moto.keys(bucket, prefix)
            return all(have.get(k) == size for k, size in want.items())
        # a listing of many keys costs moto CPU that the uploads need: poll those less often
        wait_for(there, timeout, f"{len(want)} objects in bucket {bucket}",
                 every=0.05 if len(want) <= 10 else 0.2, alive=alive)
    return durable


# -- the contenders -------------------------------------------------------------------------
@contextlib.contextmanager
def local(scratch: Path) -> Iterator[Contender]:
    d = scratch / "local"
    d.mkdir()

    def durable(paths: Sequence[Path]) -> None:
        for p in [*paths, *{p.parent for p in paths}]:  # the files, then their folders
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    try:
        yield Contender("local", d, d, None, "a plain directory on the same disk", durable)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def meridian(moto: MotoServer, scratch: Path, west: dict[str, Any] | None = None,
             name: str = "meridian") -> Iterator[Contender]:
    """``west``: settings merged into west's meridian.toml (e.g. {"mover":
    {"sequence_readahead": 0}}); the sites are created once, patched, then started."""
    bucket = moto.bucket("meridian")
    root = scratch / name
    extra = ["--bucket", f"s3://{bucket}", "--endpoint-url", moto.endpoint]
    if west:
        Up(root, *extra).stop()
        path = root / "west" / "meridian.toml"
        doc = tomllib.loads(path.read_text())
        for section, values in west.items():
            doc.setdefault(section, {}).update(values)
        path.write_text(tomli_w.dumps(doc))
    up = Up(root, *extra)
    try:
        api = json.loads((root / "up.json").read_text())
        rows = api.get("sites", api) if isinstance(api, dict) else api
        url = next(r["api"] for r in rows if r["site"] == "east")
        token = (root / "east" / "secrets" / "admin.token").read_text().strip()
        tls = ssl.create_default_context(cafile=str(root / "east" / "tls" / "ca.crt"))

        def queued() -> int:
            req = urllib.request.Request(url + "/metrics",
                                         headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=30, context=tls) as resp:
                text = resp.read().decode()
            found = re.search(r"^meridian_uploads_queued\{[^}]*\} (\S+)", text, re.M)
            if found is None:
                raise RuntimeError(f"no meridian_uploads_queued in {url}/metrics")
            return int(float(found.group(1)))

        def durable(paths: Sequence[Path]) -> None:
            wait_for(lambda: queued() == 0, 900, "meridian east upload queue empty", every=0.05,
                     alive=lambda: up.process.poll() is None)

        queued()  # fails now, at start, if the metric cannot be read
        config = ("meridian up --sites east,west --bucket s3://B --endpoint-url URL"
                  + (f"; west: {west}" if west else ""))
        yield Contender(name, root / "east" / "mnt", root / "west" / "mnt", bucket, config,
                        durable, lambda: durable([]), root=root)
    finally:
        up.stop()
        for site in ("east", "west"):
            unmount(root / site / "mnt")


def _rclone_mount(moto: MotoServer, bucket: str, mnt: Path, cache: Path, logp: Path,
                  extra: Sequence[str]) -> tuple[subprocess.Popen[bytes], int]:
    rc = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # rclone 1.60 refuses it
    cmd = ["rclone", "mount", f":s3:{bucket}", str(mnt), "--s3-provider", "Other",
           "--s3-endpoint", moto.endpoint, "--s3-access-key-id", CREDS["AWS_ACCESS_KEY_ID"],
           "--s3-secret-access-key", CREDS["AWS_SECRET_ACCESS_KEY"], "--s3-region", "us-east-1",
           "--s3-no-head", "--vfs-cache-mode", "full", "--cache-dir", str(cache),
           "--rc", "--rc-addr", f"127.0.0.1:{rc}", "--rc-no-auth", "--log-file", str(logp),
           *extra]
    mnt.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        wait_for(lambda: is_mounted(mnt) or process.poll() is not None, 30, f"rclone mount {mnt}")
        if process.poll() is not None:
            raise RuntimeError(f"rclone exited {process.returncode}: "
                               f"{logp.read_text(errors='replace')[-1500:]}")
    except BaseException:
        stop_process(process)
        unmount(mnt)
        raise
    return process, rc


def rclone_rc(port: int, method: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/{method}", data=b"{}",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    return answer


@contextlib.contextmanager
def rclone(moto: MotoServer, scratch: Path, near_args: Sequence[str] = (),
           far_args: Sequence[str] = (), name: str = "rclone") -> Iterator[Contender]:
    bucket = moto.bucket("rclone")
    root = scratch / name
    mounts: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        near_p, near_rc = _rclone_mount(moto, bucket, root / "near", root / "cache-near",
                                        root / "near.log", near_args)
        mounts.append((near_p, root / "near"))
        far_p, _ = _rclone_mount(moto, bucket, root / "far", root / "cache-far",
                                 root / "far.log", far_args)
        mounts.append((far_p, root / "far"))

        def alive() -> bool:
            return all(p.poll() is None for p, _ in mounts)

        def settle() -> None:  # rclone's write-back queue, then a second look (bench/ANCHORS.md)
            def idle() -> bool:
                cache = rclone_rc(near_rc, "vfs/stats").get("diskCache", {})
                return int(cache.get("uploadsInProgress", 0) + cache.get("uploadsQueued", 0)) == 0
            for _ in range(2):
                wait_for(idle, 900, "rclone uploads", every=0.1, alive=alive)
                time.sleep(0.5)

        config = ("rclone mount :s3:B --vfs-cache-mode full --s3-no-head"
                  + (f" {' '.join(near_args)}" if near_args else "")
                  + (f"; far mount: {' '.join(far_args)}" if far_args else ""))
        yield Contender(name, root / "near", root / "far", bucket, config,
                        _poll_bucket(moto, bucket, root / "near", alive), settle, root=root)
    finally:
        for process, mnt in mounts:
            unmount(mnt)
            stop_process(process)
            unmount(mnt)


@contextlib.contextmanager
def s3fs(moto: MotoServer, scratch: Path, name: str = "s3fs") -> Iterator[Contender]:
    bucket = moto.bucket("s3fs")
    root = scratch / name
    root.mkdir()
    passwd = root / "passwd"
    passwd.write_text(f"{CREDS['AWS_ACCESS_KEY_ID']}:{CREDS['AWS_SECRET_ACCESS_KEY']}\n")
    passwd.chmod(0o600)
    mounts: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for side in ("near", "far"):
            mnt = root / side
            mnt.mkdir()
            logf = open(root / f"{side}.log", "wb")
            process = subprocess.Popen(
                ["s3fs", bucket, str(mnt), "-f", "-o",
                 f"url={moto.endpoint},use_path_request_style,passwd_file={passwd}"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True)
            logf.close()
            mounts.append((process, mnt))
            wait_for(lambda: is_mounted(mnt) or process.poll() is not None, 30,
                     f"s3fs mount {mnt}")
            if process.poll() is not None:
                raise RuntimeError(f"s3fs exited {process.returncode}: "
                                   f"{(root / f'{side}.log').read_text(errors='replace')[-1500:]}")
        os.listdir(root / "near")  # a first request: fails here if s3fs cannot reach the bucket
        yield Contender(name, root / "near", root / "far", bucket,
                        "s3fs B MNT -o url=URL,use_path_request_style (defaults otherwise)",
                        _poll_bucket(moto, bucket, root / "near",
                                     lambda: all(p.poll() is None for p, _ in mounts)),
                        root=root)
    finally:
        for process, mnt in mounts:
            unmount(mnt)
            stop_process(process)
            unmount(mnt)


def start(stack: contextlib.ExitStack, kind: str, moto: MotoServer, scratch: Path,
          **options: Any) -> Contender | str:
    """Enter one contender on ``stack``; a failure comes back as 'could not start: ...'."""
    factories = {"local": lambda: local(scratch),
                 "meridian": lambda: meridian(moto, scratch, **options),
                 "rclone": lambda: rclone(moto, scratch, **options),
                 "s3fs": lambda: s3fs(moto, scratch, **options)}
    if kind not in factories:
        return f"could not start: unknown contender {kind!r} (known: {', '.join(ALL)})"
    started = time.monotonic()
    try:
        contender = stack.enter_context(factories[kind]())
    except Exception as exc:  # noqa: BLE001 - reported in the table
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        log(f"{options.get('name', kind)}: could not start: {reason}")
        return f"could not start: {reason}"
    log(f"{contender.name}: mounted in {time.monotonic() - started:.1f} s ({contender.config})")
    return contender


def open_contenders(stack: contextlib.ExitStack, kinds: Sequence[str], moto: MotoServer,
                    scratch: Path) -> dict[str, Contender | str]:
    return {kind: start(stack, kind, moto, scratch) for kind in kinds}


def versions() -> dict[str, str]:
    import moto

    return {"moto": moto.__version__, "rclone": version_of(["rclone", "version"]),
            "s3fs": version_of(["s3fs", "--version"]), "fuse": version_of(["fusermount3", "-V"])}


@contextlib.contextmanager
def bench_scratch(prefix: str) -> Iterator[tuple[Path, MotoServer]]:
    """A scratch folder on the repository's disk and a moto server; both gone afterwards."""
    import tempfile

    def terminate(signum: int, frame: Any) -> None:  # SIGTERM too unmounts and stops all
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)
    scratch = Path(os.path.realpath(tempfile.mkdtemp(prefix=prefix, dir=default_root())))
    moto = None
    try:
        moto = MotoServer(scratch)
        yield scratch, moto
    finally:
        if moto is not None:
            moto.stop()
        for point in mounts_under(scratch):  # never rmtree through a live mount
            unmount(point)
        if mounts_under(scratch):
            log(f"left {scratch} in place: still mounted {mounts_under(scratch)}")
            return
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["ALL", "Contender", "MotoServer", "bench_scratch", "drop_caches", "machine_info",
           "open_contenders", "pids_under", "start", "versions", "wait_for", "MERIDIAN"]
