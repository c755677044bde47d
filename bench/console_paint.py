"""Time to first paint of the console's Files view for a folder of 10,000 files.

One site with its API on 127.0.0.1 (TLS, as served by default), run in this process (its store,
volume and API; no mount: the Files view reads the store), a folder of FILES files in it; then
a real headless Chromium (Debian's, through Selenium, as the tests drive it) signs in with a
one-time URL and opens ``/console/files?path=/big`` RUNS times (after one unmeasured load).
Per load, from the browser's Performance API: first contentful paint (``paint`` entries), the
navigation's responseEnd (the server's answer) and domContentLoaded. Reported: medians with
min-max.

Results: bench/results/console_paint.json and .md (another --files: console_paint_N.*).

    .venv/bin/python bench/console_paint.py [--files 10000] [--runs 9]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import stat
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' browser helper: the same Chromium, the same flags

from tests.browser import chromium, console_errors, missing_browser  # noqa: E402

TIMING = """
const nav = performance.getEntriesByType('navigation')[0];
const fcp = performance.getEntriesByType('paint').find(p => p.name === 'first-contentful-paint');
return {fcp: fcp ? fcp.startTime : null, response_end: nav.responseEnd,
        dom_content_loaded: nav.domContentLoadedEventEnd,
        rows: document.querySelectorAll('#listing tr.entry').length};
"""


class ServedSite:
    """A site and its API on a loop in a background thread."""

    def __init__(self, root: Path, files: int) -> None:
        from meridian.site import Site, parse_config
        from meridian.site.trust import init_trust

        config = parse_config({"site": {"name": "bench", "data": str(root / "bench")},
                               "bucket": {"url": f"file://{root}/bucket"},
                               "api": {"listen": "127.0.0.1:0"}})
        Site.initialize(config)
        init_trust(config)
        self.site = Site.open(config)
        folder = self.site.meta.create(1, "big", stat.S_IFDIR | 0o755, 0, 0)
        for n in range(files):
            self.site.meta.create(folder.ino, f"sh{n // 100:03d}_plate.{1001 + n % 100}.exr",
                                  stat.S_IFREG | 0o644, 0, 0)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        from meridian.api import ApiServer
        self.api = ApiServer(self.site)
        asyncio.run_coroutine_threadsafe(self.api.start(), self.loop).result(30)
        self.base = self.api.url.removesuffix("/api/v1")

    def sign_in_url(self) -> str:
        import ssl
        context = ssl.create_default_context(cafile=str(self.site.config.tls.ca))
        credential = self.site.config.secrets.admin_credential()
        answer = httpx.post(self.base + "/api/v1/console/sign-in", verify=context,
                            headers={"Authorization": f"Bearer {credential}"})
        answer.raise_for_status()
        return self.base + answer.json()["path"]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.api.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.site.close()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    missing = missing_browser()
    if missing:
        print(f"console_paint: needs {', '.join(missing)} (make test installs them)")
        return 2
    root = Path(tempfile.mkdtemp(prefix="meridian-paint-"))
    served = None
    try:
        started = time.monotonic()
        served = ServedSite(root, args.files)
        made = time.monotonic() - started
        loads: list[dict[str, Any]] = []
        with chromium(root / "profile", [served.site.config.tls.cert]) as driver:
            driver.get(served.sign_in_url())
            page = f"{served.base}/console/files?path=/big"
            driver.get(page)  # unmeasured: the first load warms caches on both sides
            for _ in range(args.runs):
                driver.get(page)
                load = driver.execute_script(TIMING)
                deadline = time.monotonic() + 5
                while load["fcp"] is None and time.monotonic() < deadline:
                    time.sleep(0.05)  # the paint entry is recorded after the load event
                    load = driver.execute_script(TIMING)
                loads.append(load)
            errors = console_errors(driver)
        assert not errors, errors
        assert all(load["rows"] == min(200, args.files) for load in loads), loads
        result = {
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": args.files, "runs": args.runs, "rows_painted": loads[0]["rows"],
            "first_contentful_paint_ms": summary([load["fcp"] for load in loads]),
            "response_end_ms": summary([load["response_end"] for load in loads]),
            "dom_content_loaded_ms": summary([load["dom_content_loaded"] for load in loads]),
            "folder_made_s": round(made, 1), "loads": loads,
        }
    finally:
        if served is not None:
            served.close()
        shutil.rmtree(root, ignore_errors=True)
    out = ROOT / "bench" / "results"
    stem = "console_paint" if args.files == 10_000 else f"console_paint_{args.files}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    fcp, end, dcl = (result["first_contentful_paint_ms"], result["response_end_ms"],
                     result["dom_content_loaded_ms"])
    (out / f"{stem}.md").write_text(
        "# Time to first paint of the console's Files view\n\n"
        f"{result['when']}: a folder of {args.files:,} files (the view paints its first page "
        f"of {result['rows_painted']} rows), one site's API on 127.0.0.1 over TLS, headless "
        f"Chromium; {args.runs} loads after one unmeasured.\n\n"
        "| measure (from navigation start) | median | min-max |\n| --- | --- | --- |\n"
        f"| first contentful paint | {fcp['median']} ms | {fcp['min']}-{fcp['max']} ms |\n"
        f"| server's answer complete (responseEnd) | {end['median']} ms | "
        f"{end['min']}-{end['max']} ms |\n"
        f"| DOMContentLoaded | {dcl['median']} ms | {dcl['min']}-{dcl['max']} ms |\n\n"
        f"Reproduce: `.venv/bin/python bench/console_paint.py --files {args.files} "
        f"--runs {args.runs}`\n")
    print(json.dumps({k: v for k, v in result.items() if k != "loads"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
