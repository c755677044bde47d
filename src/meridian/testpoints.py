"""Named points where a test stops this process: inert unless MERIDIAN_TESTPOINT is set.

Crash tests must kill a site at one exact step (between a rename and the fsync of its
folder, while a snapshot is installed, in the middle of a delete), which no timing from the
outside hits reliably. The product calls ``reached("name")`` at such steps; nothing happens
unless the environment says, for that name:

- ``MERIDIAN_TESTPOINT=name:kill``: the process kills itself with SIGKILL (as ``kill -9``),
  after writing ``testpoint name: kill`` to stderr;
- ``MERIDIAN_TESTPOINT=name:pause:PATH`` (``reached_async`` only): create ``PATH.paused`` and
  wait, without blocking the event loop, until ``PATH`` exists; then go on.

One point per process. The names are listed in docs/design-notes.md ("Test points").
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

ENV = "MERIDIAN_TESTPOINT"
_SETTING = os.environ.get(ENV)  # read once: a point costs one comparison when unset


def _wanted(name: str) -> list[str] | None:
    if _SETTING is None:
        return None
    parts = _SETTING.split(":", 2)
    return parts[1:] if parts[0] == name else None


def _kill(name: str) -> None:
    sys.stderr.write(f"testpoint {name}: kill\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def reached(name: str) -> None:
    """The process is at point ``name``: die there if a test asks for it."""
    action = _wanted(name)
    if action and action[0] == "kill":
        _kill(name)


async def reached_async(name: str) -> None:
    """As ``reached``, and a test may also pause the caller here (the loop runs on)."""
    action = _wanted(name)
    if not action:
        return
    if action[0] == "kill":
        _kill(name)
    elif action[0] == "pause" and len(action) == 2:
        flag = action[1]
        with open(flag + ".paused", "w"):
            pass
        while not os.path.exists(flag):
            await asyncio.sleep(0.05)
