"""`make demo`: a one-site round trip a newcomer can watch.

Creates a site with a local-directory bucket under ./demo-data, mounts it, writes and reads a
file through the mount, waits until its content is in the bucket, shows where it is, and
stops the site (unmounting). The Flame issue will replace this with the two-site workflow.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "demo-data"
MERIDIAN = [sys.executable, "-m", "meridian.cli.main"]


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(*args: str) -> str:
    print("$ meridian " + " ".join(args), flush=True)
    out = subprocess.run([*MERIDIAN, *args], check=True, capture_output=True, text=True).stdout
    print(out, end="", flush=True)
    return out


def main() -> int:
    mount = ROOT / "mnt"
    subprocess.run(["fusermount3", "-u", "-z", str(mount)], capture_output=True, check=False)
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    step("1. create a site 'solo' whose bucket is a local directory")
    run("init", "--site", "solo", "--data", str(ROOT / "site"), "--bucket",
        f"file://{ROOT / 'bucket'}", "--capacity", "1GiB")
    step("2. run it, mounted at demo-data/mnt")
    log = open(ROOT / "site.log", "wb")
    site = subprocess.Popen([*MERIDIAN, "site", "run", "--config", str(ROOT / "site" / "meridian.toml"),
                             "--mount", str(mount)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not (mount / ".meridian" / "site.json").exists():
            if site.poll() is not None or time.monotonic() > deadline:
                print((ROOT / "site.log").read_text())
                return 1
            time.sleep(0.1)
        print(f"mounted: {mount}")
        step("3. write a 5 MB file through the mount and read it back")
        data = os.urandom(5_000_000)
        target = mount / "project" / "shot010" / "plate.0001.exr"
        target.parent.mkdir(parents=True)
        target.write_bytes(data)
        same = target.read_bytes() == data
        print(f"wrote {target.relative_to(ROOT)}: {len(data)} bytes, "
              f"sha256 {hashlib.sha256(data).hexdigest()[:16]}…; read back identical: {same}")
        step("4. the mover uploads it to the bucket in the background")
        for _ in range(100):
            if "both" in run_quiet("ls", "--placement", "--config", str(ROOT / "site" / "meridian.toml"), "./"):
                break
            time.sleep(0.1)
        run("ls", "--placement", "--config", str(ROOT / "site" / "meridian.toml"), "./")
        print("bucket objects:")
        for path in sorted((ROOT / "bucket").rglob("*")):
            if path.is_file():
                print(f"  {path.relative_to(ROOT / 'bucket')}  ({path.stat().st_size} bytes)")
        step("5. status and fsck")
        run("status", "--config", str(ROOT / "site" / "meridian.toml"))
        run("fsck", "--config", str(ROOT / "site" / "meridian.toml"))
        return 0 if same else 1
    finally:
        step("6. stop the site (SIGINT unmounts)")
        site.send_signal(signal.SIGINT)
        site.wait(timeout=30)
        log.close()
        mounted = any(str(mount) in line for line in open("/proc/mounts"))
        print(f"site exited {site.returncode}; still mounted: {mounted}")


def run_quiet(*args: str) -> str:
    return subprocess.run([*MERIDIAN, *args], capture_output=True, text=True).stdout


if __name__ == "__main__":
    sys.exit(main())
