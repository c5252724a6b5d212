"""Pipelines and their stages, per record type: create, rename, archive/restore, default;
add, edit, reorder and archive stages."""

from __future__ import annotations

from typing import Any

from flask import g, request

from crmcore.errors import ValidationFailed
from crmcore.pipelines import service as pipelines
from crmcore.pipelines.rules import STAGE_KINDS
from crmcore.records.types import record_types
from crmcore.web.settings.common import (
    attempt,
    back,
    checked,
    ids,
    moves,
    render,
    require_all_known,
    text,
    whole_number,
)
from crmcore.web.settings.views import bp

#: what the "new pipeline" form starts with (one stage a line: name | kind | probability)
STARTING_STAGES = "New | open | 10\nIn progress | open | 50\nWon | won | 100\nLost | lost | 0"


@bp.get("/pipelines", endpoint="pipelines")
def pipelines_index() -> Any:
    return pipelines_page()


def pipelines_page(status: int = 200, forms: dict[str, dict[str, Any]] | None = None) -> Any:
    types = [t for t in sorted(record_types(g.ctx).values(), key=lambda t: t.label) if t.has_pipeline]
    by_type: dict[str, list[dict[str, Any]]] = {t.key: [] for t in types}
    for pipeline in pipelines.list_pipelines(g.ctx, include_archived=True):
        if pipeline.record_type in by_type:
            by_type[pipeline.record_type].append(_pipeline_view(pipeline))
    sections = [{"type": t, "pipelines": by_type[t.key]} for t in types]
    return render("settings/pipelines.html", status, sections=sections, forms=forms or {},
                  kinds=[(k, k.capitalize()) for k in STAGE_KINDS], starting_stages=STARTING_STAGES)


def _pipeline_view(pipeline: Any) -> dict[str, Any]:
    """Plain values, read now: the next service call expires the ORM objects."""
    stages = [{"id": s.id, "name": s.name, "kind": s.kind, "probability": s.probability,
               "archived": s.archived_at is not None} for s in pipeline.stages]
    active = [s["id"] for s in stages if not s["archived"]]
    return {"id": pipeline.id, "name": pipeline.name, "record_type": pipeline.record_type,
            "is_default": pipeline.is_default, "archived": pipeline.archived_at is not None,
            "stages": stages, "moves": moves(active)}


def _done(pipeline_id: int | None = None) -> str:
    return back("settings.pipelines", f"pipeline-{pipeline_id}" if pipeline_id else None)


@bp.post("/pipelines/new")
def create_pipeline() -> Any:
    record_type = request.form.get("record_type", "")

    def action() -> None:
        data = {"name": text("name") or "", "is_default": checked("is_default"),
                "stages": parse_stage_lines(request.form.get("stages", ""))}
        pipelines.create_pipeline(g.ctx, record_type, data)

    return attempt(action, pipelines_page, f"new-{record_type}", done="Pipeline created.", then=_done())


def parse_stage_lines(raw: str) -> list[dict[str, Any]]:
    """Lines "name | kind | probability" (kind and probability optional) as stage dicts."""
    stages: list[dict[str, Any]] = []
    problems = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) > 3:
            problems.append(f"line {number}: write name | kind | probability")
            continue
        stage: dict[str, Any] = {"name": parts[0], "kind": (parts[1] if len(parts) > 1 and parts[1] else "open")}
        if len(parts) > 2 and parts[2]:
            try:
                stage["probability"] = int(parts[2].rstrip("%"))
            except ValueError:
                problems.append(f"line {number}: the probability {parts[2]!r} is not a whole number")
                continue
        stages.append(stage)
    if problems:
        raise ValidationFailed("invalid stages", {"stages": problems})
    return stages


@bp.post("/pipelines/<int:pipeline_id>/rename")
def rename_pipeline(pipeline_id: int) -> Any:
    return attempt(lambda: pipelines.rename_pipeline(g.ctx, pipeline_id, text("name") or ""), pipelines_page,
                   f"pipeline-{pipeline_id}", done="Pipeline renamed.", then=_done(pipeline_id))


@bp.post("/pipelines/<int:pipeline_id>/archive")
def archive_pipeline(pipeline_id: int) -> Any:
    return attempt(lambda: pipelines.archive_pipeline(g.ctx, pipeline_id), pipelines_page,
                   f"pipeline-{pipeline_id}", done="Pipeline archived.", then=_done(pipeline_id))


@bp.post("/pipelines/<int:pipeline_id>/restore")
def restore_pipeline(pipeline_id: int) -> Any:
    return attempt(lambda: pipelines.restore_pipeline(g.ctx, pipeline_id), pipelines_page,
                   f"pipeline-{pipeline_id}", done="Pipeline restored.", then=_done(pipeline_id))


@bp.post("/pipelines/<int:pipeline_id>/default")
def default_pipeline(pipeline_id: int) -> Any:
    return attempt(lambda: pipelines.set_default_pipeline(g.ctx, pipeline_id), pipelines_page,
                   f"pipeline-{pipeline_id}", done="Default pipeline set.", then=_done(pipeline_id))


def _stage_data() -> dict[str, Any]:
    return {"name": text("name") or "", "kind": request.form.get("kind", "open"),
            "probability": whole_number("probability")}


@bp.post("/pipelines/<int:pipeline_id>/stages")
def add_stage(pipeline_id: int) -> Any:
    return attempt(lambda: pipelines.add_stage(g.ctx, pipeline_id, _stage_data()), pipelines_page,
                   f"add-stage-{pipeline_id}", done="Stage added.", then=_done(pipeline_id))


@bp.post("/pipelines/stages/<int:stage_id>/edit")
def edit_stage(stage_id: int) -> Any:
    return _stage_form(stage_id, lambda: pipelines.update_stage(g.ctx, stage_id, _stage_data()), "Stage saved.")


@bp.post("/pipelines/stages/<int:stage_id>/archive")
def archive_stage(stage_id: int) -> Any:
    return _stage_form(stage_id, lambda: pipelines.archive_stage(g.ctx, stage_id), "Stage archived.")


@bp.post("/pipelines/stages/<int:stage_id>/restore")
def restore_stage(stage_id: int) -> Any:
    return _stage_form(stage_id, lambda: pipelines.restore_stage(g.ctx, stage_id), "Stage restored.")


def _stage_form(stage_id: int, action: Any, message: str) -> Any:
    return attempt(action, pipelines_page, f"stage-{stage_id}", done=message,
                   then=lambda stage: _done(stage.pipeline_id))


@bp.post("/pipelines/<int:pipeline_id>/reorder")
def reorder_stages(pipeline_id: int) -> Any:
    wanted = ids("stage_ids")
    pipeline = pipelines.get_pipeline(g.ctx, pipeline_id)
    require_all_known(wanted, [s.id for s in pipeline.stages], "stage")
    return attempt(lambda: pipelines.reorder_stages(g.ctx, pipeline_id, wanted), pipelines_page,
                   f"pipeline-{pipeline_id}", done=None, then=_done(pipeline_id))
