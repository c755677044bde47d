"""The running site's heap and Python's cyclic garbage collector.

A started site holds ~140,000 objects that live as long as the process: the modules, botocore's
service models, the API's routes and schemas, the stores and their caches. CPython's collector
walks every one of them on each full (generation 2) pass, which it starts on its own once
enough new objects have survived; on this machine such a pass took 70–120 ms, with the event
loop, and so every FUSE request, journal line and API answer, stopped behind it. Two sites
of ``bench/compare_visibility.py`` paused together once per run, and the file written in that
moment was the run's slowest (docs/design-notes.md, "The collector's pauses").

``freeze_startup_heap`` is called once the site is up: a last full collection, then
``gc.freeze()`` moves every surviving object to the permanent generation, which later passes
do not walk. Objects made afterwards are collected as before. What froze is still freed by
reference counting when it is dropped; only a reference cycle among frozen objects would stay
until the process exits, and startup objects live that long anyway.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect once, then keep every object alive now out of later collections. Returns how
    many objects were frozen (cumulative, if called again)."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("startup heap: %d objects kept out of the collector's passes (gc.freeze, %.0f ms)",
             frozen, (time.perf_counter() - started) * 1000)
    return frozen
