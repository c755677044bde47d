"""Calling the running site's own API from the CLI (admin commands: objectives, cache, evict,
peers, ``flame watch``).

The site's URL comes from ``DATA/run.json`` (written by ``site run``), its admin credential from
``DATA/secrets/admin.token`` (0600: the CLI runs as the site's owner), and its certificate is
checked against the site's CA: the calls go through ``meridian.sitecall`` like every other. A
site that is not running is exit 3 with a clear message; a refusal (400) is exit 2 with the
site's own explanation.
"""

from __future__ import annotations

from typing import Any

from meridian.errors import PeerUnreachable
from meridian.site.config import SiteConfig
from meridian.sitecall import SiteClient


class SiteApi:
    def __init__(self, config: SiteConfig) -> None:
        from meridian.cli.site_cmds import read_run_file
        from meridian.site.trust import own_endpoint

        running = read_run_file(config.data)
        if running is None or not running.get("api") or config.api is None:
            raise PeerUnreachable(f"site {config.name} is not running (start it with "
                                  f"`meridian site run --config {config.path}`)")
        self.url = str(running["api"])
        self.site = config.name
        self.endpoint = own_endpoint(config, self.url)
        self.client = SiteClient(self.endpoint)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             query: dict[str, str] | None = None, timeout: float = 60.0) -> Any:
        """JSON in, JSON out. Raises BadInput (400), NotFound (404), PeerUnreachable."""
        return self.client.call(method, path, body, query, timeout=timeout,
                                retries=2 if method == "GET" else 0)
