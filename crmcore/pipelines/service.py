"""Pipeline administration: pipelines per record type, their ordered stages, and the defaults a
new business starts with.

The rules (at least one open, one won and one lost stage; positions a permutation; ...) live in
:mod:`crmcore.pipelines.rules` as pure functions; this module loads rows, applies them and writes.
Moving records between stages is :mod:`crmcore.records.service`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from crmcore.audit import service as audit
from crmcore.context import get_or_404, use_case
from crmcore.db import utcnow
from crmcore.errors import Conflict, ValidationFailed
from crmcore.paging import capped_count
from crmcore.pipelines import rules
from crmcore.pipelines.models import Pipeline, Stage
from crmcore.pipelines.schemas import (
    PipelineCreateSchema,
    PipelineRenameSchema,
    ReorderSchema,
    StageAddSchema,
    StageUpdateSchema,
    load,
)
from crmcore.records.types import CORE_TYPES, RecordType, get_record_type, record_types
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

#: (name, kind, probability %) of the stages each core type's first pipeline starts with
DEFAULT_PIPELINES: dict[str, tuple[str, tuple[tuple[str, str, int | None], ...]]] = {
    "deal": ("Sales", (
        ("Qualification", "open", 10), ("Needs analysis", "open", 25), ("Proposal", "open", 50),
        ("Negotiation", "open", 75), ("Won", "won", 100), ("Lost", "lost", 0),
    )),
    "lead": ("Leads", (
        ("New", "open", None), ("Contacted", "open", None), ("Qualified", "won", 100),
        ("Disqualified", "lost", 0),
    )),
    "incident": ("Service", (
        ("Open", "open", None), ("In progress", "open", None), ("Waiting for customer", "open", None),
        ("Resolved", "won", 100), ("Closed unresolved", "lost", 0),
    )),
    "action": ("Actions", (
        ("To do", "open", None), ("In progress", "open", None), ("Done", "won", 100),
        ("Cancelled", "lost", 0),
    )),
}


# ---------------------------------------------------------------------------------------------
# seeding (plain function: runs inside business creation's transaction)


def seed_defaults(ctx: Context) -> None:
    """Give a new business one default pipeline for each core record type that has one.

    Idempotent: a type that already has a pipeline is left alone.
    """
    existing = set(ctx.session.scalars(select(Pipeline.record_type).distinct()))
    for record_type in CORE_TYPES:
        spec = DEFAULT_PIPELINES.get(record_type.key)
        if not record_type.has_pipeline or spec is None or record_type.key in existing:
            continue
        name, stages = spec
        _create(ctx, record_type, name, True, [
            {"name": n, "kind": k, "probability": p} for n, k, p in stages
        ])


# ---------------------------------------------------------------------------------------------
# helpers the records service uses too


def load_pipeline(ctx: Context, pipeline_id: int) -> Pipeline | None:
    """The pipeline with its stages (one query each), fresh from the database; None if missing."""
    return ctx.session.scalar(
        select(Pipeline).where(Pipeline.id == pipeline_id)
        .options(selectinload(Pipeline.stages))
        .execution_options(populate_existing=True)
    )


def default_pipeline(ctx: Context, record_type: str) -> Pipeline | None:
    """The type's default pipeline (else its first active one), with stages; None if it has none."""
    return ctx.session.scalar(
        select(Pipeline)
        .where(Pipeline.record_type == record_type, Pipeline.archived_at.is_(None))
        .order_by(Pipeline.is_default.desc(), Pipeline.position, Pipeline.id)
        .limit(1)
        .options(selectinload(Pipeline.stages))
        .execution_options(populate_existing=True)
    )


def _pipeline(ctx: Context, pipeline_id: Any) -> Pipeline:
    get_or_404(ctx, Pipeline, pipeline_id, "pipeline")
    pipeline = load_pipeline(ctx, int(pipeline_id))
    assert pipeline is not None  # just found above, in the same transaction
    return pipeline


def _stage(ctx: Context, stage_id: Any) -> Stage:
    stage = get_or_404(ctx, Stage, stage_id, "stage")
    ctx.session.refresh(stage)
    return stage


def _pipeline_type(ctx: Context, record_type: str) -> RecordType:
    found = get_record_type(ctx, record_type)
    if not found.has_pipeline:
        raise ValidationFailed(f"{found.plural.lower()} have no pipeline",
                               {"type": [f"records of type {found.key!r} do not move through stages"]})
    return found


def _open_count_in_stage(ctx: Context, stage_id: int) -> Any:
    from crmcore.records.models import Record

    return capped_count(ctx.session, select(Record.id).where(Record.stage_id == stage_id, Record.status == "open"))


def _renumber(ctx: Context, pipeline: Pipeline, active_order: Sequence[int]) -> None:
    """Active stages get 0..k-1 in ``active_order``; archived ones follow in their old order, so
    every position of the pipeline stays a permutation of 0..n-1."""
    archived = [s.id for s in pipeline.stages if s.archived_at is not None]
    wanted = rules.positions([*active_order, *archived])
    by_id = {s.id: s for s in pipeline.stages}
    for stage_id, position in wanted.items():
        if by_id[stage_id].position != position:
            by_id[stage_id].position = position
    set_committed_value(pipeline, "stages", sorted(pipeline.stages, key=lambda s: (s.position, s.id)))


def _check_pipeline_name(ctx: Context, record_type: str, name: str, exclude_id: int | None = None) -> None:
    taken = ctx.session.scalars(
        select(Pipeline.name).where(Pipeline.record_type == record_type, Pipeline.id != (exclude_id or 0))
    )
    if any(n.casefold() == name.casefold() for n in taken):
        raise ValidationFailed("this name is taken",
                               {"name": [f"a {record_type} pipeline named {name!r} already exists"]})


def _check_stage_name(pipeline: Pipeline, name: str, exclude_id: int | None = None) -> None:
    if any(s.name.casefold() == name.casefold() and s.id != exclude_id for s in pipeline.stages):
        raise ValidationFailed("this name is taken",
                               {"name": [f"pipeline {pipeline.name!r} already has a stage named {name!r}"]})


def _create(ctx: Context, record_type: RecordType, name: str, is_default: bool,
            stages: list[dict[str, Any]]) -> Pipeline:
    position = max(ctx.session.scalars(
        select(Pipeline.position).where(Pipeline.record_type == record_type.key)), default=-1) + 1
    has_default = ctx.session.scalar(
        select(Pipeline.id).where(Pipeline.record_type == record_type.key, Pipeline.is_default.is_(True),
                                  Pipeline.archived_at.is_(None)).limit(1)) is not None
    if is_default:
        _clear_default(ctx, record_type.key)
    pipeline = Pipeline(record_type=record_type.key, name=name, position=position,
                        is_default=is_default or not has_default)
    ctx.session.add(pipeline)
    ctx.session.flush()
    rows = []
    for index, spec in enumerate(stages):
        kind = spec.get("kind", rules.OPEN)
        probability = spec.get("probability")
        if probability is None and kind != rules.OPEN:
            probability = 100 if kind == rules.WON else 0
        rows.append(Stage(pipeline_id=pipeline.id, name=spec["name"], position=index, kind=kind,
                          probability=probability))
    ctx.session.add_all(rows)
    ctx.session.flush()
    set_committed_value(pipeline, "stages", rows)
    audit.record(ctx, "pipeline.created", pipeline, changes={
        "record_type": record_type.key, "name": name,
        "stages": [[s.name, s.kind, s.probability] for s in rows],
    })
    return pipeline


def _clear_default(ctx: Context, record_type: str) -> None:
    ctx.session.execute(
        update(Pipeline).where(Pipeline.record_type == record_type, Pipeline.is_default.is_(True))
        .values(is_default=False).execution_options(synchronize_session="fetch")
    )


# ---------------------------------------------------------------------------------------------
# pipelines


@use_case(Role.ADMIN)
def create_pipeline(ctx: Context, record_type: str, data: Mapping[str, Any]) -> Pipeline:
    """Create a pipeline for ``record_type`` with its ``stages`` (in order; each ``name``,
    ``kind`` open/won/lost, ``probability``). The type's first pipeline becomes its default."""
    found = _pipeline_type(ctx, record_type)
    clean = load(PipelineCreateSchema(), data, "invalid pipeline")
    rules.check_kinds([s["kind"] for s in clean["stages"]])
    twice = rules.duplicate_names([s["name"] for s in clean["stages"]])
    if twice:
        raise ValidationFailed("stage names must differ",
                               {"stages": [f"stage name {n!r} is used more than once" for n in twice]})
    _check_pipeline_name(ctx, found.key, clean["name"])
    return _create(ctx, found, clean["name"], clean["is_default"], clean["stages"])


@use_case(Role.ADMIN)
def rename_pipeline(ctx: Context, pipeline_id: int, name: str) -> Pipeline:
    pipeline = _pipeline(ctx, pipeline_id)
    clean = load(PipelineRenameSchema(), {"name": name}, "invalid pipeline name")
    if clean["name"] == pipeline.name:
        return pipeline
    _check_pipeline_name(ctx, pipeline.record_type, clean["name"], exclude_id=pipeline.id)
    old, pipeline.name = pipeline.name, clean["name"]
    audit.record(ctx, "pipeline.renamed", pipeline, changes={"name": [old, pipeline.name]})
    return pipeline


@use_case(Role.ADMIN)
def archive_pipeline(ctx: Context, pipeline_id: int) -> Pipeline:
    """Hide a pipeline from new records. Refused for the default pipeline and while open records
    are in it; closed records keep it."""
    from crmcore.records.models import Record

    pipeline = _pipeline(ctx, pipeline_id)
    if pipeline.archived_at is not None:
        return pipeline
    if pipeline.is_default:
        raise Conflict(f"pipeline {pipeline.name!r} is the default for {pipeline.record_type} records; "
                       "make another pipeline the default first")
    count = capped_count(ctx.session, select(Record.id).where(Record.pipeline_id == pipeline.id,
                                                              Record.status == "open"))
    if count.value:
        raise Conflict(f"{count} open record{'s' if count.value != 1 else ''} are in pipeline "
                       f"{pipeline.name!r}; close or move them first")
    pipeline.archived_at = utcnow()
    audit.record(ctx, "pipeline.archived", pipeline)
    return pipeline


@use_case(Role.ADMIN)
def restore_pipeline(ctx: Context, pipeline_id: int) -> Pipeline:
    pipeline = _pipeline(ctx, pipeline_id)
    if pipeline.archived_at is None:
        return pipeline
    pipeline.archived_at = None
    audit.record(ctx, "pipeline.restored", pipeline)
    return pipeline


@use_case(Role.ADMIN)
def set_default_pipeline(ctx: Context, pipeline_id: int) -> Pipeline:
    """Make this the pipeline new records of its type start in."""
    pipeline = _pipeline(ctx, pipeline_id)
    if pipeline.archived_at is not None:
        raise Conflict(f"pipeline {pipeline.name!r} is archived; restore it first")
    if pipeline.is_default:
        return pipeline
    _clear_default(ctx, pipeline.record_type)
    pipeline.is_default = True
    audit.record(ctx, "pipeline.default_set", pipeline, changes={"is_default": [False, True]})
    return pipeline


@use_case(Role.READ_ONLY, write=False)
def get_pipeline(ctx: Context, pipeline_id: int) -> Pipeline:
    """The pipeline with its stages (``pipeline.stages``, archived ones included)."""
    return _pipeline(ctx, pipeline_id)


@use_case(Role.READ_ONLY, write=False)
def list_pipelines(ctx: Context, record_type: str | None = None, *,
                   include_archived: bool = False) -> list[Pipeline]:
    """Pipelines (of one type, or of every type usable here) with their stages: two queries."""
    types = [get_record_type(ctx, record_type).key] if record_type else sorted(record_types(ctx))
    stmt = (
        select(Pipeline).where(Pipeline.record_type.in_(types))
        .order_by(Pipeline.record_type, Pipeline.position, Pipeline.id)
        .options(selectinload(Pipeline.stages))
        .execution_options(populate_existing=True)
    )
    if not include_archived:
        stmt = stmt.where(Pipeline.archived_at.is_(None))
    return list(ctx.session.scalars(stmt))


# ---------------------------------------------------------------------------------------------
# stages


@use_case(Role.ADMIN)
def add_stage(ctx: Context, pipeline_id: int, data: Mapping[str, Any]) -> Stage:
    """Add a stage (``name``, ``kind``, ``probability``, optional ``position`` among the active
    stages; by default an open stage goes after the last open one, a closing stage at the end)."""
    pipeline = _pipeline(ctx, pipeline_id)
    if pipeline.archived_at is not None:
        raise Conflict(f"pipeline {pipeline.name!r} is archived; restore it first")
    clean = load(StageAddSchema(), data, "invalid stage")
    _check_stage_name(pipeline, clean["name"])
    active = pipeline.active_stages()
    probability = clean.get("probability")
    if probability is None and clean["kind"] != rules.OPEN:
        probability = 100 if clean["kind"] == rules.WON else 0
    stage = Stage(pipeline_id=pipeline.id, name=clean["name"], kind=clean["kind"], probability=probability,
                  position=len(pipeline.stages))
    ctx.session.add(stage)
    ctx.session.flush()
    position = clean.get("position")
    if position is None:
        position = rules.default_insert_position([s.kind for s in active], clean["kind"])
    order = rules.insert_at([s.id for s in active], stage.id, position)
    set_committed_value(pipeline, "stages", [*pipeline.stages, stage])
    _renumber(ctx, pipeline, order)
    audit.record(ctx, "stage.created", stage, changes={
        "pipeline_id": pipeline.id, "name": stage.name, "kind": stage.kind, "probability": stage.probability,
        "position": stage.position,
    })
    return stage


@use_case(Role.ADMIN)
def update_stage(ctx: Context, stage_id: int, data: Mapping[str, Any]) -> Stage:
    """Change a stage's ``name``, ``probability`` or ``kind``. The kind of a stage that holds
    records cannot change (their status would no longer match it)."""
    from crmcore.records.models import Record

    stage = _stage(ctx, stage_id)
    pipeline = _pipeline(ctx, stage.pipeline_id)
    clean = load(StageUpdateSchema(), data, "invalid stage")
    changes: dict[str, list[Any]] = {}
    if "name" in clean and clean["name"] != stage.name:
        _check_stage_name(pipeline, clean["name"], exclude_id=stage.id)
        changes["name"] = [stage.name, clean["name"]]
    if "probability" in clean and clean["probability"] != stage.probability:
        changes["probability"] = [stage.probability, clean["probability"]]
    if "kind" in clean and clean["kind"] != stage.kind:
        held = capped_count(ctx.session, select(Record.id).where(Record.stage_id == stage.id))
        if held.value:
            raise Conflict(f"stage {stage.name!r} holds {held} record{'s' if held.value != 1 else ''}; "
                           "its kind can only change while it is empty")
        if stage.archived_at is None:
            kinds = [clean["kind"] if s.id == stage.id else s.kind for s in pipeline.active_stages()]
            rules.check_kinds(kinds, field="kind")
        changes["kind"] = [stage.kind, clean["kind"]]
    for field, (_old, new) in changes.items():
        setattr(stage, field, new)
    if changes:
        audit.record(ctx, "stage.updated", stage, changes=changes)
    return stage


@use_case(Role.ADMIN)
def reorder_stages(ctx: Context, pipeline_id: int, stage_ids: Sequence[int]) -> Pipeline:
    """Put the pipeline's active stages in the order of ``stage_ids`` (every one exactly once)."""
    pipeline = _pipeline(ctx, pipeline_id)
    clean = load(ReorderSchema(), {"stage_ids": list(stage_ids) if stage_ids is not None else None},
                 "invalid stage order")
    active = [s.id for s in pipeline.active_stages()]
    rules.check_permutation(active, clean["stage_ids"])
    if clean["stage_ids"] != active:
        _renumber(ctx, pipeline, clean["stage_ids"])
        audit.record(ctx, "pipeline.stages_reordered", pipeline,
                     changes={"stage_ids": [active, clean["stage_ids"]]})
    return pipeline


@use_case(Role.ADMIN)
def archive_stage(ctx: Context, stage_id: int) -> Stage:
    """Hide a stage from moves and boards. Refused while open records sit in it, and when the
    pipeline would lose its last open, won or lost stage. Closed records keep it."""
    stage = _stage(ctx, stage_id)
    if stage.archived_at is not None:
        return stage
    pipeline = _pipeline(ctx, stage.pipeline_id)
    count = _open_count_in_stage(ctx, stage.id)
    if count.value:
        raise Conflict(f"{count} open record{'s are' if count.value != 1 else ' is'} in stage "
                       f"{stage.name!r}; move {'them' if count.value != 1 else 'it'} first")
    remaining = [s for s in pipeline.active_stages() if s.id != stage.id]
    problems = rules.kind_problems(s.kind for s in remaining)
    if problems:
        raise Conflict(f"stage {stage.name!r} cannot be archived: {problems[0]}")
    stage.archived_at = utcnow()
    _renumber(ctx, pipeline, [s.id for s in remaining])
    audit.record(ctx, "stage.archived", stage)
    return stage


@use_case(Role.ADMIN)
def restore_stage(ctx: Context, stage_id: int) -> Stage:
    """Bring an archived stage back, after the active ones (reorder it where it belongs)."""
    stage = _stage(ctx, stage_id)
    if stage.archived_at is None:
        return stage
    pipeline = _pipeline(ctx, stage.pipeline_id)
    stage.archived_at = None
    _renumber(ctx, pipeline, [*[s.id for s in pipeline.active_stages() if s.id != stage.id], stage.id])
    audit.record(ctx, "stage.restored", stage)
    return stage
