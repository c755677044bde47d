"""Meridian as a contender: one site run as ``meridian site run`` (with a watchdog that kills it
when a step hangs), or two sites from ``meridian up --sites east,west``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.machine import is_mounted
from harness.units import log

MERIDIAN = [sys.executable, "-m", "meridian.cli.main"]
SITE = "bench"


def meridian_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*MERIDIAN, *args], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"meridian {' '.join(args)} exited {result.returncode}:\n"
                           f"{result.stdout}\n{result.stderr}")
    return result


@dataclass
class Site:
    scratch: Path
    data: Path = field(init=False)
    mount: Path = field(init=False)
    bucket: Path = field(init=False)
    log_path: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        # resolved once, before mounting: later realpath() calls would stat the mount
        self.scratch = Path(os.path.realpath(self.scratch))
        self.data = self.scratch / "site"
        self.mount = self.scratch / "mnt"
        self.bucket = self.scratch / "bucket"
        self.log_path = self.scratch / "site.log"

    @property
    def config(self) -> Path:
        return self.data / "meridian.toml"

    def init(self) -> None:
        self.bucket.mkdir()
        self.mount.mkdir()
        meridian_cli("init", "--site", SITE, "--data", str(self.data),
                     "--bucket", f"file://{self.bucket}")

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as logf:
            # its own session: a Ctrl-C at the terminal reaches us, and we stop the site in order
            self.process = subprocess.Popen(
                [*MERIDIAN, "site", "run", "--config", str(self.config),
                 "--mount", str(self.mount)],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        marker = self.mount / ".meridian" / "site.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"meridian site run exited {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                if json.loads(marker.read_text())["site"] == SITE:
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the site did not mount within {timeout}s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise RuntimeError(f"meridian site run is not running (exit {code}):\n"
                               f"{self.log_tail()}")

    def status(self) -> dict[str, Any]:
        out = subprocess.run([*MERIDIAN, "status", "--json", "--config", str(self.config)],
                             capture_output=True, text=True, timeout=60)
        try:
            status: dict[str, Any] = json.loads(out.stdout)
            return status
        except ValueError as exc:
            raise RuntimeError(f"meridian status --json exited {out.returncode}, unreadable "
                               f"output:\n{out.stdout}\n{out.stderr}") from exc

    def wait_uploads_idle(self, timeout: float = 900.0) -> float:
        """Wait until the upload queue is empty; return how long that took (s)."""
        started = time.monotonic()
        while True:
            self.check_alive()
            uploads = self.status()["uploads"]
            if uploads["queued"] == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"upload queue not idle after {timeout:.0f}s: {uploads}")
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> str:
        what = "not started"
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    code = self.process.wait(timeout=timeout)
                    what = f"stopped by SIGINT (exit {code})"
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
                    what = f"did not stop within {timeout:.0f}s of SIGINT: killed"
            else:
                what = f"had already exited ({self.process.returncode})"
            self.process = None
        if is_mounted(self.mount):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mount)], capture_output=True,
                           check=False)
            what += "; mount force-detached (fusermount3 -u -z)"
        return what

    def kill_now(self) -> None:
        """SIGKILL the site and detach its mount (from the watchdog thread)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
        subprocess.run(["fusermount3", "-u", "-z", str(self.mount)], capture_output=True,
                       check=False)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def log_problems(self) -> list[str]:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines
                if re.search(r"\b(ERROR|CRITICAL|WARNING|Traceback)\b", line)][:50]


class Watchdog:
    """Kills the site if one step takes longer than its limit: an I/O call blocked on a hung
    FUSE daemon then fails (ENOTCONN) instead of hanging the benchmark for ever."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._what = ""
        self.fired: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self._thread.start()

    def arm(self, seconds: float, what: str) -> None:
        with self._lock:
            self._deadline = time.monotonic() + seconds
            self._what = what

    def disarm(self) -> None:
        with self._lock:
            self._deadline = None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                late = self._deadline is not None and time.monotonic() > self._deadline
                what = self._what
            if late:
                self.fired = what
                log(f"WATCHDOG: {what} did not finish in time: killing the site so blocked "
                    "I/O fails instead of hanging")
                self.site.kill_now()
                with self._lock:
                    self._deadline = None



class Up:
    """`meridian up --sites east,west` in the background; stopped with Ctrl-C (SIGINT)."""

    def __init__(self, root: Path, *extra: str) -> None:
        self.root = root
        self.log = open(root.parent / f"{root.name}-up.log", "w")
        self.process = subprocess.Popen([*MERIDIAN, "up", "--sites", "east,west", "--root",
                                         str(root), *extra], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not (root / "up.json").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"meridian up did not start; see {self.log.name}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()
