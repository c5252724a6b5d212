"""Pipelines and their stages (read-only here; admins shape them in the settings pages)."""

from __future__ import annotations

from typing import Any

from crmcore.pipelines import service
from crmcore.pipelines.models import Pipeline, Stage
from crmcore.web.api.blueprint import ID, bp, ctx, query, reads, route
from crmcore.web.api.schemas import PipelineListQuery, PipelineSchema, StageSchema

TAG = "pipelines"


def stage_out(stage: Stage) -> dict[str, Any]:
    return {c: getattr(stage, c) for c in ("id", "pipeline_id", "name", "position", "kind", "probability",
                                           "archived_at")}


def pipeline_out(pipeline: Pipeline) -> dict[str, Any]:
    out = {c: getattr(pipeline, c) for c in ("id", "record_type", "name", "position", "is_default", "archived_at")}
    out["stages"] = [stage_out(s) for s in pipeline.stages]
    return out


@route("/pipelines", TAG, methods=["GET"])
@reads
@query(PipelineListQuery)
@bp.response(200, PipelineSchema(many=True))
def list_pipelines(args: dict[str, Any]) -> list[dict[str, Any]]:
    """List pipelines with their stages

    Of one record `type`, or of every type usable in this business.
    """
    pipelines = service.list_pipelines(ctx(), args.get("type"), include_archived=args["include_archived"])
    return [pipeline_out(p) for p in pipelines]


@route(f"/pipelines/<{ID}:pipeline_id>", TAG, methods=["GET"])
@reads
@bp.response(200, PipelineSchema)
def get_pipeline(pipeline_id: int) -> dict[str, Any]:
    """Get a pipeline with its stages"""
    return pipeline_out(service.get_pipeline(ctx(), pipeline_id))


@route(f"/pipelines/<{ID}:pipeline_id>/stages", TAG, methods=["GET"])
@reads
@bp.response(200, StageSchema(many=True))
def list_stages(pipeline_id: int) -> list[dict[str, Any]]:
    """List a pipeline's stages in order (archived ones included)"""
    return [stage_out(s) for s in service.get_pipeline(ctx(), pipeline_id).stages]
