"""``meridian status``, ``meridian ls --placement`` and ``meridian fsck`` (read-only)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from meridian.cli.locate import add_config_option, locate_config, namespace_path
from meridian.cli.progress import Progress
from meridian.cli.site_cmds import read_run_file
from meridian.content import VolumeInspector
from meridian.errors import BadInput, MeridianError, NotFound
from meridian.meta.sqlite import SqliteMetaStore
from meridian.site import SiteConfig
from meridian.site.inspect import fsck, namespace_digest, placements
from meridian.site.privacy import loose_modes
from meridian.site.site import open_bucket


def register(commands: Any) -> None:
    status = commands.add_parser(
        "status", help="the site at a glance: store, volume, uploads, bucket",
        description="Show the site's identity, its local volume's usage, the upload queue, the "
                    "journal and whether the bucket answers. Works whether the site runs or not.")
    add_config_option(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    ls = commands.add_parser(
        "ls", help="list files, with where their content is (--placement)",
        description="List the files under PATH (a path in a mount, or a namespace path ./a/b). "
                    "With --placement, show where each file's content is: local, bucket, both, "
                    "in flight (local, upload queued), partial, or missing.")
    add_config_option(ls)
    ls.add_argument("path", metavar="PATH", nargs="?", default="./")
    ls.add_argument("--placement", action="store_true", help="show where content is")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=cmd_ls)

    check = commands.add_parser(
        "fsck", help="check that every file's content is reachable (reports, never repairs)",
        description="Walk the namespace and check that every file's content is reachable: a "
                    "complete local instance, or a manifest in the bucket; and that no folder "
                    "or file of the site (data, volumes, config) is open to other local "
                    "users. Reports problems; "
                    "never repairs. Exit 0 clean, 1 problems found, 3 bucket unreachable.")
    add_config_option(check)
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=cmd_fsck)


def _open_readonly(config: SiteConfig) -> tuple[SqliteMetaStore, VolumeInspector]:
    if not config.meta_path.exists():
        raise MeridianError(f"no metadata store at {config.meta_path}: run `meridian init` first")
    meta = SqliteMetaStore(config.meta_path, config.name, read_only=True)
    return meta, VolumeInspector(config.volumes[0].path, config.volumes[0].capacity)


def _exports_of(config: SiteConfig, running: bool) -> list[dict[str, Any]]:
    """Each configured export, with what the running site last said of its server."""
    from meridian.gateways import read_gateway_state

    state = read_gateway_state(config) if running else {}
    return [{**export.describe(), "state": "not running",
             **state.get(export.protocol, {})} for export in config.exports.enabled()]


def cmd_status(args: argparse.Namespace) -> int:
    config = locate_config(args)
    meta, volume = _open_readonly(config)
    try:
        usage = volume.usage()
        uploads = meta.pending_uploads(limit=1 << 30)
        failing = [u for u in uploads if u.attempts]
        objects, bucket = open_bucket(config)
        started = time.monotonic()
        try:
            fmt = bucket.check_format()
            bucket_state: dict[str, Any] = {"reachable": True, "format": fmt.version,
                                            "block_size": fmt.block_size,
                                            "ms": round((time.monotonic() - started) * 1000, 1)}
        except MeridianError as exc:
            bucket_state = {"reachable": False, "error": str(exc)}
        finally:
            objects.close()
        running = read_run_file(config.data)
        replication = _replication_of_running_site(running, config)
        links = {link["peer"]: link for link in replication.get("links", [])}
        peers: list[dict[str, Any]] = []
        departed = meta.departed()
        for configured in config.peers:
            if configured.name in departed:
                peers.append({"name": configured.name, "url": configured.url, "left": True,
                              "reachable": False, "error": "left the namespace",
                              "position": meta.peer_position(configured.name)})
                continue
            state = peer_state(config, configured)
            state["position"] = meta.peer_position(configured.name)
            if state["reachable"] and state.get("journal_last_seq") is not None:
                state["entries_behind"] = max(0, int(state["journal_last_seq"]) - state["position"])
            link = links.get(configured.name)
            if link is not None:
                state["link"] = {"connected": link["connected"], "error": link["error"],
                                 "refused": bool(link.get("refused"))}
                state["seconds_behind"] = link["seconds_behind"]
            peers.append(state)
        info = {
            **config.describe(), "site_id": meta.site_id, "inodes": meta.count_inodes(),
            "running": running is not None, "pid": running["pid"] if running else None,
            "journal_last_seq": meta.last_seq(), "digest": namespace_digest(meta),
            "volume": {"used": usage.used, "capacity": usage.capacity, "complete": usage.complete,
                       "partial": usage.partial, "instances": usage.count},
            "uploads": {"queued": len(uploads), "bytes": sum(u.size for u in uploads),
                        "failing": len(failing),
                        "last_error": failing[0].last_error if failing else None},
            "bucket_state": bucket_state,
            "peers": peers,
            "gc_held_back": (replication.get("gc") or {}).get("held_back"),
        }
        info["exports"] = _exports_of(config, running is not None)
        if running:
            info["mount"] = running["mount"]
            info["api"] = running.get("api")
            info["objectives"] = _objectives_of_running_site(config)
    finally:
        meta.close()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        cap = _size(usage.capacity) if usage.capacity else "no limit"
        print(f"site       {info['site']} ({info['site_id']})")
        print(f"config     {info['config']}")
        print(f"running    " + (f"yes (pid {info['pid']}), mounted at {info['mount']}"
                                  if info["running"] else "no"))
        if info.get("api"):
            print(f"api        {info['api']}")
        print(f"namespace  {info['inodes']} inodes, journal at {info['journal_last_seq']}, "
              f"digest {info['digest'][:16]}")
        print(f"volume     {_size(usage.used)} used of {cap}; {usage.count} instances")
        print(f"uploads    {len(uploads)} queued ({_size(info['uploads']['bytes'])})"
              + (f", {len(failing)} failing: {failing[0].last_error}" if failing else ""))
        if info["gc_held_back"]:
            print(f"collection WAITS: {info['gc_held_back']}")
        for peer in peers:
            said = (f"reachable ({peer['ms']} ms), journal at {peer['journal_last_seq']}"
                    if peer["reachable"] else f"UNREACHABLE: {peer['error']}")
            lag = f"; pulled to {peer['position']}"
            if "entries_behind" in peer:
                lag += f", {peer['entries_behind']} entries behind"
            if peer.get("seconds_behind") is not None:
                lag += f", {peer['seconds_behind']:.1f} s behind"
            if peer.get("link") and peer["link"].get("refused"):
                lag += f"; LINK STOPPED: {peer['link']['error']}"
            elif peer.get("link") and not peer["link"]["connected"]:
                lag += f"; link down: {peer['link']['error']}"
            print(f"peer       {peer['name']} {peer['url']}: {said}{lag}")
        if info.get("objectives"):
            o = info["objectives"]
            a = o["alignment"]
            print(f"objectives {len(o['objectives'])} rules; {a['aligned']} files aligned, "
                  f"{a['partial']} partial, {a['unaligned']} unaligned"
                  + (f" ({a['waiting_for_space']} waiting for space)"
                     if a["waiting_for_space"] else ""))
        for export in info["exports"]:
            print(f"export     {export['protocol']} {export['url']}: {export['state']}"
                  + (f" (pid {export['pid']})" if export.get("pid") else "")
                  + f", {export['access']}, clients {', '.join(export['clients'])}"
                  + (f", users {', '.join(export['users'])}" if export["users"] else "")
                  + (f", restarted {export['restarts']} times" if export.get("restarts") else ""))
        if bucket_state["reachable"]:
            print(f"bucket     {config.bucket.url}: reachable ({bucket_state['ms']} ms), "
                  f"format {bucket_state['format']}")
        else:
            print(f"bucket     {config.bucket.url}: UNREACHABLE: {bucket_state['error']}")
    return 0 if bucket_state["reachable"] else 3


def _replication_of_running_site(running: dict[str, Any] | None,
                                 config: Any) -> dict[str, Any]:
    """The running site's ``GET /replication`` answer (its links, and what holds garbage
    collection back); {} if it is not running."""
    if not running or not running.get("api") or config.api is None:
        return {}
    from meridian.cli.site_api import SiteApi
    try:
        info = SiteApi(config).call("GET", "/replication", timeout=3.0)
    except MeridianError:
        return {}
    return info if isinstance(info, dict) else {}


def peer_state(config: Any, peer: Any, timeout: float = 3.0) -> dict[str, Any]:
    """Ask a peer's API who it is (this site's credential for it presented); never raises."""
    from meridian.site.trust import peer_endpoint
    from meridian.sitecall import CallRefused, SiteClient

    started = time.monotonic()
    try:
        with SiteClient(peer_endpoint(config, peer)) as client:
            info = client.call("GET", "/site", timeout=timeout)
    except CallRefused as exc:
        return {"name": peer.name, "url": peer.url, "reachable": False,
                "error": f"HTTP {exc.status} (credential refused)"}
    except MeridianError as exc:
        return {"name": peer.name, "url": peer.url, "reachable": False, "error": str(exc)}
    return {"name": peer.name, "url": peer.url, "reachable": True,
            "ms": round((time.monotonic() - started) * 1000, 1),
            "journal_last_seq": info.get("journal_last_seq")}


def cmd_ls(args: argparse.Namespace) -> int:
    config = locate_config(args, args.path)
    path = namespace_path(config, args.path)
    meta, volume = _open_readonly(config)
    try:
        try:
            top = meta.resolve(path)
        except NotFound:
            raise BadInput(f"{args.path}: no such file or directory in site {config.name}") from None
        rows = list(placements(meta, volume, top))
    finally:
        meta.close()
    objectives = _alignment_of_running_site(config, path) if args.placement else {}
    if args.json:
        print(json.dumps([{**vars(r), "objective": objectives.get("." + r.path)} for r in rows],
                         indent=2))
        return 0
    for row in rows:
        if args.placement:
            local = "" if row.state in ("both", "local", "in flight", "empty") or not row.size \
                else f" ({row.local_bytes * 100 // row.size}% local)"
            print(f"{row.state:<10} {_size(row.size):>9}  {row.path}{local}"
                  + _objective_note(objectives.get("." + row.path)))
        else:
            print(row.path)
    return 0


def _objectives_of_running_site(config: SiteConfig) -> dict[str, Any] | None:
    from meridian.cli.site_api import SiteApi

    try:
        answer: dict[str, Any] = SiteApi(config).call("GET", "/objectives", timeout=5.0)
    except MeridianError:
        return None
    return answer


def _alignment_of_running_site(config: SiteConfig, path: str) -> dict[str, Any]:
    """Per file: how it stands against the site's objectives (pins and the rules that set
    them); {} when the site is not running (objectives act only in a running site)."""
    from meridian.cli.site_api import SiteApi

    try:
        answer = SiteApi(config).call("GET", "/alignment", query={"path": "." + path})
    except MeridianError:
        return {}
    files: dict[str, Any] = answer.get("files", {})
    return files


def _objective_note(found: dict[str, Any] | None) -> str:
    if not found:
        return ""
    pinned = [slo for slo in found["slos"] if slo in ("place-on-local-volumes", "keep-online",
                                                        "do-not-move", "confine-to-local-volumes")]
    rules = sorted(set(found["rules"].values()))
    note = f"  [{found['state']}"
    note += f"; pinned by {', '.join(rules)}" if pinned else f"; {', '.join(found['slos'])}"
    note += f": {found['reason']}" if found["reason"] else ""
    return note + "]"


def cmd_fsck(args: argparse.Namespace) -> int:
    config = locate_config(args)
    meta, volume = _open_readonly(config)
    objects, bucket = open_bucket(config)
    try:
        bucket.check_format()
        progress = Progress("fsck", total=meta.count_inodes(), unit="inodes")
        report = fsck(meta, volume, bucket, progress.advance)
        progress.close()
        report.problems.extend(loose_modes(config))
    finally:
        meta.close()
        objects.close()
    if args.json:
        print(json.dumps({"files": report.files, "contents": report.contents,
                          "problems": report.problems, "clean": report.clean}, indent=2))
    else:
        for problem in report.problems:
            print(f"PROBLEM  {problem}")
        verdict = "clean" if report.clean else f"{len(report.problems)} problem(s)"
        print(f"fsck: {report.files} files, {report.contents} contents checked: {verdict}")
    return 0 if report.clean else 1


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"

