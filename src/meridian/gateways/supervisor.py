"""The site's gateways as supervised child processes of ``meridian site run``.

``Gateways.start`` (once the mount is up) writes each export's configuration under
``DATA/exports/<protocol>/``, stops a gateway a crashed earlier run left behind, starts the
servers and waits until each accepts connections. A server that dies is started again after
a pause that doubles up to ``RESTART_MAX`` (back to ``RESTART_FIRST`` once it has run for
``STEADY`` seconds). ``Gateways.stop`` (before unmounting) ends them: SIGTERM to each
server's process group, SIGKILL after ``STOP_GRACE`` seconds. Each change of state is logged
and written to ``DATA/exports/state.json``, which ``meridian status`` reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meridian.errors import BadInput
from meridian.gateways import ganesha, samba
from meridian.site.config import SiteConfig
from meridian.site.exports import ExportConfig

log = logging.getLogger(__name__)

PACKAGES = {"nfs": "apt-get install nfs-ganesha nfs-ganesha-vfs", "smb": "apt-get install samba"}
RESTART_FIRST, RESTART_MAX, STEADY = 1.0, 30.0, 60.0
STOP_GRACE = 10.0
READY_TIMEOUT = 20.0
STATE_FILE = "state.json"


@dataclass
class _Gateway:
    export: ExportConfig
    workdir: Path
    command: list[str] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    state: str = "stopped"  # starting | running | restarting | stopped
    restarts: int = 0
    since: float = 0.0
    last_exit: int | None = None
    watcher: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # accepted a connection once

    def describe(self) -> dict[str, Any]:
        return {**self.export.describe(), "state": self.state,
                "pid": self.process.pid if self.process and self.state == "running" else None,
                "since": self.since, "restarts": self.restarts, "last_exit": self.last_exit,
                "log": str(self.workdir / "server.log")}


def exports_dir(config: SiteConfig) -> Path:
    return config.data / "exports"


def read_gateway_state(config: SiteConfig) -> dict[str, Any]:
    """What the running site last wrote of its gateways ({} when none ran)."""
    try:
        state: dict[str, Any] = json.loads((exports_dir(config) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state


class Gateways:
    """The NFS and SMB servers of one site, exporting ``mount``."""

    def __init__(self, config: SiteConfig, mount: Path) -> None:
        self.config = config
        self.mount = mount
        self._gateways = [_Gateway(e, exports_dir(config) / e.protocol)
                          for e in config.exports.enabled()]
        self._stopping = False

    def __bool__(self) -> bool:
        return bool(self._gateways)

    async def start(self) -> None:
        """Configure and start every export; returns once each accepts connections (or has
        been given ``READY_TIMEOUT`` seconds: a slow one keeps starting in the background)."""
        self._stopping = False
        exports_dir(self.config).mkdir(parents=True, exist_ok=True, mode=0o700)
        (exports_dir(self.config) / STATE_FILE).unlink(missing_ok=True)  # a crashed run's
        for gateway in self._gateways:
            await asyncio.to_thread(self._prepare, gateway)
            gateway.watcher = asyncio.get_running_loop().create_task(
                self._watch(gateway), name=f"{gateway.export.protocol} gateway")
        waits = [asyncio.wait_for(g.ready.wait(), READY_TIMEOUT) for g in self._gateways]
        for result in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.TimeoutError):
                raise result

    async def stop(self) -> None:
        """Stop every server and wait for it (idempotent)."""
        self._stopping = True
        await asyncio.gather(*(self._stop_one(g) for g in self._gateways))

    def state(self) -> dict[str, Any]:
        return {g.export.protocol: g.describe() for g in self._gateways}

    # -- one gateway ------------------------------------------------------------------------
    def _prepare(self, gateway: _Gateway) -> None:
        """Write the configuration (and SMB users) and end a server left by a crash."""
        export, workdir = gateway.export, gateway.workdir
        program = "ganesha.nfsd" if export.protocol == "nfs" else "smbd"
        if shutil.which(program) is None:
            raise BadInput(f"[exports.{export.protocol}]: {program} is not installed (Debian: "
                           f"{PACKAGES[export.protocol]})")
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _end_leftover(workdir)
        conf = workdir / ("ganesha.conf" if export.protocol == "nfs" else "smb.conf")
        if export.protocol == "nfs":
            (workdir / "recovery").mkdir(exist_ok=True)
            conf.write_text(ganesha.ganesha_config(export, self.mount, workdir, self.config.name))
            gateway.command = ganesha.ganesha_command(conf, workdir)
        else:
            _warn_unreachable(self.mount)
            conf.write_text(samba.smb_config(export, self.mount, workdir, self.config.name))
            passwords = samba.ensure_passwords(export, self.config.data / "secrets")
            samba.load_users(conf, workdir, passwords)
            gateway.command = samba.smbd_command(conf)

    async def _watch(self, gateway: _Gateway) -> None:
        delay = RESTART_FIRST
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._spawn(gateway)
            except OSError as exc:
                log.error("%s export: cannot start %s: %s", gateway.export.protocol,
                          gateway.command[0], exc)
                self._set(gateway, "restarting")
            else:
                assert gateway.process is not None
                ready = asyncio.get_running_loop().create_task(self._wait_ready(gateway))
                code = await gateway.process.wait()
                ready.cancel()
                gateway.last_exit = code
                if self._stopping:
                    break
                gateway.restarts += 1
                self._set(gateway, "restarting")
                log.warning("%s export: %s exited with %s; starting it again in %.0f s "
                            "(log %s)", gateway.export.protocol, gateway.command[0], code,
                            delay, gateway.workdir / "server.log")
            if time.monotonic() - started > STEADY:
                delay = RESTART_FIRST
            await asyncio.sleep(delay)
            delay = min(RESTART_MAX, delay * 2)

    async def _spawn(self, gateway: _Gateway) -> None:
        with open(gateway.workdir / "server.log", "ab") as out:
            # The site runs with umask 077 (site/privacy.py); the servers create files for
            # workstations, whose modes are what the clients ask for: they start at 022.
            gateway.process = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", 'umask 022 && exec "$0" "$@"', *gateway.command,
                stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True, cwd=gateway.workdir)
        (gateway.workdir / "child.pid").write_text(str(gateway.process.pid))
        self._set(gateway, "starting")

    async def _wait_ready(self, gateway: _Gateway) -> None:
        export = gateway.export
        host = "127.0.0.1" if export.host in ("0.0.0.0", "::") else export.host
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not self._stopping:
            if gateway.state == "starting":
                try:
                    _, writer = await asyncio.open_connection(host, export.port)
                except OSError:
                    pass
                else:
                    writer.close()
                    self._set(gateway, "running")
                    log.info("%s export: %s serving %s (clients %s, %s)", export.protocol,
                             gateway.command[0], export.url(), ", ".join(export.clients),
                             "read-only" if export.read_only else "read-write")
                    gateway.ready.set()
                    return
            await asyncio.sleep(0.1)
        if not self._stopping:
            log.warning("%s export: not accepting connections on %s after %.0f s",
                        export.protocol, export.listen, READY_TIMEOUT)

    async def _stop_one(self, gateway: _Gateway) -> None:
        process, gateway.process = gateway.process, None  # never signalled twice
        if process is not None and process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE)
            except asyncio.TimeoutError:
                log.warning("%s export: %s did not stop in %.0f s; killing it",
                            gateway.export.protocol, gateway.command[0], STOP_GRACE)
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
            gateway.last_exit = process.returncode
        if process is not None:
            _signal_group(process.pid, signal.SIGKILL)  # helpers it forked, if any are left
        if gateway.watcher is not None:
            gateway.watcher.cancel()
            await asyncio.gather(gateway.watcher, return_exceptions=True)
            gateway.watcher = None
        (gateway.workdir / "child.pid").unlink(missing_ok=True)
        if gateway.state != "stopped":
            self._set(gateway, "stopped")
            log.info("%s export stopped", gateway.export.protocol)

    def _set(self, gateway: _Gateway, state: str) -> None:
        gateway.state = state
        gateway.since = time.time()
        path = exports_dir(self.config) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.state(), indent=2))
            tmp.replace(path)
        except OSError as exc:  # status is the worse for it; the gateways are not
            log.warning("cannot write %s: %s", path, exc)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _end_leftover(workdir: Path) -> None:
    """A server that a killed site left running still holds the port: end it (only if the
    pid is still that server's, started from this directory)."""
    try:
        pid = int((workdir / "child.pid").read_text())
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, ValueError):
        return
    if Path(cwd) != workdir:
        return
    log.warning("ending %s gateway process %d left by an earlier run", workdir.name, pid)
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)


def _warn_unreachable(mount: Path) -> None:
    """smbd works as the logged-in user, who must be able to pass through every folder above
    the mount: say so when one of them is closed to other users."""
    for folder in mount.parents:
        try:
            mode = os.stat(folder).st_mode
        except OSError:
            continue
        if not mode & 0o001:
            log.error("smb export: users cannot reach %s: %s is mode %04o (other users need "
                      "to pass through it: chmod o+x %s, or mount elsewhere)", mount, folder,
                      mode & 0o7777, folder)
