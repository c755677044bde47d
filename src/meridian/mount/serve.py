"""Mounting: one asyncio loop runs the FUSE session and the site's services together.

pyfuse3 is switched to asyncio (``pyfuse3.asyncio.enable``) so that the mount, the mover and
(next) the HTTP API share one loop and one thread for all metadata work. A stale mount left
by a crash ("Transport endpoint is not connected") is detached before mounting again.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pyfuse3
import pyfuse3.asyncio

from meridian.errors import BadInput
from meridian.mount import waiting
from meridian.mount.fs import MeridianFS
from meridian.site import Site

log = logging.getLogger(__name__)


def is_mounted(mountpoint: Path) -> bool:
    """Whether ``/proc/mounts`` lists a mount at ``mountpoint``."""
    target = os.path.realpath(mountpoint)
    try:
        with open("/proc/mounts") as mounts:
            return any(line.split()[1] == target for line in mounts)
    except OSError:
        return False


def unmount(mountpoint: Path, *, lazy: bool = False) -> bool:
    """``fusermount3 -u`` (``-z`` when ``lazy``). Returns whether it succeeded."""
    args = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [str(mountpoint)]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        log.debug("fusermount3 -u %s: %s", mountpoint, result.stderr.strip())
    return result.returncode == 0


def prepare_mountpoint(mountpoint: Path) -> None:
    """Make ``mountpoint`` usable: create it, or detach a stale mount a crash left there.

    A mount whose process died answers ENOTCONN ("Transport endpoint is not connected") to
    any request that reaches it; ``statvfs`` always does (stat may be served from the kernel's
    cache). Raises BadInput if something live is already mounted there.
    """
    try:
        os.stat(mountpoint)
    except FileNotFoundError:
        mountpoint.mkdir(parents=True)
        return
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            raise
    if is_mounted(mountpoint):
        try:
            os.statvfs(mountpoint)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise
            log.warning("%s: stale mount left by a crash (transport endpoint is not "
                        "connected); detaching it", mountpoint)
            unmount(mountpoint, lazy=True)
        else:
            raise BadInput(f"{mountpoint} is already a mount point: unmount it first "
                           f"(fusermount3 -u {mountpoint})")
    if not mountpoint.is_dir():
        raise BadInput(f"{mountpoint} is not a directory")


READ_AHEAD_KB = 4096


def tune_read_ahead(mountpoint: Path, kilobytes: int = READ_AHEAD_KB) -> None:
    """Raise the kernel's read-ahead for this mount (FUSE starts at 128 KiB).

    Larger read-ahead means fewer, larger read requests, several in flight at once: the
    difference between Python handling 128 KiB and 1 MiB per request. Best effort (needs root;
    logged when it cannot be set). Call it from a worker thread once the request loop runs:
    it asks the mount for statvfs first. ``mountpoint`` must already be resolved (realpath).
    """
    target = str(mountpoint)
    try:
        os.statvfs(mountpoint)  # returns once the kernel's INIT is done (it resets read-ahead)
        with open("/proc/self/mountinfo") as info:
            device = next(line.split()[2] for line in info if line.split()[4] == target)
        Path(f"/sys/class/bdi/{device}/read_ahead_kb").write_text(str(kilobytes))
    except (OSError, StopIteration) as exc:
        log.info("could not raise read-ahead of %s: %s", mountpoint, exc)


async def serve(site: Site, mountpoint: Path, *, ready: Callable[[], None] | None = None,
                handle_signals: bool = True,
                after_mount: Callable[[], Awaitable[None]] | None = None,
                before_unmount: Callable[[], Awaitable[None]] | None = None) -> None:
    """Mount ``site`` at ``mountpoint`` and run until SIGINT/SIGTERM or an external unmount.

    ``after_mount`` runs once the mount answers (before ``ready``), ``before_unmount`` on the
    way out while the mount still answers (what exports the mount starts and stops there).
    On the way out it unmounts, stops the services and leaves the stores closed to the caller.
    """
    pyfuse3.asyncio.enable()
    waiting.install(site.config.request_spin)
    prepare_mountpoint(mountpoint)
    mountpoint = Path(os.path.realpath(mountpoint))  # resolved before mounting, never after
    fs = MeridianFS(site)
    options = set(pyfuse3.default_options)
    options |= {f"fsname=meridian:{site.config.name}", "subtype=meridian", "allow_other"}
    pyfuse3.init(fs, str(mountpoint), options)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    unmounted = False
    try:
        await site.start()
        fuse_task = asyncio.create_task(pyfuse3.main(), name="fuse")
        await asyncio.to_thread(tune_read_ahead, mountpoint)
        log.info("site %s mounted at %s (bucket %s; kernel writeback cache %s)",
                 site.config.name, mountpoint, site.config.bucket.url,
                 "on" if site.config.writeback_cache else "off")
        if after_mount is not None:
            await after_mount()
        if ready is not None:
            ready()
        stop_task = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({fuse_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if fuse_task in done:
            unmounted = True
            log.info("%s was unmounted from outside; stopping", mountpoint)
            fuse_task.result()
        else:
            if before_unmount is not None:
                await before_unmount()
            log.info("stopping: unmounting %s", mountpoint)
            pyfuse3.terminate()
            await fuse_task
        stop_task.cancel()
    finally:
        if before_unmount is not None:
            await before_unmount()  # again after an error or an unmount from outside
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        pyfuse3.close(unmount=not unmounted)
        await site.stop()
        log.info("site %s stopped", site.config.name)
