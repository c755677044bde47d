"""What the console shows, read from the running site (no HTTP to itself): the sites of the
namespace, a page of a folder, one file's whereabouts and explanation, a rule's preview.

Each function answers from the site's stores as they are now; the slow questions (the bucket's
format, the peers' digests, which peer holds a content) go to threads with short timeouts and
the answers about the bucket and the peers are kept a few seconds, so a page that refreshes
every second or two does not turn into a stream of calls.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meridian.errors import BadInput, MeridianError, NotFound
from meridian.objectives.language import ObjectiveError, parse, resolve
from meridian.site.inspect import DigestCache, placement_of

if TYPE_CHECKING:
    from meridian.meta import Inode
    from meridian.site.config import PeerConfig
    from meridian.site import Site

PAGE_SIZE = 200  # entries of a folder per page of the Files view
PREVIEW_SCAN = 10_000  # files a rule preview looks at, at most
PREVIEW_SHOWN = 100  # matching files a preview lists
QUEUED_SEEN = 10_000  # queued uploads read to mark files "in flight"
CACHE_SECONDS = 5.0


class Cached:
    """One value per key, recomputed when older than ``CACHE_SECONDS``."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any | None:
        found = self._values.get(key)
        if found is None or time.monotonic() - found[0] > CACHE_SECONDS:
            return None
        return found[1]

    def put(self, key: str, value: Any) -> Any:
        self._values[key] = (time.monotonic(), value)
        return value


def _bucket_state(site: Site) -> dict[str, Any]:
    started = time.monotonic()
    try:
        fmt = site.bucket.check_format()
    except MeridianError as exc:
        return {"reachable": False, "error": str(exc)}
    return {"reachable": True, "format": fmt.version, "block_size": fmt.block_size,
            "ms": round((time.monotonic() - started) * 1000, 1)}


def _peer_digest(site: Site, name: str) -> dict[str, Any]:
    from meridian.site.trust import peer_endpoint
    from meridian.sitecall import SiteClient

    peer = next((p for p in site.config.peers if p.name == name), None)
    if peer is None:
        return {"reachable": False, "error": "no longer in this site's config"}
    try:
        with SiteClient(peer_endpoint(site.config, peer)) as client:
            answer = client.call("GET", "/digest", timeout=3.0)
    except MeridianError as exc:
        return {"reachable": False, "error": str(exc)}
    return {"reachable": True, "digest": str(answer.get("digest", "")),
            "journal_last_seq": answer.get("journal_last_seq")}


async def sites_view(site: Site, cache: Cached, digests: DigestCache) -> dict[str, Any]:
    """This site and each peer: link state, lag, digests (and whether all agree), the bucket,
    the upload queue and the volume."""
    bucket = cache.get("bucket") or cache.put("bucket", await asyncio.to_thread(_bucket_state,
                                                                               site))
    usage = site.volume.usage()
    own, own_seq = digests.current()  # "" while the first is computed
    peers = []
    for link in site.replication.status():
        name = str(link["peer"])
        remote = cache.get(f"peer:{name}") or cache.put(
            f"peer:{name}", await asyncio.to_thread(_peer_digest, site, name))
        peers.append({**link, "remote": remote})
    known = [own] + [p["remote"]["digest"] for p in peers if p["remote"]["reachable"]]
    known = [digest for digest in known if digest]
    return {
        "name": site.config.name, "journal_last_seq": site.meta.last_seq(), "digest": own,
        "digest_seq": own_seq,
        "agree": len(set(known)) == 1 and len(known) == len(peers) + 1,
        "bucket": bucket, "bucket_url": site.config.bucket.url,
        "uploads": site.meta.upload_count(),
        "volume": {"used": usage.used, "capacity": usage.capacity},
        "peers": peers,
    }


@dataclass(frozen=True)
class Entry:
    name: str
    path: str  # namespace path, "/a/b"
    kind: str  # "dir" | "file" | "link"
    size: int
    state: str  # placement state of a file ("" for others)
    pinned: bool
    alignment: str  # "" when no rule applies


def normalise(path: str) -> str:
    """``./a/b``, ``a/b/`` or ``/a/b`` → ``/a/b`` (the root is ``/``); ``..`` is refused."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadInput(f"{path!r}: '..' is not allowed in a console path")
    return "/" + "/".join(parts)


def folder_page(site: Site, path: str, page: int) -> dict[str, Any]:
    """One page (``PAGE_SIZE`` entries, by name) of the folder ``path``: only that page is
    read from the store. Raises NotFound (no such folder) or BadInput."""
    path = normalise(path)
    top = site.meta.resolve(path.lstrip("/")) if path != "/" else site.meta.getattr(1)
    if not top.is_dir:
        raise BadInput(f"{path}: not a folder")
    count, shown = site.meta.list_dir_page(top.ino, (max(page, 1) - 1) * PAGE_SIZE, PAGE_SIZE)
    pages = max(1, -(-count // PAGE_SIZE))
    if page > pages:  # past the end (the folder shrank): the last page
        page = pages
        count, shown = site.meta.list_dir_page(top.ino, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    page = max(page, 1)
    queued = {u.hash for u in site.meta.pending_uploads(limit=QUEUED_SEEN)}
    entries = [_entry(site, name, f"{path.rstrip('/')}/{name}", inode, queued)
               for name, inode in shown]
    return {"path": path, "page": page, "pages": pages, "count": count,
            "entries": entries, "parent": normalise(path.rsplit("/", 1)[0] or "/")}


def _entry(site: Site, name: str, path: str, inode: Inode, queued: set[str]) -> Entry:
    if inode.is_dir:
        return Entry(name, path, "dir", 0, "", False, "")
    if not inode.is_file:
        return Entry(name, path, "link", 0, "", False, "")
    where = placement_of(path, inode, site.meta, site.volume, queued)
    found = site.orchestrator.alignment.get(inode.file_id)
    pinned = bool(inode.content) and site.volume.is_pinned(inode.content or "")
    return Entry(name, path, "file", inode.size, where.state, pinned,
                 found.state if found else "")


def _peer_holds(site: Site, peer: PeerConfig, content: str) -> str:
    """Whether ``peer`` can vouch for ``content`` (it holds a checked instance of it)."""
    from meridian.site.trust import peer_endpoint
    from meridian.sitecall import SiteClient

    try:
        with SiteClient(peer_endpoint(site.config, peer)) as client:
            client.call("GET", f"/content/{content}/blocks", timeout=3.0)
    except NotFound:
        return "not held"
    except MeridianError as exc:
        return f"unknown ({exc})"
    return "holds it (vouches for its blocks)"


async def file_view(site: Site, path: str) -> dict[str, Any]:
    """Where one file's content is (here, in flight, the bucket, each peer), its pin, and
    every rule against it (what ``meridian objective explain`` prints)."""
    path = normalise(path)
    try:
        inode = site.meta.resolve(path.lstrip("/"))
    except NotFound:
        raise NotFound(f"{path}: no such file") from None
    queued = {u.hash for u in site.meta.pending_uploads(limit=QUEUED_SEEN)}
    where = placement_of(path, inode, site.meta, site.volume, queued)
    orchestrator = site.orchestrator
    facts = orchestrator.facts(inode, site.meta.path_of(inode.ino))
    placement = resolve(orchestrator.rules, facts)
    texts = {r.id: r.text for r in site.meta.objectives()}
    found = orchestrator.alignment.get(inode.file_id)
    peers: dict[str, str] = {}
    if inode.content:
        answers = await asyncio.gather(*(asyncio.to_thread(_peer_holds, site, p,
                                                           inode.content)
                                         for p in site.config.peers))
        peers = {p.name: answer for p, answer in zip(site.config.peers, answers)}
    return {
        "path": path, "size": inode.size, "content": inode.content, "placement": where,
        "pinned": bool(inode.content) and site.volume.is_pinned(inode.content or ""),
        "peers": peers,
        "rules": [{"id": r.rule_id, "text": texts.get(r.rule_id, ""),
                   "matched": r.evaluation.matched, "why": r.evaluation.why,
                   "slos": [s.name for s in r.evaluation.slos],
                   "overridden": list(r.overridden)} for r in placement.results],
        "slos": [s.name for s in placement.slos],
        "alignment": found,
    }


def rule_preview(site: Site, text: str) -> dict[str, Any]:
    """Check ``text`` as a rule; if it parses, the files of the namespace it matches (at most
    ``PREVIEW_SHOWN`` listed, ``PREVIEW_SCAN`` looked at) and the SLOs each would get with
    this site's rules followed by it. Parse errors carry line and column."""
    if not text.strip():
        return {"error": None, "empty": True}
    orchestrator = site.orchestrator
    try:
        rule = parse(text, orchestrator.groups)
    except ObjectiveError as exc:
        return {"error": str(exc), "line": exc.line, "column": exc.column}
    except BadInput as exc:
        return {"error": str(exc), "line": None, "column": None}
    rules = [*orchestrator.rules, ("new", rule)]
    matched: list[dict[str, Any]] = []
    scanned = count = 0
    for path, inode in site.meta.walk():
        if not inode.is_file:
            continue
        scanned += 1
        if scanned > PREVIEW_SCAN:
            break
        facts = orchestrator.facts(inode, path)
        evaluation = rule.evaluate(facts)
        if evaluation.matched:
            count += 1
            if len(matched) < PREVIEW_SHOWN:
                placement = resolve(rules, facts)
                matched.append({"path": "." + path, "slos": [s.name for s in evaluation.slos],
                                "effective": [s.name for s in placement.slos]})
    return {"error": None, "matched": matched, "count": count,
            "scanned": min(scanned, PREVIEW_SCAN), "complete": scanned <= PREVIEW_SCAN}
