"""Routes a peer calls about itself: leave, rotate its credential, join.

- ``POST peers/{name}/leave``: site ``name`` leaves (only with ``name``'s own credential; the
  guard answers 403 to anyone else, and so does the route, in case the table changes).
- ``POST peers/{name}/rotate``: ``name`` trades the credential it presents here for a new one;
  the old one stays valid ``grace`` seconds more, so its links never stop (docs/security.md).
- ``POST join``: with a one-time join credential issued for it (``meridian peer invite``), a
  new site sends its certificate request and the credential it issued to this site; it gets
  back its certificate (signed by the namespace CA, whose key only the first site holds), the
  CA certificate, and its own peer credential here. The join credential is spent by the first
  success; a refused join spends nothing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from meridian.errors import BadInput
from meridian.sitecall.client import check_site_url
from meridian.trust.credentials import CredentialStore, PresentedCredentials
from meridian.trust.tls import sign_request

if TYPE_CHECKING:
    from meridian.site import Site

MAX_GRACE = 7 * 86400.0
_SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class LeaveRequest(BaseModel):
    origin_seq: int = Field(ge=0)  # how many changes the leaving site made (its own count)


class RotateRequest(BaseModel):
    grace: float = Field(default=600.0, ge=0, le=MAX_GRACE)


class JoinRequest(BaseModel):
    site: str = Field(max_length=63)
    url: str = Field(default="", max_length=2000)  # where the new site's API answers, if known
    csr: str = Field(max_length=16_000)  # PEM certificate signing request
    credential: str = Field(min_length=32, max_length=256)  # what this site presents to it


def add_peer_routes(app: FastAPI, site: Site) -> None:
    from meridian.api.app import caller_of

    credentials = CredentialStore(site.config.secrets)
    presented = PresentedCredentials(site.config.secrets)

    def only_itself(request: Request, name: str) -> None:
        caller = caller_of(request)
        if caller.kind != "admin" and caller.name != name:
            raise HTTPException(403, f"{caller.label} cannot act for site {name!r}")

    @app.post("/api/v1/peers/{name}/leave", summary="A peer leaves the namespace",
              responses={403: {"description": "not that peer's own credential"},
                         404: {"description": "not a peer of this site"},
                         409: {"description": "this site has not pulled all of the peer's "
                                              "changes yet (drain first)"}})
    async def peer_leaves(name: str, body: LeaveRequest, request: Request) -> dict[str, Any]:
        """Called by ``meridian site leave`` at the leaving site, with the number of changes it
        made: this site stops pulling from it once it holds them all (nothing is lost)."""
        only_itself(request, name)
        if name not in {p.name for p in site.config.peers}:
            raise HTTPException(404, f"{name!r} is not a peer of site {site.config.name}")
        held = site.meta.applied_seq(name)
        if held < body.origin_seq:
            raise HTTPException(409, f"site {site.config.name} holds {held} of {name}'s "
                                     f"{body.origin_seq} changes: drain {name} first")
        await site.replication.retire(name)
        return {"site": site.config.name, "left": name, "held": held}

    @app.post("/api/v1/peers/{name}/rotate", summary="A peer trades its credential for a new one")
    async def peer_rotates(name: str, body: RotateRequest, request: Request) -> dict[str, Any]:
        """A new credential for ``name``; the ones it had stay valid ``grace`` seconds."""
        only_itself(request, name)
        credential = credentials.issue_peer(name, grace=body.grace)
        return {"site": site.config.name, "peer": name, "credential": credential,
                "old_valid_for": body.grace}

    @app.post("/api/v1/join", summary="A new site joins with its one-time join credential",
              responses={401: {"description": "join credential unknown, expired or spent"},
                         403: {"description": "the credential was issued for another site"},
                         409: {"description": "this site does not hold the namespace CA key"}})
    async def join(body: JoinRequest, request: Request) -> dict[str, Any]:
        caller = caller_of(request)
        if caller.kind != "join" or caller.name != body.site:
            raise HTTPException(403, f"this join credential was issued for site "
                                     f"{caller.name!r}, not {body.site!r}")
        if not _SITE_NAME.match(body.site) or body.site == site.config.name:
            raise HTTPException(400, f"site name {body.site!r} cannot join {site.config.name}")
        try:
            url = check_site_url(body.url, "url") if body.url else None
        except BadInput as exc:
            raise HTTPException(400, str(exc)) from None
        tls = site.config.tls
        if tls.ca_key is None or not tls.ca_key.exists():
            raise HTTPException(409, f"site {site.config.name} does not hold the namespace CA "
                                     "key: invite from the site that made the namespace")
        try:
            cert = sign_request(tls.ca_key.read_bytes(), tls.ca.read_bytes(), body.csr.encode(),
                                body.site)
        except BadInput as exc:
            raise HTTPException(400, str(exc)) from None
        if not credentials.spend_join(caller.credential_id):
            raise HTTPException(401, "this join credential was used already")
        presented.put(body.site, body.credential)
        issued = credentials.issue_peer(body.site)
        return {"site": site.config.name, "peer_url": url, "certificate": cert.decode(),
                "ca": tls.ca.read_text(), "credential": issued,
                "journal_last_seq": site.meta.last_seq()}
