"""``meridian.api`` — the site's HTTP API (an adapter, like the mount)."""

from meridian.api.server import ApiServer

__all__ = ["ApiServer"]
