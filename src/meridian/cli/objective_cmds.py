"""`meridian objective add|list|remove|move|test|explain`, `meridian cache`, `meridian evict`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from meridian.cli.locate import add_config_option, locate_config, namespace_path
from meridian.cli.progress import Progress
from meridian.cli.site_api import SiteApi
from meridian.errors import BadInput
from meridian.objectives.language import DEFAULT_GROUPS, FileFacts, parse, resolve
from meridian.site.config import parse_size

TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def register(commands: Any) -> None:
    objective = commands.add_parser(
        "objective", help="manage this site's Objectives (where content must be)",
        description="Objectives say where the content of matching files must be, e.g. "
                    "IF FNMATCH(\"./hs-mount/project/*/flame/*.clip\",PATH) THEN "
                    "{SLO('place-on-local-volumes')}. See docs/objectives.md.")
    sub = objective.add_subparsers(dest="objective_command", metavar="COMMAND")
    sub.required = True

    add = sub.add_parser("add", help="append rules at the end of the site's list",
                         description="Append one rule (RULE), the rules of a file (--file; "
                                     "separated by blank lines), or the named form (--slo NAME "
                                     "--when COND). Every rule is checked first: a refused rule "
                                     "changes nothing (exit 2, with line:column). Then the "
                                     "existing tree is swept, with a progress bar.")
    add.add_argument("rule", nargs="?", metavar="RULE")
    add.add_argument("--file", metavar="F", help="rules separated by blank lines")
    add.add_argument("--slo", metavar="NAME", help="named form: this SLO ...")
    add.add_argument("--when", metavar="COND", help="... applies when COND (?TRUE accepted)")
    add.add_argument("--no-wait", action="store_true", help="do not wait for the sweep")
    add_config_option(add)
    add.set_defaults(func=cmd_add)

    listing = sub.add_parser("list", help="the site's rules, in order, with their ids")
    listing.add_argument("--json", action="store_true")
    add_config_option(listing)
    listing.set_defaults(func=cmd_list)

    remove = sub.add_parser("remove", help="remove a rule by id")
    remove.add_argument("id")
    add_config_option(remove)
    remove.set_defaults(func=cmd_remove)

    move = sub.add_parser("move", help="reorder: put a rule before another (first wins)")
    move.add_argument("id")
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--before", metavar="ID2")
    where.add_argument("--last", action="store_true", help="to the end of the list")
    add_config_option(move)
    move.set_defaults(func=cmd_move)

    test = sub.add_parser(
        "test", help="evaluate one rule against a described file (no site, no side effects)",
        description="Evaluate RULE against a file described by the options and print the SLOs "
                    "that apply (or that none do); exit 0. A bad rule exits 2 with line:column.")
    test.add_argument("rule", metavar="RULE")
    test.add_argument("--path", required=True, metavar="P", help="namespace path, e.g. ./a/b.clip")
    test.add_argument("--size", default="0", metavar="N", help="bytes, or with a unit: 4MiB")
    test.add_argument("--origin", default="", metavar="SITE", help="site that wrote the content")
    test.add_argument("--site", default="here", metavar="SITE",
                      help="the site evaluating (for DATA_ORIGIN_LOCAL; default 'here')")
    test.add_argument("--kind", choices=("file", "directory", "symlink"), default="file")
    test.add_argument("--modify-age", default="0", metavar="AGE", help="e.g. 90, 30m, 2d")
    test.add_argument("--access-age", default="0", metavar="AGE")
    test.add_argument("--create-age", default="0", metavar="AGE")
    test.add_argument("--owner", default="0", metavar="UID|NAME")
    test.add_argument("--owner-group", default="0", metavar="GID|NAME")
    test.add_argument("--open", action="store_true", help="the file is open")
    test.add_argument("--group", action="append", default=[], metavar="NAME",
                      help="a volume group besides local-volumes and shared-object-volumes")
    test.set_defaults(func=cmd_test)

    explain = sub.add_parser("explain", help="every rule of the running site against a path")
    explain.add_argument("path", metavar="P", help="a path in the mount, or ./a/b")
    explain.add_argument("--json", action="store_true")
    add_config_option(explain)
    explain.set_defaults(func=cmd_explain)

    for kind, helptext in (("cache", "fetch content to this site's local volume"),
                           ("evict", "remove local instances (never the only, a pinned or an "
                                     "open one)")):
        job = commands.add_parser(
            kind, help=helptext,
            description=f"{helptext[0].upper()}{helptext[1:]}: PATHs are files, directories "
                        "(recursive) or globs (./shots/*/plates); paths in the mount or ./a/b. "
                        "Parallel, with a progress bar and a summary. Exit 1 if some failed.")
        job.add_argument("paths", nargs="+", metavar="PATH")
        job.add_argument("--json", action="store_true")
        add_config_option(job)
        job.set_defaults(func=cmd_job, kind=kind)


# -- site-side commands ---------------------------------------------------------------------
def _api(args: argparse.Namespace, path: str | None = None) -> tuple[SiteApi, Any]:
    config = locate_config(args, path)
    return SiteApi(config), config


def cmd_add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"rules": []}
    if args.rule:
        body["rules"].append(args.rule)
    if args.file:
        try:
            body["rules"].append(Path(args.file).read_text())
        except OSError as exc:
            raise BadInput(f"--file {args.file}: {exc.strerror}") from None
    if args.slo or args.when:
        body["slo"], body["when"] = args.slo, args.when
    if not body["rules"] and "slo" not in body:
        raise BadInput("give a RULE, --file F, or --slo NAME --when COND")
    api, _ = _api(args)
    answer = api.call("POST", "/objectives", body)
    for rule_id in answer["ids"]:
        print(f"added {rule_id}")
    if not args.no_wait:
        _follow_sweep(api)
    return 0


def _follow_sweep(api: SiteApi) -> None:
    state = api.call("GET", "/objectives/sweep")
    progress = Progress("sweeping the tree", int(state["total"]) or None, "files")
    while state["running"]:
        progress.done = int(state["done"])
        progress.advance(0)
        time.sleep(0.2)
        state = api.call("GET", "/objectives/sweep")
    progress.done = int(state["done"])
    progress.close()
    print(f"swept {state['total']} files")


def cmd_list(args: argparse.Namespace) -> int:
    api, config = _api(args)
    answer = api.call("GET", "/objectives")
    if args.json:
        print(json.dumps(answer["objectives"], indent=2))
        return 0
    if not answer["objectives"]:
        print(f"site {config.name} has no objectives")
    for rule in answer["objectives"]:
        text = " ".join(rule["text"].split())
        print(f"{rule['position']:>3}. {rule['id']:<6} {text}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    api, _ = _api(args)
    answer = api.call("DELETE", f"/objectives/{args.id}")
    print(f"removed {answer['removed']}: {' '.join(answer['text'].split())}")
    return 0


def cmd_move(args: argparse.Namespace) -> int:
    api, _ = _api(args)
    answer = api.call("POST", f"/objectives/{args.id}/move", {"before": args.before})
    for rule in answer["objectives"]:
        print(f"{rule['position']:>3}. {rule['id']:<6} {' '.join(rule['text'].split())}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    api, config = _api(args, args.path)
    path = "." + namespace_path(config, args.path)
    answer = api.call("GET", "/objectives/explain", query={"path": path})
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"{answer['path']} at site {answer['site']}:")
    if not answer["rules"]:
        print("  no objectives at this site")
    for rule in answer["rules"]:
        verdict = "matches" if rule["matched"] else "does not match"
        print(f"  {rule['id']:<6} {verdict}: {rule['why']}")
        if rule["slos"]:
            print(f"         SLOs: {', '.join(rule['slos'])}")
        if rule["overridden"]:
            print(f"         overridden by an earlier rule: {', '.join(rule['overridden'])}")
    placement = ", ".join(answer["placement"]) or "none (default: uploaded to the bucket)"
    print(f"placement: {placement}")
    if answer["alignment"]:
        state = answer["alignment"]
        print(f"alignment: {state['state']}" + (f" ({state['reason']})" if state["reason"] else ""))
    print(f"local: {'yes' if answer['local'] else 'no'}; pinned: {'yes' if answer['pinned'] else 'no'}")
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    api, config = _api(args, args.paths[0])
    paths = []
    for raw in args.paths:
        paths.append("." + namespace_path(config, raw) if not raw.startswith("./") else raw)
    job = api.call("POST", "/jobs", {"kind": args.kind, "paths": paths})
    return follow_job(api, job, args.kind, as_json=args.json)


def follow_job(api: SiteApi, job: dict[str, Any], label: str, as_json: bool = False) -> int:
    """Show a cache/evict job's progress until it ends, then its summary; exit code 1 if some
    files failed (each listed)."""
    progress = Progress(label, int(job["total"]) or None, "files")
    while job["running"]:
        progress.done = int(job["done"])
        progress.advance(0)
        time.sleep(0.2)
        job = api.call("GET", f"/jobs/{job['id']}")
    progress.done = int(job["done"])
    progress.close()
    if as_json:
        print(json.dumps(job, indent=2))
    else:
        verb = "fetched" if job["kind"] == "cache" else "freed"
        print(f"{label}: {job['total']} files, {verb} {job['bytes'] / 1e6:.1f} MB, "
              f"{len(job['failed'])} failed, {len(job['skipped'])} skipped")
        for item in job["skipped"]:
            print(f"  skipped {item['path']}: {item['reason']}")
        for item in job["failed"]:
            print(f"  FAILED {item['path']}: {item['error']}", file=sys.stderr)
    return 1 if job["failed"] else 0


# -- objective test: no site at all ---------------------------------------------------------
def _age(text: str, option: str) -> float:
    text = text.strip().lower()
    try:
        if text and text[-1] in TIME_UNITS:
            return float(text[:-1]) * TIME_UNITS[text[-1]]
        return float(text)
    except ValueError:
        raise BadInput(f"{option} {text!r}: give seconds, or a number with s, m, h, d or w") from None


def _id_or_name(text: str) -> tuple[int, str | None]:
    return (int(text), None) if text.isdigit() else (-1, text)


def cmd_test(args: argparse.Namespace) -> int:
    groups = tuple(dict.fromkeys([*DEFAULT_GROUPS, *args.group]))
    rule = parse(args.rule, groups)
    path = args.path if args.path.startswith("./") else "./" + args.path.lstrip("/")
    if ".." in path.split("/"):
        raise BadInput(f"--path {args.path}: '..' is not allowed")
    now = time.time()
    uid, owner = _id_or_name(args.owner)
    gid, group = _id_or_name(args.owner_group)
    facts = FileFacts(
        path=path, size=0 if args.size.strip() == "0" else parse_size(args.size, "--size"),
        kind=args.kind,
        mtime=now - _age(args.modify_age, "--modify-age"),
        atime=now - _age(args.access_age, "--access-age"),
        ctime=now - _age(args.create_age, "--create-age"),
        uid=uid, gid=gid, owner=owner, group=group, is_open=args.open,
        origin_site=args.origin, this_site=args.site, now=now)
    placement = resolve([("rule", rule)], facts)
    result = placement.results[0]
    if placement.slos:
        for slo in placement.slos:
            print(slo.name)
    else:
        print("no SLO applies")
    print(f"  ({result.evaluation.why})", file=sys.stderr)
    return 0
