"""freeze_startup_heap: what a started site holds leaves the collector's full passes."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
import meridian.site, meridian.api, meridian.mount  # what a running site has loaded
from meridian.site.heap import freeze_startup_heap
before = len(gc.get_objects(generation=2))
frozen = freeze_startup_heap()
after = len(gc.get_objects(generation=2))
junk = [[i] for i in range(1000)]  # made afterwards: still the collector's
young = sum(len(gc.get_objects(generation=g)) for g in range(3))
print(json.dumps({"before": before, "frozen": frozen, "after": after, "young": young,
                  "enabled": gc.isenabled()}))
"""


def test_a_frozen_heap_leaves_full_passes_only_what_came_after() -> None:
    # A process of its own: freezing the test runner's heap would outlive the test.
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            timeout=60, check=True)
    found = json.loads(result.stdout)
    assert found["before"] > 10_000, found  # a site's modules alone are tens of thousands
    assert found["frozen"] >= found["before"]
    assert found["after"] == 0, found  # nothing left for a full pass to walk
    assert 1000 <= found["young"] < found["frozen"] // 4, found
    assert found["enabled"], "the collector still runs for what is made later"
