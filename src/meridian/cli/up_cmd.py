"""``meridian up``: N sites on this one machine, with no set-up.

Each site's data lives in ``ROOT/<site>/``, its mount at ``ROOT/<site>/mnt``; all share one
bucket (``file://ROOT/bucket`` unless ``--bucket`` says otherwise). API ports are chosen free
on 127.0.0.1 when a site is first created and kept in its config; the sites speak TLS, with
certificates from the first site's namespace CA, and every pair exchanges credentials, as
sites on different hosts would (``meridian.site.trust.link_local``); every site lists the
others as peers. Each site runs as its own ``meridian site run``
process (one FUSE mount per process). When all are mounted, ``up`` prints the table, writes
``ROOT/up.json`` and prints ``ready``; Ctrl-C (or SIGTERM) stops every site and leaves no
mount and no process behind. Run again on the same ROOT, it resumes with the data it has.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meridian.errors import BadInput, MeridianError
from meridian.site import Site, load_config, parse_config, write_config
from meridian.site.config import PeerConfig, SiteConfig
from meridian.site.trust import init_trust, link_local, own_endpoint
from meridian.sitecall import SiteClient

MERIDIAN = [sys.executable, "-m", "meridian.cli.main"]
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def register(commands: Any) -> None:
    up = commands.add_parser(
        "up", help="run several sites on this machine (one mount each), linked as peers",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("--sites", required=True, metavar="A,B[,...]",
                    help="site names, comma-separated (e.g. east,west)")
    up.add_argument("--root", required=True, metavar="DIR", help="where the sites live")
    up.add_argument("--bucket", metavar="URL", help="shared bucket (default file://ROOT/bucket)")
    up.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint for an s3:// bucket")
    up.add_argument("--region", metavar="REGION", help="S3 region")
    up.add_argument("--plain-http", action="store_true",
                    help="new sites speak plain HTTP on loopback instead of TLS (to compare)")
    up.add_argument("--exports", metavar="nfs,smb", default="",
                    help="give every site these gateways on free ports (docs/gateways.md)")
    up.add_argument("--timeout", type=float, default=60.0,
                    help="seconds to wait for every site to mount (default 60)")
    up.set_defaults(func=cmd_up)


@dataclass
class LocalSite:
    config: SiteConfig
    mount: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def row(self) -> dict[str, Any]:
        row = {"site": self.name, "mount": str(self.mount), "config": str(self.config.path),
               "api": _api_url(self.config), "log": str(self.log_path),
               "pid": self.process.pid if self.process else None}
        for export in self.config.exports.enabled():
            row[export.protocol] = export.url()
        return row


def _api_url(config: SiteConfig) -> str:
    assert config.api is not None
    return f"{config.scheme}://{config.api.listen}/api/v1"


def free_port() -> int:
    """A free port of 127.0.0.1, from below the kernel's ephemeral range: a port from that
    range can be handed to an outgoing connection before the site starts and listens on it
    (the site would then stop with "Address already in use")."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    pick = random.SystemRandom()
    for _ in range(500):
        port = pick.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _parse_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BadInput("--sites: give at least one site name")
    for name in names:
        if not _NAME.match(name):
            raise BadInput(f"--sites: {name!r} is not a site name (lower-case letters, digits, - _)")
    if len(set(names)) != len(names):
        raise BadInput("--sites: a name is given twice")
    return names


def prepare(args: argparse.Namespace) -> list[LocalSite]:
    """Create the sites that do not exist yet, then wire every site to the others as peers."""
    root = Path(args.root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    bucket = args.bucket or f"file://{root / 'bucket'}"
    configs: dict[str, SiteConfig] = {}
    for name in _parse_names(args.sites):
        path = root / name / "meridian.toml"
        if path.exists():
            configs[name] = load_config(path)
            continue
        doc: dict[str, Any] = {
            "site": {"name": name, "data": str(root / name), "mount": str(root / name / "mnt")},
            "bucket": {"url": bucket},
            "volumes": [{"name": "local", "path": str(root / name / "volumes" / "local")}],
            "api": {"listen": f"127.0.0.1:{free_port()}",
                    **({"plain_http": True} if args.plain_http else {})},
        }
        if args.endpoint_url:
            doc["bucket"]["endpoint_url"] = args.endpoint_url
        if args.region:
            doc["bucket"]["region"] = args.region
        config = parse_config(doc, path)
        Site.initialize(config)
        init_trust(config)
        write_config(config, path)
        configs[name] = config
    wanted = _parse_exports(args.exports)
    for name, config in configs.items():
        missing = [p for p in wanted if getattr(config.exports, p) is None]
        if missing:
            doc = _doc_of(config)
            exports = doc.setdefault("exports", {})
            for protocol in missing:
                exports[protocol] = {"listen": f"127.0.0.1:{free_port()}",
                                     "clients": ["127.0.0.1"]}
                if protocol == "smb":
                    exports[protocol]["users"] = [_smb_user()]
            configs[name] = config = parse_config(doc, config.path)
            write_config(config, config.path or root / name / "meridian.toml")
    link_local(list(configs.values()))
    sites = []
    for name, config in configs.items():
        if config.api is None:
            raise BadInput(f"{config.path}: site {name} has no [api] section; `up` needs one")
        peers = tuple(PeerConfig(other.name, _api_url(other))
                      for other in configs.values() if other.name != name)
        if peers != config.peers:
            config = parse_config({**_doc_of(config), "peers": [vars(p) for p in peers]},
                                  config.path)
            write_config(config, config.path or root / name / "meridian.toml")
        sites.append(LocalSite(config, root / name / "mnt", root / name / "site.log"))
    return sites


def _parse_exports(text: str) -> list[str]:
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    for protocol in wanted:
        if protocol not in ("nfs", "smb"):
            raise BadInput(f"--exports: {protocol!r} is not an export (use nfs, smb or nfs,smb)")
    return wanted


def _smb_user() -> str:
    """The SMB user of sites made by ``up``: the first regular account of this host (the
    site's users must be Unix accounts), else ``nobody``."""
    import pwd

    regular = sorted((p.pw_uid, p.pw_name) for p in pwd.getpwall() if 1000 <= p.pw_uid < 60000)
    return regular[0][1] if regular else "nobody"


def _exports_ready(site: LocalSite) -> bool:
    from meridian.gateways import read_gateway_state

    wanted = {e.protocol for e in site.config.exports.enabled()}
    if not wanted:
        return True
    state = read_gateway_state(site.config)
    return all(state.get(p, {}).get("state") == "running" for p in wanted)


def _doc_of(config: SiteConfig) -> dict[str, Any]:
    import tomllib

    assert config.path is not None
    doc: dict[str, Any] = tomllib.loads(config.path.read_text())
    return doc


def _mounted(site: LocalSite) -> bool:
    try:
        info = json.loads((site.mount / ".meridian" / "site.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(info.get("site") == site.name)


def _linked(site: LocalSite) -> bool:
    """Every link of the site is up (asked through its own API)."""
    try:
        with SiteClient(own_endpoint(site.config, _api_url(site.config))) as client:
            links = client.call("GET", "/replication", timeout=2.0)["links"]
    except (MeridianError, KeyError):
        return False
    return all(link["connected"] for link in links)


def stop_all(sites: list[LocalSite], timeout: float = 30.0) -> None:
    """SIGINT every site, wait, and make sure no process and no mount is left."""
    for site in sites:
        if site.process is not None and site.process.poll() is None:
            site.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for site in sites:
        if site.process is None:
            continue
        try:
            site.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"site {site.name} did not stop within {timeout:.0f}s: killing it", file=sys.stderr)
            site.process.kill()
            site.process.wait()
        if f" {site.mount} " in Path("/proc/mounts").read_text():
            subprocess.run(["fusermount3", "-u", "-z", str(site.mount)], capture_output=True,
                           check=False)


def cmd_up(args: argparse.Namespace) -> int:
    sites = prepare(args)
    root = Path(args.root).absolute()
    up_json = root / "up.json"
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for site in sites:
            with open(site.log_path, "ab") as log:
                site.process = subprocess.Popen(
                    [*MERIDIAN, "site", "run", "--config", str(site.config.path), "--mount",
                     str(site.mount)], stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + args.timeout
        while not all(_mounted(s) and _linked(s) and _exports_ready(s) for s in sites):
            for site in sites:
                if site.process is not None and site.process.poll() is not None:
                    raise MeridianError(f"site {site.name} exited {site.process.returncode}; "
                                        f"see {site.log_path}")
            if stopping:
                return 130
            if time.monotonic() > deadline:
                raise MeridianError(f"not every site mounted and linked within {args.timeout:.0f}s; "
                                    "see the logs in each site's folder")
            time.sleep(0.05)
        rows = [site.row() for site in sites]
        print(f"{'site':<10} {'mount':<40} {'api':<36} config")
        for row in rows:
            print(f"{row['site']:<10} {row['mount']:<40} {row['api']:<36} {row['config']}")
            for protocol in ("nfs", "smb"):
                if protocol in row:
                    print(f"{'':<10} {protocol} export {row[protocol]}")
        tmp = up_json.with_suffix(".tmp")
        tmp.write_text(json.dumps({"root": str(root), "pid": os.getpid(), "sites": rows}, indent=2))
        tmp.replace(up_json)
        print("ready", flush=True)
        while not stopping:
            for site in sites:
                if site.process is not None and site.process.poll() is not None:
                    raise MeridianError(f"site {site.name} stopped unexpectedly "
                                        f"(exit {site.process.returncode}); see {site.log_path}")
            time.sleep(0.2)
        return 0
    finally:
        print("stopping every site", file=sys.stderr, flush=True)
        stop_all(sites)
        up_json.unlink(missing_ok=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def register_exec(commands: Any) -> None:
    run = commands.add_parser(
        "exec", help="run a command as if on a workstation of site S (its mount at the common path)",
        description="Run CMD in a private mount namespace (unshare -m, root) where site S's "
                    "mount (from ROOT/up.json, written by `meridian up`) is bind-mounted at the "
                    "common path, so absolute paths written at one site resolve at another.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--site", required=True, metavar="S")
    run.add_argument("--root", metavar="DIR", default=os.environ.get("MERIDIAN_ROOT"),
                     help="the ROOT given to `meridian up` (default $MERIDIAN_ROOT)")
    run.add_argument("--at", metavar="PATH", default="/mnt/meridian",
                     help="the common path (default /mnt/meridian)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    run.set_defaults(func=cmd_exec)


def cmd_exec(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise BadInput("exec: give a command after --")
    if not args.root:
        raise BadInput("exec: give --root DIR (the ROOT of `meridian up`) or set MERIDIAN_ROOT")
    up_json = Path(args.root).absolute() / "up.json"
    try:
        rows = json.loads(up_json.read_text())["sites"]
    except (OSError, ValueError, KeyError):
        raise MeridianError(f"{up_json}: no running `meridian up` there") from None
    mounts = {row["site"]: row["mount"] for row in rows}
    if args.site not in mounts:
        raise BadInput(f"exec: no site {args.site!r} in {up_json} (sites: {', '.join(mounts)})")
    at = str(Path(args.at).absolute())
    script = 'mkdir -p "$1" && mount --bind "$2" "$1" && shift 2 && exec "$@"'
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                             "sh", at, mounts[args.site], *cmd], check=False)
    return result.returncode
