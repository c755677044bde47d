"""``meridian init`` and ``meridian site run``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from meridian.cli.locate import add_config_option, locate_config
from meridian.errors import BadInput
from meridian.site import Site, SiteConfig, parse_config, write_config
from meridian.site.heap import freeze_startup_heap
from meridian.site.privacy import use_private_umask

log = logging.getLogger("meridian.cli")


def register(commands: Any) -> None:
    init = commands.add_parser(
        "init", help="create a new site: its config, store, volume and the bucket's format marker",
        description="Create a new site: write DATA/meridian.toml, prepare the metadata store and "
                    "the local volume, and make sure the bucket carries Meridian's format marker "
                    "(written if the bucket is new; a bucket of an unknown format is refused).")
    init.add_argument("--site", required=True, metavar="NAME", help="the site's name (e.g. east)")
    init.add_argument("--data", required=True, metavar="DIR",
                      help="the site's data folder (store, volume, config)")
    init.add_argument("--bucket", metavar="URL",
                      help="shared bucket: s3://bucket[/prefix] or file:///dir (with --join: "
                           "the joined site's unless given)")
    init.add_argument("--endpoint-url", metavar="URL",
                      help="S3 endpoint (private/VPC endpoint, MinIO, moto)")
    init.add_argument("--region", metavar="REGION", help="S3 region")
    init.add_argument("--capacity", metavar="SIZE",
                      help="local volume capacity, e.g. 500GiB (default: the disk)")
    init.add_argument("--mount", metavar="DIR", help="default mount point for `site run`")
    init.add_argument("--api-listen", metavar="HOST:PORT", default="127.0.0.1:0",
                      help="where the site's HTTP API listens (default 127.0.0.1:0, a free "
                           "port); it serves TLS with the key and certificate init makes")
    init.add_argument("--api-host", metavar="NAME", action="append", default=[],
                      help="a host name or address peers use to reach this site (repeatable): "
                           "written into its certificate beside this host's own names")
    init.add_argument("--plain-http", action="store_true",
                      help="no TLS (only with a loopback --api-listen, e.g. behind a proxy "
                           "that terminates TLS on this host)")
    init.add_argument("--join-file", metavar="FILE",
                      help="join an existing namespace with the invitation made by `meridian "
                           "peer invite` at one of its sites (FILE, or - for standard input); "
                           "the new site starts from that site's snapshot, then pulls its "
                           "journal")
    init.add_argument("--join", metavar="URL",
                      help="with --join-file: the inviting site's API URL, if it is reached "
                           "here under another address than the invitation says")
    init.add_argument("--token", metavar="TOKEN", help=argparse.SUPPRESS)
    init.set_defaults(func=cmd_init)

    site = commands.add_parser("site", help="run a site", description="Run or manage a site.")
    site_commands = site.add_subparsers(dest="site_command", metavar="COMMAND")
    site_commands.required = True
    run = site_commands.add_parser(
        "run", help="run the site in the foreground, mounted",
        description="Run the site in the foreground: mount it, upload new content to the bucket, "
                    "fetch content on first access, and log what it does. SIGINT or SIGTERM "
                    "unmounts cleanly and stops it. A stale mount left by a crash is detached "
                    "first.")
    add_config_option(run)
    run.add_argument("--mount", metavar="DIR", help="mount point (default: site.mount of the config)")
    run.set_defaults(func=cmd_site_run)
    admin = site_commands.add_parser(
        "new-admin-credential", help="replace the site's admin credential",
        description="Issue a new admin credential into DATA/secrets/admin.token (0600); the old "
                    "one stops working at once, on a running site too.")
    add_config_option(admin)
    admin.set_defaults(func=cmd_new_admin_credential)
    from meridian.cli import drain
    drain.register(site_commands)


def cmd_init(args: argparse.Namespace) -> int:
    use_private_umask()  # the site's folders, store and config are its own
    data = Path(args.data).absolute()
    config_path = data / "meridian.toml"
    if args.token is not None:
        raise BadInput("--token is gone: a secret on the command line is visible to every user "
                       "of this host (ps). Ask the site you join for an invitation (`meridian "
                       "peer invite NAME` there) and pass it with --join-file FILE, or "
                       "--join-file - to read it from standard input")
    if config_path.exists():
        raise BadInput(f"{config_path} exists: this folder already holds a site")
    if args.join and not args.join_file:
        raise BadInput("--join needs --join-file FILE (or - for standard input): the "
                       "invitation made by `meridian peer invite` at the site you join")
    if args.join_file:
        from meridian.cli.join import cmd_join
        return cmd_join(args, data, config_path)
    if not args.bucket:
        raise BadInput("--bucket is needed (s3://bucket[/prefix] or file:///dir), unless --join")
    bucket = args.bucket
    if bucket.startswith("file://") and not bucket.startswith("file:///"):
        bucket = "file://" + str(Path(bucket.removeprefix("file://")).absolute())
    doc: dict[str, Any] = {
        "site": {"name": args.site, "data": str(data)},
        "bucket": {"url": bucket},
        "volumes": [{"name": "local", "path": str(data / "volumes" / "local")}],
        "api": {"listen": args.api_listen},
    }
    if args.plain_http:
        doc["api"]["plain_http"] = True
    if args.mount:
        doc["site"]["mount"] = str(Path(args.mount).absolute())
    if args.endpoint_url:
        doc["bucket"]["endpoint_url"] = args.endpoint_url
    if args.region:
        doc["bucket"]["region"] = args.region
    if args.capacity:
        doc["volumes"][0]["capacity"] = args.capacity
    config: SiteConfig = parse_config(doc, config_path)
    Site.initialize(config)
    from meridian.site.trust import init_trust
    init_trust(config, tuple(args.api_host))
    write_config(config, config_path)
    print(f"site {config.name} created: config {config_path}; admin credential "
          f"{config.secrets.admin}" + ("" if config.api and config.api.plain_http else
                                       f"; namespace CA {config.tls.ca}"))
    print(f"run it with: meridian site run --config {config_path} --mount DIR")
    return 0


def cmd_new_admin_credential(args: argparse.Namespace) -> int:
    from meridian.trust.credentials import CredentialStore

    config = locate_config(args)
    CredentialStore(config.secrets).issue_admin()
    print(f"site {config.name}: a new admin credential is in {config.secrets.admin}; the old "
          "one no longer works")
    return 0


def cmd_site_run(args: argparse.Namespace) -> int:
    config = locate_config(args)
    mount = Path(args.mount).absolute() if args.mount else config.mount
    if mount is None:
        raise BadInput("no mount point: give --mount DIR or set site.mount in the config")
    config = dataclasses.replace(config, mount=mount)
    use_private_umask()  # every file the running site makes is its own
    log.info("starting site %s (config %s)", config.name, config.path)
    site = Site.open(config)
    run_file = config.data / RUN_FILE
    try:
        asyncio.run(run_site(site, mount, run_file))
    finally:
        run_file.unlink(missing_ok=True)
        site.close()
    return 0


async def run_site(site: Site, mount: Path, run_file: Path) -> None:
    """The site's API (if configured) and its mount, on one loop, until a signal."""
    from meridian.api import ApiServer
    from meridian.gateways import Gateways
    from meridian.mount import serve

    api = None
    if site.config.api is not None:
        api = ApiServer(site)
        await api.start()
    gateways = Gateways(site.config, Path(os.path.realpath(mount)))

    async def started() -> None:
        if gateways:
            await gateways.start()
        freeze_startup_heap()  # the site is up: spare the loop the collector's long pauses

    try:
        write_run_file(run_file, mount, api.url if api else None)
        await serve(site, mount, after_mount=started,
                    before_unmount=gateways.stop if gateways else None)
    finally:
        if api is not None:
            await api.stop()


RUN_FILE = "run.json"


def write_run_file(path: Path, mount: Path, api_url: str | None) -> None:
    """Say that this process runs the site, where it is mounted and where its API answers
    (``status`` and tests read it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "mount": str(mount), "api": api_url,
                               "started": time.time()}))
    tmp.replace(path)


def read_run_file(data: Path) -> dict[str, Any] | None:
    """The running site's pid and mount, or None when no live process runs it."""
    try:
        info: dict[str, Any] = json.loads((data / RUN_FILE).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info
