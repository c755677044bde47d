"""Paths from outside the site (API callers): normalised and confined to the namespace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import HTTPException

from meridian.errors import BadInput, NotFound
from meridian.meta import Inode

if TYPE_CHECKING:
    from meridian.site import Site


def resolve_path(site: Site, path: str) -> Inode:
    """The inode at a namespace path (``./a/b``): ``..`` or a bad name is a 400 naming the
    problem, nothing there is a 404."""
    try:
        return site.meta.resolve(path)
    except BadInput as exc:
        raise HTTPException(400, f"path {path!r}: {exc}") from None
    except NotFound:
        raise HTTPException(404, f"path {path!r}: no such file or directory") from None
