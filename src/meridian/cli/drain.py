"""`meridian site drain` and `meridian site leave`: closing a site without losing anything.

drain waits, with progress, until everything written at this site is complete in the bucket
and every peer holds every change this site made. leave then tells each peer to stop pulling
from this site (a peer refuses if it does not hold all of them yet) and stops the running site;
its files stay readable everywhere, from the bucket.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from meridian.cli.locate import add_config_option, locate_config
from meridian.cli.progress import Progress
from meridian.errors import BadInput, MeridianError, PeerUnreachable
from meridian.meta.sqlite import SqliteMetaStore
from meridian.site.config import PeerConfig, SiteConfig
from meridian.site.trust import peer_endpoint
from meridian.sitecall import SiteClient


def register(site_commands: Any) -> None:
    drain = site_commands.add_parser(
        "drain", help="wait until this site's content is in the bucket and peers hold its changes",
        description="Wait, with progress, until every content written at this site is complete "
                    "in the bucket and every peer has pulled every change made here. The site "
                    "must be running (it does the uploading). Exit 0 when drained, 1 on "
                    "--timeout (what is left is listed), 3 if the site is not running.")
    add_config_option(drain)
    drain.add_argument("--timeout", type=float, default=3600, metavar="SECONDS",
                       help="give up after this long (default 3600)")
    drain.set_defaults(func=cmd_drain)
    leave = site_commands.add_parser(
        "leave", help="remove this drained site from the namespace and stop it",
        description="Check that the site is drained, tell every peer to stop pulling from it, "
                    "and stop the running site. Its files stay readable at every other site "
                    "from the bucket. Refused (exit 1) if the site is not drained.")
    add_config_option(leave)
    leave.set_defaults(func=cmd_leave)


def _call(config: SiteConfig, peer: PeerConfig, path: str,
          body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    """A call to ``peer`` with this site's credential for it (``meridian.sitecall``)."""
    with SiteClient(peer_endpoint(config, peer)) as client:
        return client.call("POST" if body is not None else "GET", path, body, timeout=timeout,
                           retries=0 if body is not None else 1)


def drain_state(config: SiteConfig) -> tuple[int, int, dict[str, int | str]]:
    """(uploads queued, changes made here, per peer: changes it still lacks or why unknown)."""
    meta = SqliteMetaStore(config.meta_path, config.name, read_only=True)
    try:
        uploads, made = meta.upload_count(), meta.applied_seq(config.name)
        departed = meta.departed()
    finally:
        meta.close()
    behind: dict[str, int | str] = {}
    for peer in config.peers:
        if peer.name in departed:
            continue
        try:
            held = int(_call(config, peer, "/replication")["positions"].get(config.name, 0))
            behind[peer.name] = max(0, made - held)
        except PeerUnreachable as exc:
            behind[peer.name] = f"unreachable: {exc}"
    return uploads, made, behind


def _running_pid(config: SiteConfig) -> int | None:
    from meridian.cli.site_cmds import read_run_file
    info = read_run_file(config.data)
    return int(info["pid"]) if info else None


def cmd_drain(args: argparse.Namespace) -> int:
    config = locate_config(args)
    if _running_pid(config) is None:
        print(f"meridian: site {config.name} is not running: start it (meridian site run) so "
              "it can upload and be pulled, then drain", file=sys.stderr)
        return 3
    deadline = time.monotonic() + args.timeout
    first = None
    progress = None
    while True:
        uploads, made, behind = drain_state(config)
        left = uploads + sum(v if isinstance(v, int) else 1 for v in behind.values())
        if first is None:
            first = left
            progress = Progress(f"draining {config.name}", first or None, "left")
        assert progress is not None
        progress.done = max(0, first - left)
        progress.advance(0)
        if left == 0:
            progress.close()
            print(f"site {config.name} is drained: nothing left to upload; "
                  + (", ".join(f"{p} holds all {made} changes" for p in behind) or "no peers"))
            return 0
        if time.monotonic() > deadline:
            progress.close()
            print(f"meridian: not drained after {args.timeout:.0f} s: {uploads} uploads queued; "
                  + "; ".join(f"{p}: {v} changes behind" if isinstance(v, int) else f"{p}: {v}"
                              for p, v in behind.items()), file=sys.stderr)
            return 1
        time.sleep(0.5)


def cmd_leave(args: argparse.Namespace) -> int:
    config = locate_config(args)
    if not config.peers:
        raise BadInput(f"site {config.name} has no peers: there is no namespace to leave")
    uploads, made, behind = drain_state(config)
    problems = [f"{uploads} uploads queued"] if uploads else []
    problems += [f"{p}: {v}" + (" changes behind" if isinstance(v, int) else "")
                 for p, v in behind.items() if v]
    if problems:
        raise MeridianError(f"site {config.name} is not drained ({'; '.join(problems)}): run "
                            "`meridian site drain` first")
    for peer in config.peers:
        if peer.name in behind:
            answer = _call(config, peer, f"/peers/{config.name}/leave", {"origin_seq": made})
            print(f"{peer.name}: stopped pulling from {config.name} (holds {answer['held']} "
                  "changes)")
    pid = _running_pid(config)
    if pid is not None:
        os.kill(pid, signal.SIGINT)
        for _ in range(600):
            if _running_pid(config) is None:
                break
            time.sleep(0.1)
    print(f"site {config.name} has left the namespace; its files stay readable at the other "
          f"sites from the bucket. {config.data} can be removed.")
    return 0
