"""The web console: each site serves it from its own API (``/console/...``, same port, same
TLS), for its admin. An adapter like ``api`` and ``cli``: it reads and steers the running site
in-process; nothing below it imports it (only the API app mounts it). See docs/console.md."""

from meridian.console.routes import add_console

__all__ = ["add_console"]
