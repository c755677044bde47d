"""Admin routes of undo: the trash (list, undelete, purge), versions and snapshots.

All admin-only (no peer credential reaches them). A refusal changes nothing: bad input and a
name already taken are 400 with the reason (an undelete never replaces a file), nothing in the
trash or no such snapshot is 404.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from meridian.errors import AlreadyExists, BadInput, ContentError, NotFound
from meridian.undo import restore

if TYPE_CHECKING:
    from meridian.site import Site

_T = TypeVar("_T")


class Undelete(BaseModel):
    path: str
    at: int | None = None  # ns since the epoch: the latest removal at or before
    as_path: str | None = None


class Purge(BaseModel):
    path: str | None = None
    before: int | None = None  # ns since the epoch


class RestoreVersion(BaseModel):
    path: str
    version: int


class NewSnapshot(BaseModel):
    name: str


class RestoreSnapshot(BaseModel):
    path: str
    as_path: str | None = None


async def _answer(work: Callable[[], _T]) -> _T:
    """Run ``work`` (on the event loop, like every use of the store: it is the site's one
    thread of it); errors become 400 / 404 naming the problem."""
    try:
        return work()
    except (BadInput, AlreadyExists) as exc:
        raise HTTPException(400, str(exc)) from None
    except (NotFound, ContentError) as exc:
        raise HTTPException(404, str(exc)) from None


def _restored(done: restore.Restored) -> dict[str, Any]:
    return {"path": done.path, "files": done.files, "dirs": done.dirs, "bytes": done.bytes,
            "skipped": done.skipped}


def add_undo_routes(app: FastAPI, site: Site) -> None:
    undo = site.undo

    @app.get("/api/v1/trash", summary="What was removed (oldest first)")
    async def trash(path: str | None = None, since: int | None = None,
                    site_name: str | None = None) -> dict[str, Any]:
        where = restore.clean_path(path) if path else None
        records = await _answer(lambda: undo.store.trash_list(where, since_ns=since,
                                                              site=site_name))
        return {"site": site.config.name, "trash_days": undo.trash_days,
                "removed": [dataclasses.asdict(r) for r in records]}

    @app.post("/api/v1/trash/undelete", summary="Bring back what was removed at a path")
    async def undelete(body: Undelete) -> dict[str, Any]:
        done = await _answer(lambda: undo.undelete(body.path, body.at, body.as_path))
        return _restored(done)

    @app.post("/api/v1/trash/purge", summary="Forget trash records at every site")
    async def purge(body: Purge) -> dict[str, Any]:
        return {"purged": await _answer(lambda: undo.purge(body.path, body.before))}

    @app.get("/api/v1/versions", summary="Kept contents of a file (oldest first)")
    async def versions(path: str) -> dict[str, Any]:
        inode, kept = await _answer(lambda: restore.versions_of(site.meta, path))
        return {"path": path, "current": inode.content,
                "versions": [dict(dataclasses.asdict(v), number=n + 1)
                             for n, v in enumerate(kept)]}

    @app.post("/api/v1/versions/restore", summary="Make a kept content current again")
    async def restore_version(body: RestoreVersion) -> dict[str, Any]:
        inode, chosen = await _answer(
            lambda: restore.restore_version(site.meta, body.path, body.version))
        site.content_committed(inode)
        return {"path": body.path, "version": body.version, "hash": chosen.hash,
                "size": chosen.size}

    @app.get("/api/v1/snapshots", summary="Every snapshot (oldest first)")
    async def snapshots() -> dict[str, Any]:
        return {"snapshots": [dataclasses.asdict(s) for s in undo.store.snapshots()]}

    @app.post("/api/v1/snapshots", summary="Record the whole namespace now")
    async def create(body: NewSnapshot) -> dict[str, Any]:
        try:
            return dataclasses.asdict(await undo.snapshot_create_async(body.name))
        except (BadInput, AlreadyExists) as exc:
            raise HTTPException(400, str(exc)) from None

    @app.delete("/api/v1/snapshots/{name}", summary="Delete a snapshot at every site")
    async def delete(name: str) -> dict[str, Any]:
        return dataclasses.asdict(await _answer(lambda: undo.snapshot_delete(name)))

    @app.post("/api/v1/snapshots/{name}/restore", summary="Copy back a file or tree")
    async def restore_from(name: str, body: RestoreSnapshot) -> dict[str, Any]:
        done = await _answer(lambda: undo.snapshot_restore(name, body.path, body.as_path))
        return _restored(done)
