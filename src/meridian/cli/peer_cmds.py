"""``meridian peer``: the credentials a site exchanges with its peers.

- ``peer invite NAME``: a one-time join credential for a new site NAME (expires; default one
  hour), written with this site's URL and the namespace CA certificate into an invitation
  file (0600) for ``meridian init --join-file``.
- ``peer add NAME URL``: NAME becomes a peer: this site issues NAME a credential (written to
  ``--issued-out FILE``, 0600, or printed once) unless it holds one already, stores the
  credential NAME issued to it (``--credential-file FILE``, ``-`` for standard input) and
  lists NAME in ``[[peers]]``. Two sites each run it once: the first prints what the second
  passes with ``--credential-file``, and the second's output goes back to the first (run
  ``peer add`` again there with ``--credential-file``; nothing is issued twice).
- ``peer remove NAME``: NAME's credentials here stop at once (a running site reads the change
  at its next request), this site forgets the one it presented, and NAME leaves ``[[peers]]``.
- ``peer rotate NAME``: this site trades the credential it presents to NAME for a new one
  (``POST peers/<this site>/rotate`` at NAME); the old one stays valid there ``--grace``
  seconds, so links never stop, and the running site presents the new one from its next
  request. Run it again within the grace if it was interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from meridian.cli.locate import add_config_option, locate_config
from meridian.errors import BadInput
from meridian.site.config import PeerConfig, SiteConfig, parse_config, write_config
from meridian.sitecall import SiteClient, check_site_url
from meridian.trust.credentials import CredentialStore, PresentedCredentials, read_secret_input


def register(commands: Any) -> None:
    peer = commands.add_parser("peer", help="exchange, rotate and revoke peers' credentials",
                               description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = peer.add_subparsers(dest="peer_command", metavar="COMMAND")
    sub.required = True
    invite = sub.add_parser("invite", help="an invitation for a new site to join")
    invite.add_argument("name", metavar="NAME", help="the joining site's name")
    invite.add_argument("--expires", type=float, default=3600, metavar="SECONDS",
                        help="the join credential's life (default 3600)")
    invite.add_argument("--url", metavar="URL",
                        help="this site's API URL as the new site reaches it (default: the "
                             "running site's)")
    invite.add_argument("--out", metavar="FILE", help="write it there (0600; default stdout)")
    add_config_option(invite)
    invite.set_defaults(func=cmd_invite)
    add = sub.add_parser("add", help="make NAME a peer: exchange credentials")
    add.add_argument("name", metavar="NAME")
    add.add_argument("url", metavar="URL", help="NAME's API URL (https://HOST:PORT/api/v1)")
    add.add_argument("--credential-file", metavar="FILE",
                     help="the credential NAME issued to this site (FILE, or - for stdin)")
    add.add_argument("--issued-out", metavar="FILE",
                     help="write the credential issued to NAME there (0600; default stdout)")
    add_config_option(add)
    add.set_defaults(func=cmd_add)
    remove = sub.add_parser("remove", help="revoke NAME's credentials and forget the peer")
    remove.add_argument("name", metavar="NAME")
    add_config_option(remove)
    remove.set_defaults(func=cmd_remove)
    rotate = sub.add_parser("rotate", help="trade this site's credential at NAME for a new one")
    rotate.add_argument("name", metavar="NAME")
    rotate.add_argument("--grace", type=float, default=600, metavar="SECONDS",
                        help="how long NAME still accepts the old one (default 600)")
    add_config_option(rotate)
    rotate.set_defaults(func=cmd_rotate)


def _check_name(config: SiteConfig, name: str) -> None:
    # the config's own rules for a peer's name, without writing anything
    parse_config({"site": {"name": config.name, "data": str(config.data)},
                  "bucket": {"url": "memory://x"},
                  "peers": [{"name": name, "url": "https://check.invalid/api/v1"}]})


def _write_new(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def cmd_invite(args: argparse.Namespace) -> int:
    config = locate_config(args)
    _check_name(config, args.name)
    if args.name in {p.name for p in config.peers}:
        raise BadInput(f"{args.name} is a peer already: a joining site needs a new name")
    tls = config.tls
    if config.api is None or config.api.plain_http:
        raise BadInput(f"site {config.name} serves no TLS: it cannot invite (sites join over TLS)")
    if tls.ca_key is None or not tls.ca_key.exists():
        raise BadInput(f"site {config.name} does not hold the namespace CA key: invite from "
                       "the site that made the namespace")
    url = args.url
    if url is None:
        from meridian.cli.site_cmds import read_run_file
        running = read_run_file(config.data)
        if running is None or not running.get("api"):
            raise BadInput(f"site {config.name} is not running: give --url (its API URL as the "
                           "new site reaches it)")
        url = str(running["api"])
    url = check_site_url(url, "--url")
    credential = CredentialStore(config.secrets).issue_join(args.name, args.expires)
    invitation = json.dumps({"meridian_invitation": 1, "site": config.name, "url": url,
                             "for": args.name, "credential": credential,
                             "expires": round(time.time() + args.expires),
                             "ca": tls.ca.read_text()}, indent=1) + "\n"
    if args.out:
        _write_new(args.out, invitation)
        print(f"invitation for {args.name} in {args.out} (valid {args.expires:.0f} s, once): "
              f"there, run meridian init --site {args.name} --data DIR --join-file FILE",
              file=sys.stderr)
    else:
        sys.stdout.write(invitation)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    config = locate_config(args)
    _check_name(config, args.name)
    url = check_site_url(args.url, "URL")
    presented = read_secret_input(args.credential_file, "--credential-file") \
        if args.credential_file else None
    accepted = CredentialStore(config.secrets)
    issued = None
    if args.name not in accepted.peers():
        issued = accepted.issue_peer(args.name)
    if presented is not None:
        PresentedCredentials(config.secrets).put(args.name, presented)
    peers = [p for p in config.peers if p.name != args.name] + [PeerConfig(args.name, url)]
    assert config.path is not None
    write_config(_with_peers(config, peers), config.path)
    holds = PresentedCredentials(config.secrets).get(args.name) is not None
    print(f"{args.name} ({url}) is a peer of {config.name}"
          + ("" if holds else f"; it pulls from {args.name} once given {args.name}'s "
                              "credential (--credential-file)")
          + "; restart the site to start its link", file=sys.stderr)
    if issued is not None:
        if args.issued_out:
            _write_new(args.issued_out, issued + "\n")
            print(f"credential for {args.name} in {args.issued_out}: at {args.name}, run "
                  f"meridian peer add {config.name} URL --credential-file FILE", file=sys.stderr)
        else:
            print(f"credential for {args.name} (shown once; at {args.name}, pass it to "
                  f"`meridian peer add {config.name} URL --credential-file -`):",
                  file=sys.stderr)
            print(issued)
    return 0


def _with_peers(config: SiteConfig, peers: list[PeerConfig]) -> SiteConfig:
    import dataclasses
    return dataclasses.replace(config, peers=tuple(peers))


def cmd_remove(args: argparse.Namespace) -> int:
    config = locate_config(args)
    revoked = CredentialStore(config.secrets).revoke(args.name)
    forgot = PresentedCredentials(config.secrets).remove(args.name)
    listed = args.name in {p.name for p in config.peers}
    if not (revoked or forgot or listed):
        raise BadInput(f"{args.name} is not a peer of site {config.name}")
    if listed:
        assert config.path is not None
        write_config(_with_peers(config, [p for p in config.peers if p.name != args.name]),
                     config.path)
    print(f"{args.name}: {revoked} credential(s) revoked at {config.name}"
          + ("; this site's credential for it forgotten" if forgot else "")
          + ("; removed from [[peers]]" if listed else ""))
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from meridian.site.trust import peer_endpoint

    config = locate_config(args)
    peer = next((p for p in config.peers if p.name == args.name), None)
    if peer is None:
        raise BadInput(f"{args.name} is not in [[peers]] of site {config.name}")
    with SiteClient(peer_endpoint(config, peer)) as client:
        answer = client.call("POST", f"/peers/{config.name}/rotate", {"grace": args.grace})
    PresentedCredentials(config.secrets).put(args.name, str(answer["credential"]))
    print(f"{config.name} presents a new credential to {args.name}; {args.name} accepts the "
          f"old one {args.grace:.0f} s more")
    return 0

