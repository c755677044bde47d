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

from meridian.cli.up_cmd import free_port

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


def init_linked(root: Path, names: list[str], bucket: str, *extra: str,
                via: dict[str, str] | None = None, plain: bool = False) -> dict[str, RunningSite]:
    """Sites that pull from each other: each gets an API on a known free port and every other
    site as a peer, certificates from the first site's CA and a credential issued by each
    other site (``link_local``, what ``meridian up`` does). ``via`` maps a site name to the
    URL its peers should call instead of its API (a fault proxy in front of it, which speaks
    plain HTTP: give ``plain=True``); ``api_url(site)`` gives the real one."""
    import tomllib

    import tomli_w

    from meridian.site import load_config
    from meridian.site.trust import link_local

    sites = {}
    for name in names:
        sites[name] = init_site(root, name, bucket, "--api-listen", f"127.0.0.1:{free_port()}",
                                *(["--plain-http"] if plain else []), *extra)
    docs = {name: tomllib.loads(site.config.read_text()) for name, site in sites.items()}
    for name, site in sites.items():
        doc = docs[name]
        doc["peers"] = [{"name": other, "url": (via or {}).get(other) or api_url_of(docs[other])}
                        for other in names if other != name]
        site.config.write_text(tomli_w.dumps(doc))
    link_local([load_config(site.config) for site in sites.values()])
    return sites


def api_url_of(doc: dict[str, object]) -> str:
    api: dict[str, object] = doc["api"]  # type: ignore[assignment]
    scheme = "http" if api.get("plain_http") else "https"
    return f"{scheme}://{api['listen']}/api/v1"


def api_url(site: RunningSite) -> str:
    import tomllib
    return api_url_of(tomllib.loads(site.config.read_text()))


def admin_headers(site: RunningSite) -> dict[str, str]:
    """The site's admin credential, as a request header."""
    credential = (site.data / "secrets" / "admin.token").read_text().strip()
    return {"Authorization": f"Bearer {credential}"}


def tls_verify(site: RunningSite) -> object:
    """What httpx should verify the site's certificate with: its namespace CA (or nothing for
    a plain-HTTP site)."""
    import ssl

    if api_url(site).startswith("http://"):
        return False
    return ssl.create_default_context(cafile=str(site.data / "tls" / "ca.crt"))


def wait_for(check: object, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``check()`` until it is true (generous timeouts: tests never assert latencies)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()  # type: ignore[operator]
            if last:
                return
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r:.2000})")


def snapshot(mount: Path) -> dict[str, object]:
    """The tree under a mount as a user sees it: path -> bytes, 'dir', or 'link:target', and
    the permission bits. ``/.meridian`` is left out."""
    tree: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(mount):
        rel = os.path.relpath(dirpath, mount)
        if rel == ".meridian" or rel.startswith(".meridian/"):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            key = os.path.relpath(path, mount)
            if key == ".meridian":
                continue
            st = os.lstat(path)
            if os.path.islink(path):
                tree[key] = f"link:{os.readlink(path)}"
            elif os.path.isdir(path):
                tree[key] = ("dir", oct(st.st_mode & 0o7777))
            else:
                with open(path, "rb") as handle:
                    tree[key] = (handle.read(), oct(st.st_mode & 0o7777))
    return tree
