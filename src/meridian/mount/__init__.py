"""``meridian.mount`` — the FUSE adapter: a site's namespace as a POSIX file system.

Binding: pyfuse3 (libfuse 3). It is inode-based (the store's inode numbers go straight to the
kernel, no path lookups per call), async (one asyncio loop for the mount, the mover and the
HTTP API), and exposes ``invalidate_entry``/``invalidate_inode``, which replication uses to
make a change from another site visible at once. fusepy (libfuse 2, path-based, one thread
per request) and llfuse (libfuse 2, unmaintained) offer neither.
"""

from meridian.mount.fs import MeridianFS
from meridian.mount.serve import serve

__all__ = ["MeridianFS", "serve"]
