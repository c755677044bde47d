"""A site's trust material, put together from its config: what it needs to call its peers
and itself, what ``meridian init`` makes, and how ``meridian up`` links sites of one machine.

- ``peer_endpoint``: how to call peer NAME (its URL, this site's credential for it, the CA).
- ``own_endpoint``: how this host's CLI calls the site itself (the admin credential).
- ``init_trust``: a new site's admin credential, and (first site of a namespace) the
  namespace CA with the site's own key and certificate.
- ``link_local``: sites on one machine become one namespace: each is given a certificate from
  the first site's CA, and every pair exchanges credentials (each issues one to the other).
"""

from __future__ import annotations

import functools
from pathlib import Path

from meridian.errors import BadInput
from meridian.site.config import PeerConfig, SiteConfig
from meridian.sitecall import SiteEndpoint
from meridian.trust.credentials import CredentialStore, PresentedCredentials
from meridian.trust.tls import host_names, make_namespace, reissue


def _ca(config: SiteConfig) -> Path | None:
    ca = config.tls.ca
    return ca if ca.exists() else None


def peer_endpoint(config: SiteConfig, peer: PeerConfig) -> SiteEndpoint:
    """Calling ``peer`` from the site of ``config``: the credential is read at each request."""
    presented = PresentedCredentials(config.secrets)
    return SiteEndpoint(peer.name, peer.url, functools.partial(presented.get, peer.name),
                        _ca(config))


def own_endpoint(config: SiteConfig, url: str) -> SiteEndpoint:
    """The CLI on this host calling its own site at ``url`` with the admin credential."""
    admin = config.secrets.admin_credential()
    return SiteEndpoint(config.name, url, lambda: admin, _ca(config))


def init_trust(config: SiteConfig, extra_hosts: tuple[str, ...] = (),
               namespace: bool = True) -> None:
    """A new site's admin credential and, with ``namespace`` (not joining) and TLS on, a new
    namespace CA and this site's key and certificate (``[api]`` files the operator set are
    left alone: the studio's CA)."""
    CredentialStore(config.secrets).issue_admin()
    if config.api is None or config.api.plain_http or not namespace:
        return
    files = config.tls
    if config.api.cert is not None or config.api.key is not None:
        for path in (files.cert, files.key, files.ca):
            if not path.exists():
                raise BadInput(f"[api] names {path}, which does not exist")
        return
    make_namespace(files, config.name, host_names(config.api.host, extra_hosts))


def link_local(configs: list[SiteConfig]) -> None:
    """Sites of this one machine become one namespace (``meridian up``, tests): every site
    gets a certificate from the first site's CA (once), and every pair of sites that has not
    yet exchanged credentials does so. Idempotent."""
    if not configs:
        return
    first = configs[0]
    for config in configs[1:]:
        if config.api is None or config.api.plain_http or first.api is None:
            continue
        if config.tls.ca.exists() and config.tls.ca.read_bytes() == first.tls.ca.read_bytes():
            continue
        reissue(config.tls, first.tls, config.name, host_names(config.api.host))
    for issuer in configs:
        issued = CredentialStore(issuer.secrets)
        for holder in configs:
            if holder is issuer:
                continue
            presented = PresentedCredentials(holder.secrets)
            if presented.get(issuer.name) is not None and holder.name in issued.peers():
                continue  # exchanged already (a resumed `up`)
            presented.put(issuer.name, issued.issue_peer(holder.name))
