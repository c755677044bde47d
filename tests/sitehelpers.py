"""Run real sites for integration tests: `meridian init` + `meridian site run` as subprocesses.

A site runs in its own process (as users run it; pyfuse3 also allows one mount per process).
Teardown always unmounts and leaves no process behind, even when a test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

MERIDIAN = [sys.executable, "-m", "meridian.cli.main"]


def meridian(*args: str, check: bool = True, timeout: float = 60,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI; with ``check``, fail with its output if it exits non-zero."""
    result = subprocess.run([*MERIDIAN, *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"meridian {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def force_unmount(mount: Path) -> None:
    subprocess.run(["fusermount3", "-u", "-z", str(mount)], capture_output=True, check=False)


@dataclass
class RunningSite:
    name: str
    data: Path
    mount: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.data / "meridian.toml"

    def start(self, timeout: float = 20.0) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*MERIDIAN, "site", "run", "--config", str(self.config), "--mount", str(self.mount)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.extra_env})
        log.close()
        deadline = time.monotonic() + timeout
        marker = self.mount / ".meridian" / "site.json"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"site {self.name} exited {self.process.returncode}:\n"
                                     f"{self.log()}")
            try:
                if json.loads(marker.read_text())["site"] == self.name:
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"site {self.name} did not mount within {timeout}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int | None:
        """Stop the site (SIGINT by default); kill -9 and force-unmount if it hangs."""
        code = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                code = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        elif self.process is not None:
            code = self.process.returncode
        if sig == signal.SIGKILL or _is_mounted(self.mount):
            force_unmount(self.mount)
        self.process = None
        return code

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""


def _is_mounted(mount: Path) -> bool:
    target = os.path.realpath(mount)
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def init_site(root: Path, name: str, bucket: str, *extra: str) -> RunningSite:
    data = root / name
    meridian("init", "--site", name, "--data", str(data), "--bucket", bucket, *extra)
    return RunningSite(name, data, root / f"{name}-mnt", root / f"{name}.log")
