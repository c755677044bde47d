"""Calling the running site's own API from the CLI (admin commands: objectives, cache, evict).

The site's URL comes from ``DATA/run.json`` (written by ``site run``), its token from the
config. A site that is not running is exit 3 with a clear message; a refusal (400) is exit 2
with the site's own explanation.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from meridian.errors import BadInput, NotFound, PeerUnreachable
from meridian.site.config import SiteConfig


class SiteApi:
    def __init__(self, config: SiteConfig) -> None:
        from meridian.cli.site_cmds import read_run_file

        running = read_run_file(config.data)
        if running is None or not running.get("api") or config.api is None:
            raise PeerUnreachable(f"site {config.name} is not running (start it with "
                                  f"`meridian site run --config {config.path}`)")
        self.url = str(running["api"])
        self.token = config.api.token
        self.site = config.name

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             query: dict[str, str] | None = None, timeout: float = 60.0) -> Any:
        """JSON in, JSON out. Raises BadInput (400), NotFound (404), PeerUnreachable."""
        url = f"{self.url}{path}"
        if query:
            from urllib.parse import urlencode
            url += "?" + urlencode(query)
        request = urllib.request.Request(
            url, data=json.dumps(body).encode() if body is not None else None, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("detail", "")
            except ValueError:
                detail = ""
            if exc.code in (400, 422):
                raise BadInput(str(detail) or f"HTTP {exc.code}") from None
            if exc.code == 404:
                raise NotFound(str(detail) or "not found") from None
            raise PeerUnreachable(f"site {self.site}: HTTP {exc.code} {detail}") from None
        except (OSError, ValueError) as exc:
            raise PeerUnreachable(f"site {self.site} ({self.url}) does not answer: {exc}") from None
