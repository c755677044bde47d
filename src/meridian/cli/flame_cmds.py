"""`meridian flame publish|versions|version-add|watch|cache|merge`: the tools of the Flame
workflow (docs/flame.md). They work on paths (a Meridian mount, or any directory);
`watch` and `cache` use the site's API when the path is on a Meridian mount."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from meridian.cli.locate import find_mount_root, locate_config, namespace_path
from meridian.errors import BadInput


def register(commands: Any) -> None:
    flame = commands.add_parser(
        "flame", help="Flame tools: Shot Publish, Open Clip versions, watch, cache, merge",
        description="Tools for Autodesk Flame's Shot Publish and Open Clip versioning across "
                    "sites. They work on any folder; on a Meridian mount `watch` follows the "
                    "site's event stream and `cache` uses the site's mover.")
    sub = flame.add_subparsers(dest="flame_command", metavar="COMMAND")
    sub.required = True

    publish = sub.add_parser("publish", help="publish a timeline's shots into a folder tree",
                             description="Read TIMELINE (CMX 3600 EDL, FCP 7 XML or .otio) and "
                                         "write, per shot, the folder tree, the plate frames, an "
                                         "Open Clip (v000 = the plate) and a Batch setup "
                                         "template; plus a sequence clip. Idempotent: what "
                                         "exists is kept, new shots are added. Exit 1 if some "
                                         "shots failed (listed).")
    publish.add_argument("timeline", metavar="TIMELINE")
    publish.add_argument("--root", required=True, metavar="DIR", help="publish root")
    publish.add_argument("--pattern", metavar="P", help="folder naming pattern (tokens <project> "
                         "<sequence> <shot> <version> <name>)")
    publish.add_argument("--media", metavar="DIR", help="where the source media are")
    publish.add_argument("--handles", type=int, default=0, metavar="N")
    publish.add_argument("--start-frame", type=int, default=1001, metavar="F")
    publish.add_argument("--shot-names", metavar="P", help="e.g. sh### (sh010, sh020, ...)")
    publish.add_argument("--project", metavar="NAME")
    publish.add_argument("--rate", type=float, default=24.0, metavar="FPS",
                         help="frame rate of an EDL (EDLs do not carry one; default 24)")
    publish.set_defaults(func=cmd_publish)

    versions = sub.add_parser("versions", help="list the versions of an Open Clip")
    versions.add_argument("clip", metavar="CLIP")
    versions.set_defaults(func=cmd_versions)

    add = sub.add_parser("version-add", help="append a version to an Open Clip (atomic)",
                         description="What a render farm's post-render hook calls: add a "
                                     "version whose frames are PATTERN "
                                     "(/abs/sh010_v001.[1001-1098].exr) and make it current.")
    add.add_argument("clip", metavar="CLIP")
    add.add_argument("--frames", required=True, metavar="PATTERN")
    add.add_argument("--name", metavar="vNNN", help="default: the next free vNNN")
    add.set_defaults(func=cmd_version_add)

    watch = sub.add_parser("watch", help="report new versions of the clips under ROOT",
                           description="Print e.g. 'sh010: new version v001 (from west, 0.31 s)' "
                                       "whenever a clip under ROOT gains a version at any site "
                                       "(from the site's event stream; ROOT must be on a "
                                       "Meridian mount). Conflict copies of clips are merged "
                                       "as they appear.")
    watch.add_argument("root", metavar="ROOT")
    watch.add_argument("--count", type=int, metavar="N", help="stop after N new versions")
    watch.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    watch.set_defaults(func=cmd_watch)

    cache = sub.add_parser("cache", help="fetch all frames of a version to this site",
                           description="Fetch every frame of the clip's current version (or "
                                       "--version) to this site's local volume, in parallel, "
                                       "with a progress bar.")
    cache.add_argument("clip", metavar="CLIP")
    cache.add_argument("--version", metavar="vNNN")
    cache.set_defaults(func=cmd_cache)

    merge = sub.add_parser("merge", help="merge conflict copies of clips under ROOT")
    merge.add_argument("root", metavar="ROOT")
    merge.set_defaults(func=cmd_merge)


def cmd_publish(args: argparse.Namespace) -> int:
    from meridian.flame.publish import DEFAULT_PATTERN, publish

    report = publish(Path(args.timeline), Path(args.root).absolute(),
                     pattern=args.pattern or DEFAULT_PATTERN,
                     media=Path(args.media) if args.media else None, handles=args.handles,
                     start_frame=args.start_frame, shot_names=args.shot_names,
                     project=args.project, rate=args.rate)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def cmd_versions(args: argparse.Namespace) -> int:
    from meridian.flame.openclip import OpenClip, scan_versions

    clip = OpenClip.read(args.clip)
    if clip.kind == "scan" and clip.scan_pattern:
        names = scan_versions(clip.scan_pattern, Path("/"))
        for name in names:
            print(name)
        return 0
    for version in clip.versions():
        mark = "*" if version.name == clip.current_version else " "
        paths = ", ".join(version.paths.values())
        print(f"{mark} {version.name}  {version.creation_date or ''}  {paths}")
    return 0


def cmd_version_add(args: argparse.Namespace) -> int:
    from meridian.flame.openclip import OpenClip

    clip = OpenClip.read(args.clip)
    name = clip.add_version(args.frames, name=args.name)
    clip.write(args.clip)
    print(f"{clip.name}: added {name} ({args.frames})")
    return 0


def _site_of(path: Path) -> tuple[Any, Path, str] | None:
    """(SiteApi, mount root, namespace path) when ``path`` is on a running Meridian site."""
    from meridian.cli.site_api import SiteApi

    found = find_mount_root(path)
    if found is None:
        return None
    config = locate_config(argparse.Namespace(config=None), str(path))
    return SiteApi(config), found[0], namespace_path(config, str(path))


def cmd_watch(args: argparse.Namespace) -> int:
    from meridian.flame.watch import ClipWatcher

    root = Path(args.root).absolute()
    site = _site_of(root)
    if site is None:
        raise BadInput(f"{root}: not on a Meridian mount (watch follows the site's events)")
    api, mount, namespace_root = site
    seen = 0

    def report(version: Any) -> None:
        nonlocal seen
        seen += 1
        print(version, flush=True)

    watcher = ClipWatcher(api.client, mount, namespace_root, report)
    watcher.prime()
    start = api.call("GET", "/site")["journal_last_seq"]
    deadline = time.monotonic() + args.timeout if args.timeout else None
    print(f"watching the clips under {root} (site {api.site})", file=sys.stderr, flush=True)
    while deadline is None or time.monotonic() < deadline:
        left = deadline - time.monotonic() if deadline else None
        for event in watcher.events(after=start, timeout=left):
            start = max(start, int(event.get("seq") or event.get("continue") or 0))
            watcher.handle(event)
            if args.count and seen >= args.count:
                return 0
    return 0 if not args.count or seen >= args.count else 1


def cmd_cache(args: argparse.Namespace) -> int:
    from meridian.flame.openclip import FramePattern, OpenClip

    clip = OpenClip.read(args.clip)
    wanted = args.version or clip.current_version
    version = next((v for v in clip.versions() if v.name == wanted), None)
    if version is None:
        raise BadInput(f"{args.clip}: no version {wanted!r}")
    frames = [f for pattern in version.paths.values() for f in FramePattern.parse(pattern).frames()]
    site = _site_of(Path(frames[0]).parent) if frames else None
    if site is None:
        print(f"{clip.name} {wanted}: {len(frames)} frames on a plain folder: nothing to fetch")
        return 0
    api, _, _ = site
    config = locate_config(argparse.Namespace(config=None), frames[0])
    paths = ["." + namespace_path(config, f) for f in frames]
    from meridian.cli.objective_cmds import follow_job
    job = api.call("POST", "/jobs", {"kind": "cache", "paths": paths})
    return follow_job(api, job, f"cache {clip.name} {wanted}")


def cmd_merge(args: argparse.Namespace) -> int:
    from meridian.flame.openclip import merge_conflicts

    notes = merge_conflicts(Path(args.root))
    for note in notes:
        print(note)
    if not notes:
        print("no conflict copies of clips")
    return 0
