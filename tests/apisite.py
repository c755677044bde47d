"""A site with its API on 127.0.0.1 (no mount), for tests of the API and of peers' calls:
TLS from its own namespace CA and an admin credential, as ``meridian init`` makes them."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from meridian.site import Site, parse_config
from meridian.site.trust import init_trust


def make_site(root: Path, name: str = "east", *, peers: list[dict[str, str]] | None = None,
              plain: bool = False, api: dict[str, Any] | None = None) -> Site:
    """A new site under ``root/name`` (bucket ``root/bucket``), opened, not started."""
    config = parse_config({"site": {"name": name, "data": str(root / name)},
                           "bucket": {"url": f"file://{root}/bucket"},
                           "api": {"listen": "127.0.0.1:0", **({"plain_http": True} if plain
                                                               else {}), **(api or {})},
                           "peers": peers or []})
    Site.initialize(config)
    init_trust(config)
    return Site.open(config)


def admin_auth(site: Site) -> dict[str, str]:
    return {"Authorization": f"Bearer {site.config.secrets.admin_credential()}"}


def ca_context(site: Site) -> ssl.SSLContext:
    """Verifies ``site``'s certificate (against its namespace CA)."""
    return ssl.create_default_context(cafile=str(site.config.tls.ca))
