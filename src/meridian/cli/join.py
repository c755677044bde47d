"""`meridian init --join URL --token T`: a new site that starts from a peer's namespace.

The peer's store comes over in one bulk transfer (``GET /api/v1/snapshot``, a SQLite file),
becomes this site's store under a new identity, and the site then pulls the peer's journal
from the position the snapshot holds. Content is not copied: it is read from the bucket (or the
peer) on first access, like at any site.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from meridian.cli.progress import Progress
from meridian.errors import BadInput, PeerUnreachable
from meridian.meta.sqlite import SqliteMetaStore
from meridian.site import Site
from meridian.site.config import SiteConfig, new_token, parse_config, write_config
from meridian.testpoints import reached

CHUNK = 1 << 20


def api_base(url: str) -> str:
    """``http://host:port`` or ``.../api/v1`` → ``http://host:port/api/v1``."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"--join {url!r}: give the peer's API URL, e.g. http://10.0.0.2:7411/api/v1")
    return url if url.endswith("/api/v1") else url + "/api/v1"


def _get(url: str, token: str, timeout: float = 30.0) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise PeerUnreachable(f"{url}: the peer refused the token (--token is the token of "
                                  "the site you join, from its meridian.toml [api])") from None
        raise PeerUnreachable(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise PeerUnreachable(f"{url}: cannot reach the peer: {exc}") from None


def cmd_join(args: Any, data: Path, config_path: Path) -> int:
    base = api_base(args.join)
    if not args.token:
        raise BadInput("--join needs --token: the token of the site you join")
    started = time.monotonic()
    with _get(f"{base}/site", args.token) as answer:
        peer: dict[str, Any] = json.loads(answer.read())
    doc: dict[str, Any] = {
        "site": {"name": args.site, "data": str(data)},
        "bucket": {"url": args.bucket or peer["bucket"]},
        "volumes": [{"name": "local", "path": str(data / "volumes" / "local")}],
        "api": {"listen": args.api_listen, "token": new_token()},
        "peers": [{"name": peer["site"], "url": base, "token": args.token}],
    }
    endpoint = args.endpoint_url or peer.get("endpoint_url")
    if endpoint:
        doc["bucket"]["endpoint_url"] = endpoint
    if args.region:
        doc["bucket"]["region"] = args.region
    if args.mount:
        doc["site"]["mount"] = str(Path(args.mount).absolute())
    if args.capacity:
        doc["volumes"][0]["capacity"] = args.capacity
    config: SiteConfig = parse_config(doc, config_path)
    if config.name == peer["site"]:
        raise BadInput(f"--site {config.name}: that is the name of the site you join")
    Site.initialize(config)  # folders, and the bucket's format marker checked
    download = data / "tmp" / "join-snapshot.db"
    download.parent.mkdir(parents=True, exist_ok=True)
    with _get(f"{base}/snapshot", args.token, timeout=600) as answer:
        total = int(answer.headers.get("Content-Length") or 0) or None
        progress = Progress(f"snapshot of {peer['site']}", total, "bytes")
        with open(download, "wb") as out:
            while chunk := answer.read(CHUNK):
                out.write(chunk)
                progress.advance(len(chunk))
        progress.close()
    reached("join.downloaded")
    store = SqliteMetaStore.adopt_snapshot(download, config.meta_path, config.name, peer["site"])
    try:
        inodes, position = store.count_inodes(), store.peer_position(peer["site"])
        reached("join.adopted")  # the store is the new site's (still open); no config yet
    finally:
        store.close()
    write_config(config, config_path)
    took = time.monotonic() - started
    print(f"site {config.name} joined {peer['site']}'s namespace: {inodes} inodes in "
          f"{took:.1f} s; it pulls {peer['site']}'s journal from entry {position}")
    print(f"config {config_path}; run it with: meridian site run --config {config_path} "
          "--mount DIR")
    print(f"so that the other sites pull from {config.name} too, add to their meridian.toml:\n"
          f"[[peers]]\nname = \"{config.name}\"\nurl = \"<this site's API URL, e.g. "
          f"http://HOST:PORT/api/v1>\"\ntoken = \"<the [api] token in {config_path}>\"")
    return 0
