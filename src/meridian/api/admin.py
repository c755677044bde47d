"""Admin routes of the site's API: objectives, explain, cache/evict jobs, metrics.

Objectives are this site's own (never replicated): stored durably in its store, in order. A
rule is validated before anything is stored; a refused rule changes nothing and the answer (400)
carries the located error (``expected ',' or ')' after the pattern at 1:27``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from meridian.api.paths import resolve_path
from meridian.errors import BadInput, MeridianError, NotFound
from meridian.objectives.language import parse, parse_named, split_rules

if TYPE_CHECKING:
    from meridian.site import Site


class AddObjectives(BaseModel):
    rules: list[str] = []  # each one rule, or several separated by blank lines
    slo: str | None = None  # the named form: SLO ... when ...
    when: str | None = None


class MoveObjective(BaseModel):
    before: str | None = None  # None: to the end


class StartJob(BaseModel):
    kind: str  # "cache" | "evict"
    paths: list[str]


def add_admin_routes(app: FastAPI, site: Site) -> None:
    orchestrator = site.orchestrator

    def listing() -> list[dict[str, Any]]:
        return [{"id": r.id, "text": r.text, "position": n + 1}
                for n, r in enumerate(site.meta.objectives())]

    @app.get("/api/v1/objectives", summary="This site's objectives, in order")
    async def list_objectives() -> dict[str, Any]:
        return {"site": site.config.name, "objectives": listing(),
                "sweep": vars(orchestrator.sweep), "alignment": orchestrator.counts()}

    @app.post("/api/v1/objectives", summary="Append objectives (all are checked first)",
              responses={400: {"description": "a rule is refused: nothing was added"}})
    async def add_objectives(body: AddObjectives) -> dict[str, Any]:
        texts: list[str] = []
        try:
            if body.slo is not None or body.when is not None:
                if not body.slo or not body.when:
                    raise BadInput("the named form needs both slo and when")
                parse_named(body.slo, body.when, orchestrator.groups)
                texts.append(named_as_rule(body.slo, body.when))
            for chunk in body.rules:
                for rule in split_rules(chunk):
                    parse(rule, orchestrator.groups)
                    texts.append(rule)
        except BadInput as exc:
            raise HTTPException(400, str(exc)) from None
        if not texts:
            raise HTTPException(400, "no rule given")
        ids = site.meta.add_objectives(texts)
        orchestrator.load_rules()
        orchestrator.start_sweep()
        return {"ids": ids, "sweep": vars(orchestrator.sweep)}

    @app.delete("/api/v1/objectives/{objective_id}", summary="Remove an objective")
    async def remove_objective(objective_id: str) -> dict[str, Any]:
        try:
            removed = site.meta.remove_objective(objective_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        orchestrator.load_rules()
        orchestrator.start_sweep()
        return {"removed": removed.id, "text": removed.text}

    @app.post("/api/v1/objectives/{objective_id}/move", summary="Reorder: put before another")
    async def move_objective(objective_id: str, body: MoveObjective) -> dict[str, Any]:
        try:
            site.meta.move_objective(objective_id, body.before)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        orchestrator.load_rules()
        orchestrator.start_sweep()
        return {"objectives": listing()}

    @app.get("/api/v1/objectives/sweep", summary="Progress of the running sweep")
    async def sweep() -> dict[str, Any]:
        return vars(orchestrator.sweep)

    @app.get("/api/v1/objectives/explain", summary="Every rule against one path, and why")
    async def explain(path: str) -> dict[str, Any]:
        inode = resolve_path(site, path)
        facts = orchestrator.facts(inode, site.meta.path_of(inode.ino))
        from meridian.objectives.language import resolve
        placement = resolve(orchestrator.rules, facts)
        texts = {r.id: r.text for r in site.meta.objectives()}
        alignment = orchestrator.alignment.get(inode.file_id)
        content = inode.content
        return {
            "path": facts.path, "site": site.config.name,
            "rules": [{"id": r.rule_id, "text": texts.get(r.rule_id, ""),
                       "matched": r.evaluation.matched, "why": r.evaluation.why,
                       "slos": [s.name for s in r.evaluation.slos],
                       "overridden": list(r.overridden)} for r in placement.results],
            "placement": [s.name for s in placement.slos],
            "alignment": {"state": alignment.state, "reason": alignment.reason,
                          "rules": alignment.rules} if alignment else None,
            "local": bool(content) and site.volume.has(content or ""),
            "pinned": bool(content) and site.volume.is_pinned(content or ""),
        }

    @app.get("/api/v1/alignment", summary="How the files stand against the objectives")
    async def alignment(path: str = "./") -> dict[str, Any]:
        """Per file under ``path`` (only files some rule applies to), and the totals."""
        top = resolve_path(site, path)
        files = {}
        for file_path, inode in site.meta.walk(top.ino):
            found = orchestrator.alignment.get(inode.file_id)
            if found is not None:
                files["." + file_path] = {"state": found.state, "reason": found.reason,
                                          "slos": list(found.slos), "rules": found.rules}
        return {"totals": orchestrator.counts(), "files": files}

    @app.post("/api/v1/jobs", summary="Start a cache or evict job")
    async def start_job(body: StartJob) -> dict[str, Any]:
        try:
            return site.jobs.start(body.kind, body.paths).as_dict()
        except BadInput as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/api/v1/jobs/{job_id}", summary="A job's progress and summary")
    async def get_job(job_id: str) -> dict[str, Any]:
        try:
            return site.jobs.get(job_id).as_dict()
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/api/v1/metrics", response_class=PlainTextResponse,
             summary="Prometheus metrics of the site")
    async def metrics() -> str:
        lines = []
        for state, count in orchestrator.counts().items():
            lines.append(f'meridian_files_alignment{{site="{site.config.name}",state="{state}"}} '
                         f"{count}")
        usage = site.volume.usage()
        lines.append(f'meridian_volume_used_bytes{{site="{site.config.name}"}} {usage.used}')
        lines.append(f'meridian_uploads_queued{{site="{site.config.name}"}} '
                     f"{site.meta.upload_count()}")
        for link in site.replication.status():
            lines.append(f'meridian_peer_entries_behind{{site="{site.config.name}",'
                         f'peer="{link["peer"]}"}} {link["entries_behind"]}')
        return "\n".join(lines) + "\n"


def named_as_rule(slo: str, when: str) -> str:
    """Hammerspace's named form, stored as the rule it means: ``IF COND THEN {SLO('NAME')}``
    (a ``?TRUE`` / ``?ALWAYS`` suffix says "applies"; it is accepted and dropped)."""
    condition = when.strip()
    for suffix in ("?TRUE", "?ALWAYS"):
        if condition.upper().endswith(suffix):
            condition = condition[: -len(suffix)].rstrip()
    quoted = slo.replace("\\", "\\\\").replace("'", "\\'")
    return f"IF {condition} THEN {{SLO('{quoted}')}}"
