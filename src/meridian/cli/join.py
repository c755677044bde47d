"""`meridian init --site NAME --join-file FILE`: a new site that starts from a peer's namespace.

The invitation (made by ``meridian peer invite NAME`` at a site of the namespace, read from a
file or standard input, never from the command line) holds the inviting site's URL, a one-time
join credential for NAME that expires, and the namespace's CA certificate, so the very first
connection is verified. The new site makes its key and certificate request and a credential
for the inviting site, and sends them with the join credential (``POST /api/v1/join``); it gets
back its certificate and its own credential there. Then the inviting site's store comes over in
one bulk transfer (``GET /api/v1/snapshot``, a SQLite file), becomes this site's store under a
new identity, and the site pulls the peer's journal from the position the snapshot holds.
Content is not copied: it is read from the bucket (or the peer) on first access, like at any
site. The config is written last; a join that died after ``POST join`` (its credential spent)
is resumed by the same command, with the certificate and credential it was given.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from meridian.cli.progress import Progress
from meridian.errors import BadInput, MeridianError, PeerUnreachable
from meridian.meta.sqlite import SqliteMetaStore
from meridian.site import Site
from meridian.site.config import SiteConfig, parse_config, write_config
from meridian.sitecall import CallRefused, SiteClient, SiteEndpoint, check_site_url
from meridian.trust.credentials import (
    CredentialStore,
    PresentedCredentials,
    SecretsDir,
    read_secret_input,
)
from meridian.trust.tls import TlsFiles, check_ca_pem, host_names, install, new_request
from meridian.testpoints import reached

INVITATION_FORMAT = 1


def read_invitation(source: str) -> dict[str, Any]:
    """The invitation in ``source`` (a file, or ``-``: standard input). Raises BadInput."""
    text = read_secret_input(source, "--join-file")
    try:
        invitation = json.loads(text)
        if invitation.get("meridian_invitation") != INVITATION_FORMAT:
            raise ValueError("not a Meridian invitation (format 1)")
        for key in ("site", "url", "for", "credential", "ca"):
            if not isinstance(invitation.get(key), str) or not invitation[key]:
                raise ValueError(f"{key!r} missing")
    except (ValueError, AttributeError) as exc:
        raise BadInput(f"--join-file {source}: not an invitation made by `meridian peer "
                       f"invite` ({exc})") from None
    check_ca_pem(invitation["ca"].encode())
    return dict(invitation)


def cmd_join(args: Any, data: Path, config_path: Path) -> int:
    invitation = read_invitation(args.join_file)
    if invitation["for"] != args.site:
        raise BadInput(f"--site {args.site}: this invitation is for a site named "
                       f"{invitation['for']!r}")
    base = check_site_url(args.join or invitation["url"], "--join")
    started = time.monotonic()
    staging = data.parent / f".{data.name}.join-ca.pem"
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.write_text(invitation["ca"])
    credential = invitation["credential"]
    # a join that died after POST join (its credential spent) resumes with what it was given
    earlier = PresentedCredentials(SecretsDir(data)).get(invitation["site"])
    resuming = earlier is not None and TlsFiles.default(data).cert.exists()
    endpoint = SiteEndpoint(invitation["site"], base, lambda: earlier if resuming else credential,
                            staging)
    try:
        with SiteClient(endpoint) as client:
            try:
                peer: dict[str, Any] = client.call("GET", "/site", retries=2)
            except CallRefused:
                raise PeerUnreachable(f"{base}: the site refused the join credential (expired, "
                                      "used already, or not issued by it): ask for a new "
                                      "invitation") from None
            config = _config(args, data, config_path, peer, base)
            created = not data.exists()
            try:
                return _join(args, config, client, peer, base, staging, started, resuming)
            except BaseException:
                if created:  # a refused join leaves no half-made site
                    shutil.rmtree(data, ignore_errors=True)
                raise
    finally:
        staging.unlink(missing_ok=True)


def _config(args: Any, data: Path, config_path: Path, peer: dict[str, Any],
            base: str) -> SiteConfig:
    doc: dict[str, Any] = {
        "site": {"name": args.site, "data": str(data)},
        "bucket": {"url": args.bucket or peer["bucket"]},
        "volumes": [{"name": "local", "path": str(data / "volumes" / "local")}],
        "api": {"listen": args.api_listen},
        "peers": [{"name": peer["site"], "url": base}],
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
    if args.plain_http:
        doc["api"]["plain_http"] = True
    config: SiteConfig = parse_config(doc, config_path)
    if config.name == peer["site"]:
        raise BadInput(f"--site {config.name}: that is the name of the site you join")
    return config


def _join(args: Any, config: SiteConfig, client: SiteClient, peer: dict[str, Any], base: str,
          staging: Path, started: float, resuming: bool) -> int:
    assert config.api is not None and config.path is not None
    Site.initialize(config)  # folders, and the bucket's format marker checked
    if not resuming:
        accepted = CredentialStore(config.secrets)
        accepted.issue_admin()
        for_peer = accepted.issue_peer(peer["site"])
        key, csr = new_request(config.name, host_names(config.api.host, tuple(args.api_host)))
        try:
            answer = client.call("POST", "/join", {"site": config.name, "csr": csr.decode(),
                                                   "credential": for_peer})
        except CallRefused as exc:
            raise PeerUnreachable(f"{base}: the join was refused: {exc}") from None
        if answer.get("ca", "").strip() != staging.read_text().strip():
            raise MeridianError(f"{peer['site']} answered with another CA than its invitation's")
        install(config.tls, key, str(answer["certificate"]).encode(), str(answer["ca"]).encode())
        PresentedCredentials(config.secrets).put(peer["site"], str(answer["credential"]))
    download = config.data / "tmp" / "join-snapshot.db"
    download.parent.mkdir(parents=True, exist_ok=True)
    member = SiteEndpoint(peer["site"], base,
                          lambda: PresentedCredentials(config.secrets).get(peer["site"]),
                          config.tls.ca)
    with SiteClient(member) as snapshots, open(download, "wb") as out:
        progress = Progress(f"snapshot of {peer['site']}", None, "bytes")

        def write(chunk: bytes) -> None:
            out.write(chunk)
            progress.advance(len(chunk))

        snapshots.download("/snapshot", write)
        progress.close()
    reached("join.downloaded")
    store = SqliteMetaStore.adopt_snapshot(download, config.meta_path, config.name, peer["site"])
    try:
        inodes, position = store.count_inodes(), store.peer_position(peer["site"])
        reached("join.adopted")  # the store is the new site's (still open); no config yet
    finally:
        store.close()
    write_config(config, config.path)
    took = time.monotonic() - started
    print(f"site {config.name} joined {peer['site']}'s namespace: {inodes} inodes in "
          f"{took:.1f} s; it pulls {peer['site']}'s journal from entry {position}")
    print(f"config {config.path}; run it with: meridian site run --config {config.path} "
          "--mount DIR")
    print(f"{peer['site']} holds a credential for {config.name} already; so that it pulls from "
          f"{config.name} too, run there: meridian peer add {config.name} "
          f"<{config.name}'s API URL, e.g. https://HOST:PORT/api/v1>")
    return 0
