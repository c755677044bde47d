"""`meridian trash list|purge`, `meridian undelete`, `meridian versions`, `meridian restore`,
`meridian snapshot create|list|delete`: undo, through the running site's API."""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import datetime, timezone
from typing import Any

from meridian.cli.locate import add_config_option, locate_config, namespace_path
from meridian.cli.site_api import SiteApi
from meridian.errors import BadInput

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
TIME_HELP = "a time (2026-12-06T14:30, UTC unless it says +01:00) or an age (30m, 2h, 7d)"


def parse_time(text: str, option: str, now: float | None = None) -> int:
    """``text`` as nanoseconds since the epoch. Raises BadInput naming ``option``."""
    now = time.time() if now is None else now
    age = _AGE.match(text.strip())
    if age:
        return int((now - float(age.group(1)) * _UNITS[age.group(2)]) * 1e9)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(f"{option} {text!r}: give {TIME_HELP}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1e9)


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def register(commands: Any) -> None:
    trash = commands.add_parser("trash", help="what was removed at any site (list, purge)")
    sub = trash.add_subparsers(dest="trash_command", metavar="COMMAND")
    sub.required = True
    listing = sub.add_parser("list", help="removed files and folders, oldest first")
    listing.add_argument("path", nargs="?", metavar="PATH", help="only under PATH")
    listing.add_argument("--since", metavar="T", help=f"removed at or after T: {TIME_HELP}")
    listing.add_argument("--site", metavar="S", help="removed at site S")
    listing.add_argument("--json", action="store_true")
    add_config_option(listing)
    listing.set_defaults(func=cmd_trash_list)
    purge = sub.add_parser("purge", help="forget trash records at every site (admin)")
    purge.add_argument("path", nargs="?", metavar="PATH", help="only under PATH")
    purge.add_argument("--before", metavar="T", help=f"removed before T: {TIME_HELP}")
    add_config_option(purge)
    purge.set_defaults(func=cmd_trash_purge)

    undelete = commands.add_parser(
        "undelete", help="bring back what was removed at PATH (a whole tree for a folder)",
        description="Bring back the most recent removal of PATH (before --at), at every site "
                    "with the same bytes. Never over an existing file: use --as NEW.")
    undelete.add_argument("path", metavar="PATH")
    undelete.add_argument("--at", metavar="TIME", help=f"the latest removal before: {TIME_HELP}")
    undelete.add_argument("--as", dest="as_path", metavar="NEW", help="restore under this path")
    add_config_option(undelete)
    undelete.set_defaults(func=cmd_undelete)

    versions = commands.add_parser("versions", help="a file's kept contents (time, site, size)")
    versions.add_argument("path", metavar="PATH")
    versions.add_argument("--json", action="store_true")
    add_config_option(versions)
    versions.set_defaults(func=cmd_versions)

    restore = commands.add_parser(
        "restore", help="bring back a version of a file, or a file or tree from a snapshot")
    restore.add_argument("path", metavar="PATH")
    which = restore.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", type=int, metavar="N", help="number N of `versions`")
    which.add_argument("--snapshot", metavar="NAME")
    restore.add_argument("--as", dest="as_path", metavar="NEW",
                         help="with --snapshot: restore under this path")
    add_config_option(restore)
    restore.set_defaults(func=cmd_restore)

    snapshot = commands.add_parser("snapshot", help="the whole namespace at one moment")
    snap = snapshot.add_subparsers(dest="snapshot_command", metavar="COMMAND")
    snap.required = True
    create = snap.add_parser("create", help="record the namespace now (no content copied)")
    create.add_argument("name", metavar="NAME")
    add_config_option(create)
    create.set_defaults(func=cmd_snapshot_create)
    snap_list = snap.add_parser("list", help="every snapshot, oldest first")
    snap_list.add_argument("--json", action="store_true")
    add_config_option(snap_list)
    snap_list.set_defaults(func=cmd_snapshot_list)
    delete = snap.add_parser("delete", help="delete a snapshot at every site")
    delete.add_argument("name", metavar="NAME")
    add_config_option(delete)
    delete.set_defaults(func=cmd_snapshot_delete)


def _api(args: argparse.Namespace, path: str | None = None) -> tuple[SiteApi, Any]:
    config = locate_config(args, path)
    return SiteApi(config), config


def _ns(config: Any, path: str) -> str:
    return "." + namespace_path(config, path)


def cmd_trash_list(args: argparse.Namespace) -> int:
    api, config = _api(args, args.path)
    query = {}
    if args.path:
        query["path"] = _ns(config, args.path)
    if args.since:
        query["since"] = str(parse_time(args.since, "--since"))
    if args.site:
        query["site_name"] = args.site
    answer = api.call("GET", "/trash", query=query)
    if args.json:
        print(json.dumps(answer["removed"], indent=2))
        return 0
    if not answer["removed"]:
        print("the trash is empty" + (" there" if query else ""))
    for r in answer["removed"]:
        kind = "dir " if (r["mode"] & 0o170000) == 0o040000 else "file"
        print(f"{_when(r['time_ns'])}  {r['site']:<10} {kind} {r['size']:>12}  .{r['path']}")
    return 0


def cmd_trash_purge(args: argparse.Namespace) -> int:
    api, config = _api(args, args.path)
    body: dict[str, Any] = {"path": _ns(config, args.path) if args.path else None,
                            "before": parse_time(args.before, "--before") if args.before else None}
    answer = api.call("POST", "/trash/purge", body)
    print(f"purged {answer['purged']} records (every site forgets them)")
    return 0


def _print_restored(answer: dict[str, Any]) -> int:
    print(f"restored .{answer['path']}: {answer['files']} files, {answer['dirs']} folders, "
          f"{answer['bytes']} bytes")
    for path in answer["skipped"]:
        print(f"  skipped .{path} (its folder or name is taken, or its content is unknown here)")
    return 1 if answer["skipped"] else 0


def cmd_undelete(args: argparse.Namespace) -> int:
    api, config = _api(args)
    body = {"path": _ns(config, args.path),
            "at": parse_time(args.at, "--at") if args.at else None,
            "as_path": _ns(config, args.as_path) if args.as_path else None}
    return _print_restored(api.call("POST", "/trash/undelete", body))


def cmd_versions(args: argparse.Namespace) -> int:
    api, config = _api(args, args.path)
    answer = api.call("GET", "/versions", query={"path": _ns(config, args.path)})
    if args.json:
        print(json.dumps(answer["versions"], indent=2))
        return 0
    for v in answer["versions"]:
        current = "  (current)" if v["hash"] == answer["current"] else ""
        print(f"{v['number']:>3}. {_when(v['time_ns'])}  {v['site']:<10} {v['size']:>12}{current}")
    if not answer["versions"]:
        print("no versions kept")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    api, config = _api(args)
    path = _ns(config, args.path)
    if args.version is not None:
        if args.as_path:
            raise BadInput("--as goes with --snapshot; a version is restored in place")
        answer = api.call("POST", "/versions/restore", {"path": path, "version": args.version})
        print(f"{args.path}: version {answer['version']} is current again ({answer['size']} "
              f"bytes); what it replaced is kept as a version")
        return 0
    body = {"path": path, "as_path": _ns(config, args.as_path) if args.as_path else None}
    return _print_restored(api.call("POST", f"/snapshots/{args.snapshot}/restore", body))


def cmd_snapshot_create(args: argparse.Namespace) -> int:
    api, _ = _api(args)
    answer = api.call("POST", "/snapshots", {"name": args.name}, timeout=600.0)
    print(f"snapshot {answer['name']}: {answer['files']} entries, {answer['size']} bytes listed")
    return 0


def cmd_snapshot_list(args: argparse.Namespace) -> int:
    api, _ = _api(args)
    answer = api.call("GET", "/snapshots")
    if args.json:
        print(json.dumps(answer["snapshots"], indent=2))
        return 0
    if not answer["snapshots"]:
        print("no snapshots")
    for s in answer["snapshots"]:
        print(f"{s['name']:<32} {_when(s['time_ns'])}  {s['site']:<10} {s['files']:>9} entries")
    return 0


def cmd_snapshot_delete(args: argparse.Namespace) -> int:
    api, _ = _api(args)
    answer = api.call("DELETE", f"/snapshots/{args.name}")
    print(f"deleted snapshot {answer['name']} (at every site)")
    return 0
