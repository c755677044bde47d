"""`meridian console`: print a one-time sign-in URL for this site's web console.

The running site issues the token (admin credential, ``POST /api/v1/console/sign-in``); the URL
is good once, for ten minutes, and opens a browser session on the site's own API address. The
command opens nothing by itself (as Jupyter prints its URL): the operator opens it where they
want. A site that is not running is exit 3.
"""

from __future__ import annotations

import argparse
from typing import Any

from meridian.cli.locate import add_config_option, locate_config
from meridian.cli.site_api import SiteApi


def register(commands: Any) -> None:
    console = commands.add_parser(
        "console", help="print a one-time sign-in URL for this site's web console",
        description="Ask the running site for a one-time sign-in URL of its web console (good "
                    "once, for ten minutes) and print it. Open it in a browser on a machine "
                    "that trusts the site's certificate (its namespace CA, DATA/tls/ca.crt).")
    add_config_option(console)
    console.set_defaults(func=cmd_console)


def sign_in_url(api: SiteApi) -> str:
    """A fresh one-time URL from the running site behind ``api``."""
    answer = api.call("POST", "/console/sign-in", {})
    base = api.url.rstrip("/")
    if base.endswith("/api/v1"):
        base = base[: -len("/api/v1")]
    return f"{base}{answer['path']}"


def cmd_console(args: argparse.Namespace) -> int:
    api = SiteApi(locate_config(args))
    print(sign_in_url(api))
    return 0
