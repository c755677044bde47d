"""Closing a site: drain (content in the bucket, changes pulled), then leave. Nothing is lost."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import tomli_w

from tests.faultproxy import FaultProxy
from tests.sitehelpers import RunningSite, init_linked, meridian, snapshot, wait_for


def _edit(site: RunningSite, change: dict[str, dict[str, object]]) -> None:
    doc = tomllib.loads(site.config.read_text())
    for table, values in change.items():
        doc.setdefault(table, {}).update(values)
    site.config.write_text(tomli_w.dumps(doc))


def test_a_site_with_unsent_content_drains_then_leaves_and_nothing_is_lost(
        tmp_path: Path, stopper: list[RunningSite], s3_bucket: tuple[str, str]) -> None:
    endpoint, name = s3_bucket
    with FaultProxy(endpoint) as east_s3:
        sites = init_linked(tmp_path, ["east", "west"], f"s3://{name}", "--endpoint-url", endpoint)
        east, west = sites["east"], sites["west"]
        _edit(east, {"bucket": {"endpoint_url": east_s3.url},
                     "mover": {"retry_base": 0.2, "retry_max": 1.0}})
        for site in (east, west):
            stopper.append(site)
            site.start()
        east_s3.refuse(True)  # east cannot upload: what it writes stays on its volume
        written = {f"plates/p{n}.exr": os.urandom(700_000 + n) for n in range(6)}
        (east.mount / "plates").mkdir()
        for rel, data in written.items():
            (east.mount / rel).write_bytes(data)

        stuck = meridian("site", "drain", "--config", str(east.config), "--timeout", "3",
                         check=False)
        assert stuck.returncode == 1 and "uploads queued" in stuck.stderr
        refused = meridian("site", "leave", "--config", str(east.config), check=False)
        assert refused.returncode == 1 and "not drained" in refused.stderr
        assert east.process is not None and east.process.poll() is None  # still running

        east_s3.refuse(False)
        drained = meridian("site", "drain", "--config", str(east.config), "--timeout", "120")
        assert "is drained" in drained.stdout
        left = meridian("site", "leave", "--config", str(east.config))
        assert "west: stopped pulling from east" in left.stdout
        assert east.process.wait(timeout=30) == 0  # leave stopped the running site
        east.process = None

        for rel, data in written.items():  # east is gone: every byte comes from the bucket
            assert (west.mount / rel).read_bytes() == data
        assert set(snapshot(west.mount)) >= set(written)
        status = meridian("status", "--config", str(west.config))
        assert "east" in status.stdout and "left the namespace" in status.stdout

        west.stop()  # after a restart west still does not pull from the departed site
        west.start()
        wait_for(lambda: "east left the namespace" in west.log(), what="departed after restart")
