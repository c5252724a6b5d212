"""Record use cases: create (with smart defaults and next steps), update, lists and boards, stage
moves with their history, won / lost / reopen, lead qualification, and a deal's team,
stakeholders and competitors.

Every public function is one transaction (:func:`crmcore.context.use_case`): members write,
read-only users read. Stage moves follow :mod:`crmcore.pipelines.rules`; the record's status is
always the kind of the stage it is in (open, won or lost), and every move leaves a
:class:`~crmcore.pipelines.models.StageChange`.

Records of a plugin's type exist for a business only while that plugin is enabled there: with the
plugin disabled they are "not found" (their data is kept).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import aliased, joinedload, make_transient_to_detached

from crmcore.audit import service as audit
from crmcore.auth.models import User
from crmcore.context import get_or_404, use_case
from crmcore.db import dumps, utcnow
from crmcore.errors import Conflict, NotFound, ValidationFailed
from crmcore.fields.models import FieldDefinition
from crmcore.lists.models import ChoiceOption
from crmcore.paging import CappedCount, Page, capped_count, clamp_limit, keyset_page
from crmcore.parties.models import Contact, Party
from crmcore.pipelines import rules
from crmcore.pipelines.models import Pipeline, Stage, StageChange
from crmcore.pipelines.service import default_pipeline, load_pipeline
from crmcore.records.models import (
    LINK_KINDS,
    Record,
    RecordCompetitor,
    RecordLink,
    RecordStakeholder,
    RecordTeamMember,
)
from crmcore.records.schemas import (
    CompetitorSchema,
    RecordCreateSchema,
    RecordFilterSchema,
    RecordUpdateSchema,
    StakeholderSchema,
    clean_note,
    load,
)
from crmcore.records.types import RecordType, get_record_type, record_types
from crmcore.tenancy.config import cached
from crmcore.tenancy.models import Membership, Role

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.lists.service import OptionInfo

log = logging.getLogger("crmcore.records")

#: fields of a record the create/update schemas accept (defaults are limited to these)
RECORD_FIELDS = ("title", "description", "party_id", "contact_id", "owner_id", "amount", "currency",
                 "expected_close_date", "pipeline_id", "stage_id", "proposed_solution", "custom")
#: what a deal takes from the lead it is qualified from
QUALIFY_COPIES = ("party_id", "contact_id", "title", "amount", "currency", "owner_id")
#: sorts of :func:`list_records`: name -> (columns, descending). "created" sorts by id, which
#: grows with creation time and is what every list index ends in.
SORTS = {
    "created": ("id", False), "-created": ("id", True),
    "updated": ("updated_at", False), "-updated": ("updated_at", True),
    "title": ("title", False), "-title": ("title", True),
}
BOARD_MAX_PER_STAGE = 200


# ---------------------------------------------------------------------------------------------
# loading and small helpers


def _record(ctx: Context, record_id: Any, *, lock: bool = False, what: str = "record") -> Record:
    """The record, fresh from the database (locked for update on PostgreSQL when ``lock``).

    Another business's record, a missing one and one of a type not enabled here are all
    "not found".
    """
    try:
        rid = int(record_id)
    except (TypeError, ValueError):
        raise NotFound(f"{what} {record_id!r} not found") from None
    ctx.session.flush()  # populate_existing below must not drop this transaction's own changes
    record = ctx.session.get(Record, rid, populate_existing=True, with_for_update=True if lock else None)
    if record is None or record.type not in record_types(ctx):
        raise NotFound(f"{what} {record_id} not found")
    return record


def _name(ctx: Context, record: Record) -> str:
    """How messages name a record: "deal DE2401-0007" or "deal 12"."""
    label = record_types(ctx).get(record.type)
    kind = label.label.lower() if label else record.type
    return f"{kind} {record.reference or record.id}"


def _first_upper(text: str) -> str:
    """``text`` with its first letter upper-cased and the rest as it is (``str.capitalize``
    would lower-case a reference: "Quote qt26-0001")."""
    return text[:1].upper() + text[1:]


def _writable(ctx: Context, record: Record) -> None:
    if record.archived_at is not None:
        raise Conflict(f"{_name(ctx, record)} is archived; restore it first")


@dataclass(frozen=True)
class StageInfo:
    """A stage as the configuration cache keeps it (the columns of :class:`Stage`)."""

    id: int
    pipeline_id: int
    name: str
    position: int
    kind: str
    probability: int | None
    archived_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def is_closing(self) -> bool:
        return self.kind != rules.OPEN

    def as_stage(self, business_id: int) -> Stage:
        """A detached :class:`Stage` with these values: what hooks receive (a fresh object per
        call, so a plugin that changes it cannot change the cache)."""
        stage = Stage(business_id=business_id, **{f.name: getattr(self, f.name) for f in fields(self)})
        make_transient_to_detached(stage)
        return stage


@dataclass(frozen=True)
class PipelineInfo:
    """A pipeline with its stages (archived ones too, in position order), as cached."""

    id: int
    record_type: str
    name: str
    archived_at: dt.datetime | None
    stages: tuple[StageInfo, ...]

    def active_stages(self) -> list[StageInfo]:
        return [s for s in self.stages if s.archived_at is None]


#: the helpers below serve both the ORM rows (record creation) and the cached snapshots (moves)
AnyPipeline = Pipeline | PipelineInfo
AnyStage = Stage | StageInfo


def _load_pipelines(ctx: Context) -> dict[int, PipelineInfo]:
    stages: dict[int, list[StageInfo]] = {}
    for s in ctx.session.scalars(select(Stage).order_by(Stage.pipeline_id, Stage.position, Stage.id)):
        stages.setdefault(s.pipeline_id, []).append(StageInfo(
            s.id, s.pipeline_id, s.name, s.position, s.kind, s.probability, s.archived_at, s.created_at,
            s.updated_at))
    return {p.id: PipelineInfo(p.id, p.record_type, p.name, p.archived_at, tuple(stages.get(p.id, ())))
            for p in ctx.session.scalars(select(Pipeline))}


def _with_pipeline(ctx: Context, record: Record) -> AnyPipeline:
    """The record's pipeline and stages, from the business's configuration cache (a stage move
    reads no pipeline rows while the pipelines are unchanged; :mod:`crmcore.tenancy.config`)."""
    rtype = get_record_type(ctx, record.type)
    if not rtype.has_pipeline or record.pipeline_id is None:
        raise Conflict(f"{rtype.plural.lower()} have no stages")
    pipeline = cached(ctx, "pipelines", _load_pipelines).get(record.pipeline_id)
    if pipeline is None:  # newer than this transaction's configuration version: read the rows
        pipeline = load_pipeline(ctx, record.pipeline_id)
    assert pipeline is not None  # a foreign key in the same business
    return pipeline


def _stage_in(pipeline: AnyPipeline, stage_id: int | None) -> AnyStage | None:
    return next((s for s in pipeline.stages if s.id == stage_id), None)


def _first(pipeline: AnyPipeline, kind: str) -> AnyStage | None:
    return next((s for s in pipeline.active_stages() if s.kind == kind), None)


def _target_stage(ctx: Context, pipeline: AnyPipeline, stage_id: Any) -> AnyStage:
    """The stage ``stage_id`` as a move target: it exists here, is in ``pipeline`` (the
    record's) and is not archived."""
    stage = None
    if isinstance(stage_id, str) and stage_id.strip().isdigit():
        stage_id = int(stage_id)
    if isinstance(stage_id, int) and not isinstance(stage_id, bool):
        stage = _stage_in(pipeline, stage_id) or ctx.session.get(Stage, stage_id)
    if stage is None:
        raise ValidationFailed(f"stage {stage_id!r} not found", {"stage_id": [f"stage {stage_id!r} not found"]})
    if stage.pipeline_id != pipeline.id:
        other = ctx.session.get(Pipeline, stage.pipeline_id)
        rules.check_same_pipeline((pipeline.id, pipeline.name), stage, other.name if other else "?")
    if stage.archived_at is not None:
        raise ValidationFailed(f"stage {stage.name!r} is archived",
                               {"stage_id": [f"stage {stage.name!r} is archived"]})
    return stage


def _is_member(ctx: Context, user_id: int | None) -> bool:
    if user_id is None:
        return False
    return ctx.session.scalar(
        select(Membership.id).join(User, User.id == Membership.user_id)
        .where(Membership.user_id == user_id, User.is_active.is_(True))
    ) is not None


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(dumps(value))


def _custom_target(record_type: str) -> str:
    return f"record:{record_type}"


# ---------------------------------------------------------------------------------------------
# defaults


def _collect_defaults(ctx: Context, record_type: str, source: Record | None, party: Party | None) -> dict[str, Any]:
    """Merge the ``crm_record_defaults`` results in call order, the first value of a key winning.

    pluggy calls the plugin registered last first and the core's own plugin is registered
    first, so a third-party plugin's value overrides the core's (which is the fallback). None
    gives no value. ``custom`` is merged key by key with the same rule; ``lines`` (a list of
    line dicts) are concatenated in call order, so every plugin's lines are kept.
    """
    merged: dict[str, Any] = {}
    for plugin, values in ctx.collect("crm_record_defaults", record_type=record_type, source=source, party=party):
        if not isinstance(values, Mapping):
            log.warning("plugin %s returned %s from crm_record_defaults; ignored", plugin, type(values).__name__)
            continue
        for key, value in values.items():
            if value is None:
                continue
            if key == "lines":
                if isinstance(value, list):
                    merged.setdefault("lines", []).extend(dict(line) for line in value if isinstance(line, Mapping))
                else:
                    log.warning("plugin %s gave lines as %s, not a list; ignored", plugin, type(value).__name__)
            elif key == "custom" and isinstance(value, Mapping):
                bucket = merged.setdefault("custom", {})
                for custom_key, custom_value in value.items():
                    if custom_value is not None:
                        bucket.setdefault(custom_key, custom_value)
            else:
                merged.setdefault(key, value)
    return merged


def _party_for_defaults(ctx: Context, party_id: Any, source: Record | None) -> Party | None:
    if party_id is None and source is not None:
        party_id = source.party_id
    if party_id is None:
        return None
    try:
        return ctx.session.get(Party, int(party_id))
    except (TypeError, ValueError):
        return None


@use_case(Role.READ_ONLY, write=False)
def record_defaults(ctx: Context, record_type: str, *, source_id: int | None = None,
                    party_id: int | None = None) -> dict[str, Any]:
    """Values to prefill a new record of ``record_type`` (created from ``source_id``, or for
    ``party_id``): the core's defaults (see :mod:`crmcore.records.plugin`) overridden by those of
    enabled plugins. The create form shows them; :func:`create_record` applies them to the keys
    the caller did not give."""
    rtype = get_record_type(ctx, record_type)
    source = _record(ctx, source_id, what="source record") if source_id is not None else None
    party = _party_for_defaults(ctx, party_id, source)
    if party_id is not None and party is None:
        raise ValidationFailed(f"party {party_id} not found", {"party_id": [f"party {party_id} not found"]})
    return _collect_defaults(ctx, rtype.key, source, party)


def _apply_defaults(given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The default values for the keys the caller did not give (custom: key by key)."""
    out: dict[str, Any] = {}
    for key, value in defaults.items():
        if key not in RECORD_FIELDS or key in ("pipeline_id", "stage_id"):
            continue
        if key == "custom":
            if isinstance(value, Mapping):
                mine = given.get("custom") or {}
                extra = {k: v for k, v in value.items() if k not in mine}
                if extra:
                    out["custom"] = extra
        elif key not in given:
            out[key] = value
    return out


def _drop_unfit_defaults(ctx: Context, values: dict[str, Any], defaulted: set[str]) -> None:
    """A default never causes an error: a defaulted party, contact or owner that does not fit
    (archived, of another party, no longer a member) is left out instead."""
    scratch: dict[str, Any] = {}
    if "party_id" in defaulted and _check_party(ctx, values.get("party_id"), scratch) is None:
        values.pop("party_id", None)
    if "contact_id" in defaulted:
        scratch = {}
        _check_contact(ctx, values.get("contact_id"), values.get("party_id"), scratch)
        if scratch:
            values.pop("contact_id", None)
    if "owner_id" in defaulted and not _is_member(ctx, values.get("owner_id")):
        values.pop("owner_id", None)


# ---------------------------------------------------------------------------------------------
# checking references


def _check_party(ctx: Context, party_id: int | None, errors: dict[str, list[str]]) -> Party | None:
    if party_id is None:
        return None
    party = ctx.session.get(Party, party_id)
    if party is None:
        errors["party_id"] = [f"party {party_id} not found"]
    elif party.merged_into_id is not None:
        errors["party_id"] = [f"party {party.name!r} was merged into party {party.merged_into_id}"]
        party = None
    elif party.archived_at is not None:
        errors["party_id"] = [f"party {party.name!r} is archived"]
        party = None
    return party


def _check_contact(ctx: Context, contact_id: int | None, party_id: int | None,
                   errors: dict[str, list[str]]) -> Contact | None:
    if contact_id is None:
        return None
    contact = ctx.session.get(Contact, contact_id)
    if contact is None:
        errors["contact_id"] = [f"contact {contact_id} not found"]
        return None
    if contact.archived_at is not None:
        errors["contact_id"] = [f"contact {contact.name!r} is archived"]
        return None
    if party_id is not None and contact.party_id not in (None, party_id):
        errors["contact_id"] = [f"contact {contact.name!r} belongs to another party (party {contact.party_id})"]
        return None
    return contact


def _check_owner(ctx: Context, owner_id: int | None, errors: dict[str, list[str]], field: str = "owner_id") -> None:
    if owner_id is not None and not _is_member(ctx, owner_id):
        errors[field] = [f"user {owner_id} is not an active member of this business"]


def _clean_custom(ctx: Context, record_type: str, values: Mapping[str, Any] | None,
                  errors: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    from crmcore.fields.service import clean_custom_values

    try:
        return clean_custom_values(ctx, _custom_target(record_type), dict(values or {}), **kwargs)
    except ValidationFailed as exc:
        errors.update(exc.errors or {"custom": [exc.message]})
        return {}


def _placement(ctx: Context, rtype: RecordType, values: dict[str, Any],
               errors: dict[str, Any]) -> tuple[Pipeline | None, Stage | None]:
    """The pipeline and first stage of a new record (checked; errors collected)."""
    if not rtype.has_pipeline:
        for field in ("pipeline_id", "stage_id"):
            if values.get(field) is not None:
                errors[field] = [f"{rtype.plural.lower()} have no pipeline"]
        return None, None
    if values.get("pipeline_id") is not None:
        pipeline = load_pipeline(ctx, values["pipeline_id"])
        if pipeline is None:
            errors["pipeline_id"] = [f"pipeline {values['pipeline_id']} not found"]
            return None, None
        if pipeline.record_type != rtype.key:
            errors["pipeline_id"] = [f"pipeline {pipeline.name!r} is for {pipeline.record_type} records, "
                                     f"not {rtype.key} records"]
            return None, None
        if pipeline.archived_at is not None:
            errors["pipeline_id"] = [f"pipeline {pipeline.name!r} is archived"]
            return None, None
    else:
        pipeline = default_pipeline(ctx, rtype.key)
        if pipeline is None:
            errors["pipeline_id"] = [f"there is no pipeline for {rtype.plural.lower()} yet; an admin creates one"]
            return None, None
    if values.get("stage_id") is None:
        stage = _first(pipeline, rules.OPEN)
        if stage is None:  # the rules keep an open stage; this guards a hand-edited database
            errors["stage_id"] = [f"pipeline {pipeline.name!r} has no open stage"]
        return pipeline, stage
    try:
        stage = _target_stage(ctx, pipeline, values["stage_id"])
    except ValidationFailed as exc:
        errors.update(exc.errors)
        return pipeline, None
    if stage.kind != rules.OPEN:
        errors["stage_id"] = [f"a new record starts in an open stage; {stage.name!r} is a {stage.kind} stage"]
        return pipeline, None
    return pipeline, stage


# ---------------------------------------------------------------------------------------------
# create / update


@use_case(Role.MEMBER)
def create_record(ctx: Context, record_type: str, data: Mapping[str, Any], *, source_id: int | None = None,
                  link_kind: str = "next_step") -> Record:
    """Create a record of ``record_type``.

    ``data``: ``title`` (required unless a default gives one), ``description``, ``party_id``,
    ``contact_id`` (of that party, or unassigned), ``owner_id`` (a member; default: the acting
    user), ``amount`` (>= 0, up to 14 integer digits and 4 decimals) and ``currency`` (default:
    the party's, then the business's), ``expected_close_date``, ``pipeline_id`` (default: the
    type's default pipeline), ``stage_id`` (default: its first open stage), ``proposed_solution``,
    ``custom``. Keys not given are filled from :func:`record_defaults`. With ``source_id`` the new
    record is linked from that record (``link_kind``: next_step, qualified_into or related).
    """
    rtype = get_record_type(ctx, record_type)
    if link_kind not in LINK_KINDS:
        raise ValidationFailed("unknown link kind", {"link_kind": [f"use one of {', '.join(LINK_KINDS)}"]})
    if data is not None and not isinstance(data, Mapping):
        raise ValidationFailed("invalid record", {"_schema": ["expected an object of fields"]})
    given = load(RecordCreateSchema(), data or {}, f"invalid {rtype.label.lower()}", partial=("title",))
    source = _record(ctx, source_id, what="source record") if source_id is not None else None
    if source is not None:
        _writable(ctx, source)
    raw_defaults = _collect_defaults(ctx, rtype.key, source, _party_for_defaults(ctx, given.get("party_id"), source))
    defaults = load(RecordCreateSchema(), _apply_defaults(given, raw_defaults),
                    f"a default value for this {rtype.label.lower()} is invalid", partial=True)
    values = {**defaults, **given}
    if "custom" in defaults:
        values["custom"] = {**defaults["custom"], **(given.get("custom") or {})}
    return _insert(ctx, rtype, values, source=source, link_kind=link_kind, defaulted=set(defaults))


#: the fields ``crm_before_record_save`` reports for a new record (those a create may set)
SAVED_FIELDS = ("type", "title", "description", "party_id", "contact_id", "owner_id", "amount", "currency",
                "expected_close_date", "pipeline_id", "stage_id", "proposed_solution", "custom")


def _insert(ctx: Context, rtype: RecordType, values: dict[str, Any], *, source: Record | None,
            link_kind: str, defaulted: set[str]) -> Record:
    _drop_unfit_defaults(ctx, values, defaulted)
    errors: dict[str, Any] = {}
    if not values.get("title"):
        errors["title"] = ["Missing data for required field."]
    party = _check_party(ctx, values.get("party_id"), errors)
    contact = _check_contact(ctx, values.get("contact_id"), values.get("party_id"), errors)
    if contact is not None and values.get("party_id") is None and contact.party_id is not None:
        party = _check_party(ctx, contact.party_id, errors)  # a contact at a party brings its party
        values["party_id"] = contact.party_id
    owner_id = values.get("owner_id")
    if owner_id is None:
        owner_id = ctx.user_id
    _check_owner(ctx, owner_id, errors)
    pipeline, stage = _placement(ctx, rtype, values, errors)
    custom = _clean_custom(ctx, rtype.key, values.get("custom"), errors)
    if errors:
        raise ValidationFailed(f"invalid {rtype.label.lower()}", errors)

    now = utcnow()
    currency = values.get("currency") or (party.currency if party is not None else None) or ctx.business.currency
    record = Record(
        type=rtype.key,
        title=values["title"],
        description=values.get("description"),
        party_id=values.get("party_id"),
        contact_id=values.get("contact_id"),
        owner_id=owner_id,
        amount=values.get("amount"),
        currency=currency,
        expected_close_date=values.get("expected_close_date"),
        pipeline_id=pipeline.id if pipeline else None,
        stage_id=stage.id if stage else None,
        stage_entered_at=now if stage else None,
        status=rules.OPEN,
        proposed_solution=values.get("proposed_solution"),
        custom=custom,
        created_by_id=ctx.user_id,
    )
    if ctx.wants("crm_before_record_save"):
        ctx.validate("crm_before_record_save", record=record, created=True, changes={
            field: [None, _jsonable(getattr(record, field))] for field in SAVED_FIELDS
            if getattr(record, field) not in (None, {})})
    record.reference = None if rtype.deferred_reference else _reference(ctx, rtype)
    ctx.session.add(record)
    ctx.session.flush()
    if stage is not None:
        ctx.session.add(StageChange(record_id=record.id, from_stage_id=None, to_stage_id=stage.id,
                                    user_id=ctx.user_id, changed_at=now, seconds_in_from_stage=None))
    if source is not None:
        ctx.session.add(RecordLink(from_record_id=source.id, to_record_id=record.id, kind=link_kind))
    ctx.session.flush()

    audit.record(ctx, "record.created", record, changes={
        field: getattr(record, field) for field in (
            "type", "reference", "title", "party_id", "contact_id", "owner_id", "amount", "currency",
            "pipeline_id", "stage_id", "custom")
    } | ({"source_id": source.id, "link_kind": link_kind} if source else {}))
    from crmcore.timeline.service import log_event

    name = _name(ctx, record)
    log_event(ctx, "record_created", f"{_first_upper(name)} created: {record.title}", record_id=record.id,
              party_id=record.party_id, ref_type="record", ref_id=record.id,
              data={"type": record.type, "reference": record.reference,
                    "source_id": source.id if source else None})
    if source is not None:
        log_event(ctx, "next_step_created" if link_kind == "next_step" else f"record_{link_kind}",
                  f"{_first_upper(name)} created from this {_name(ctx, source)}: {record.title}",
                  record_id=source.id, party_id=source.party_id, ref_type="record", ref_id=record.id,
                  data={"kind": link_kind})
    ctx.emit("crm_after_record_created", record=record)
    return record


def _reference(ctx: Context, rtype: RecordType, when: dt.datetime | dt.date | None = None) -> str | None:
    from crmcore.numbering.service import active_rule
    from crmcore.numbering.service import assign_reference as next_code

    target = rtype.reference_target or _custom_target(rtype.key)
    if rtype.default_pattern and active_rule(ctx, target) is None:
        _seed_rule(ctx, target, rtype.default_pattern)
    return next_code(ctx, target, when)


def _seed_rule(ctx: Context, target: str, pattern: str) -> None:
    """Give ``target`` the type's default pattern when the business has no rule for it at all
    (a plugin's type: the core seeds only its own at business creation). A racing writer may
    seed it first: its rule is kept."""
    from sqlalchemy.exc import IntegrityError

    from crmcore.numbering.models import NumberingRule

    if ctx.session.scalar(select(NumberingRule.id).where(NumberingRule.target == target)) is not None:
        return
    try:
        with ctx.session.begin_nested():
            ctx.session.add(NumberingRule(target=target, pattern=pattern, is_active=True))
    except IntegrityError:
        pass


@use_case(Role.MEMBER)
def assign_reference(ctx: Context, record_id: int, *, when: dt.datetime | dt.date | None = None) -> Record:
    """Give the record its reference code now, from its type's numbering rule (``when``: the
    day the code's date parts come from; default today). For types with
    ``deferred_reference``, whose plugin numbers a record at a later step (an invoice when it
    is issued). The number is taken in the caller's transaction, so it is gap-free: a rollback
    gives it back. A record that has a code keeps it (calling again changes nothing); without
    an active rule for its type the record stays without one."""
    record = _record(ctx, record_id, lock=True)
    if record.reference is not None:
        return record
    _writable(ctx, record)
    reference = _reference(ctx, get_record_type(ctx, record.type), when)
    if reference is None:
        return record
    record.reference = reference
    ctx.session.flush()
    changes = {"reference": [None, reference]}
    audit.record(ctx, "record.reference_assigned", record, changes=changes)
    from crmcore.timeline.service import log_event

    log_event(ctx, "record_updated", f"{_first_upper(_name(ctx, record))} numbered", record_id=record.id,
              party_id=record.party_id, ref_type="record", ref_id=record.id, data={"fields": ["reference"]})
    ctx.emit("crm_after_record_updated", record=record, changes=changes)
    return record


@use_case(Role.MEMBER)
def update_record(ctx: Context, record_id: int, data: Mapping[str, Any]) -> Record:
    """Change some of a record's fields (not its pipeline, stage or status: use the moves).
    Only given keys change; ``custom`` values are merged into the existing ones (None clears one)."""
    record = _record(ctx, record_id, lock=True)
    _writable(ctx, record)
    clean = load(RecordUpdateSchema(), data, f"invalid {record.type}")
    errors: dict[str, Any] = {}
    party_id = clean.get("party_id", record.party_id)
    contact_id = clean.get("contact_id", record.contact_id)
    if "party_id" in clean and party_id != record.party_id:
        _check_party(ctx, party_id, errors)
    if ("contact_id" in clean and contact_id != record.contact_id) or "party_id" in clean:
        _check_contact(ctx, contact_id, party_id, errors)
    if "owner_id" in clean and clean["owner_id"] != record.owner_id:
        _check_owner(ctx, clean["owner_id"], errors)
    if "custom" in clean:
        clean["custom"] = _clean_custom(ctx, record.type, clean["custom"], errors,
                                        existing=dict(record.custom or {}), partial=True)
    if errors:
        raise ValidationFailed(f"invalid {record.type}", errors)
    if clean.get("amount") is not None and not clean.get("currency", record.currency):
        party = ctx.session.get(Party, party_id) if party_id else None
        clean["currency"] = (party.currency if party else None) or ctx.business.currency

    changes: dict[str, list[Any]] = {}
    for field, new in clean.items():
        old = getattr(record, field)
        if old != new:
            changes[field] = _jsonable([old, new])
            setattr(record, field, new)
    if not changes:
        return record
    ctx.validate("crm_before_record_save", record=record, changes=changes, created=False)
    ctx.session.flush()
    audit.record(ctx, "record.updated", record, changes=changes)
    from crmcore.timeline.service import log_event

    log_event(ctx, "record_updated", f"{_first_upper(_name(ctx, record))} updated: {', '.join(sorted(changes))}",
              record_id=record.id, party_id=record.party_id, ref_type="record", ref_id=record.id,
              data={"fields": sorted(changes)})
    ctx.emit("crm_after_record_updated", record=record, changes=changes)
    return record


@use_case(Role.MEMBER)
def link_records(ctx: Context, from_id: int, to_id: int, kind: str = "related") -> RecordLink:
    """Link ``from_id`` to ``to_id`` (shown on both records' pages): a plugin links an order
    from its deal as well as from its quote. Linking again returns the existing link; both
    records must be of this business and differ; ``kind`` is one of ``LINK_KINDS``."""
    if kind not in LINK_KINDS:
        raise ValidationFailed("unknown link kind", {"kind": [f"use one of {', '.join(LINK_KINDS)}"]})
    source = _record(ctx, _int_id(from_id, "from_id"), what="record to link from")
    target = _record(ctx, _int_id(to_id, "to_id"), what="record to link to")
    if source.id == target.id:
        raise ValidationFailed("a record cannot be linked to itself", {"to_id": ["choose another record"]})
    _writable(ctx, source)
    found = ctx.session.scalar(select(RecordLink).where(
        RecordLink.from_record_id == source.id, RecordLink.to_record_id == target.id, RecordLink.kind == kind))
    if found is not None:
        return found
    link = RecordLink(from_record_id=source.id, to_record_id=target.id, kind=kind)
    ctx.session.add(link)
    ctx.session.flush()
    audit.record(ctx, "record.linked", source, changes={"to_id": target.id, "kind": kind})
    return link


@use_case(Role.MEMBER)
def archive_record(ctx: Context, record_id: int) -> Record:
    """Hide a record from lists and boards (kept, with its history; restore brings it back)."""
    record = _record(ctx, record_id, lock=True)
    if record.archived_at is not None:
        return record
    record.archived_at = utcnow()
    audit.record(ctx, "record.archived", record)
    from crmcore.timeline.service import log_event

    log_event(ctx, "record_archived", f"{_first_upper(_name(ctx, record))} archived", record_id=record.id,
              party_id=record.party_id)
    return record


@use_case(Role.MEMBER)
def restore_record(ctx: Context, record_id: int) -> Record:
    record = _record(ctx, record_id, lock=True)
    if record.archived_at is None:
        return record
    record.archived_at = None
    audit.record(ctx, "record.restored", record)
    from crmcore.timeline.service import log_event

    log_event(ctx, "record_restored", f"{_first_upper(_name(ctx, record))} restored", record_id=record.id,
              party_id=record.party_id)
    return record


# ---------------------------------------------------------------------------------------------
# reading


@use_case(Role.READ_ONLY, write=False)
def get_record(ctx: Context, record_id: int) -> Record:
    return _record(ctx, record_id)


@use_case(Role.READ_ONLY, write=False)
def record_details(ctx: Context, record_id: int) -> dict[str, Any]:
    """Everything a record page shows, in a fixed number of queries whatever the record holds:
    the record, its stage, pipeline (with stages), party, contact, owner, lost reason, team,
    stakeholders, competitors, links both ways and stage history."""
    record = _record(ctx, record_id)
    owner = aliased(User)
    party, contact, owner_user, lost_reason = ctx.session.execute(
        select(Party, Contact, owner, ChoiceOption)
        .select_from(Record)
        .outerjoin(Party, Party.id == Record.party_id)
        .outerjoin(Contact, Contact.id == Record.contact_id)
        .outerjoin(owner, owner.id == Record.owner_id)
        .outerjoin(ChoiceOption, ChoiceOption.id == Record.lost_reason_id)
        .where(Record.id == record.id)
    ).one()
    pipeline = load_pipeline(ctx, record.pipeline_id) if record.pipeline_id else None
    stage = _stage_in(pipeline, record.stage_id) if pipeline else None
    return {
        "record": record,
        "type": get_record_type(ctx, record.type),
        "pipeline": pipeline,
        "stage": stage,
        "party": party,
        "contact": contact,
        "owner": owner_user,
        "lost_reason": lost_reason,
        "team": _team(ctx, record.id),
        "stakeholders": _stakeholders(ctx, record.id),
        "competitors": _competitors(ctx, record.id),
        **_links(ctx, record.id),
        "history": _history(ctx, record.id),
    }


def _team(ctx: Context, record_id: int) -> list[dict[str, Any]]:
    rows = ctx.session.execute(
        select(RecordTeamMember, User, ChoiceOption)
        .join(User, User.id == RecordTeamMember.user_id)
        .outerjoin(ChoiceOption, ChoiceOption.id == RecordTeamMember.role_id)
        .where(RecordTeamMember.record_id == record_id)
        .order_by(User.name, User.id)
    ).all()
    return [{"member": m, "user": u, "role": r} for m, u, r in rows]


def _stakeholders(ctx: Context, record_id: int) -> list[dict[str, Any]]:
    rows = ctx.session.execute(
        select(RecordStakeholder, Contact, ChoiceOption)
        .join(Contact, Contact.id == RecordStakeholder.contact_id)
        .outerjoin(ChoiceOption, ChoiceOption.id == RecordStakeholder.role_id)
        .where(RecordStakeholder.record_id == record_id)
        .order_by(RecordStakeholder.id)
    ).all()
    return [{"stakeholder": s, "contact": c, "role": r} for s, c, r in rows]


def _competitors(ctx: Context, record_id: int) -> list[dict[str, Any]]:
    rows = ctx.session.execute(
        select(RecordCompetitor, ChoiceOption)
        .join(ChoiceOption, ChoiceOption.id == RecordCompetitor.competitor_id)
        .where(RecordCompetitor.record_id == record_id)
        .order_by(ChoiceOption.position, RecordCompetitor.id)
    ).all()
    return [{"entry": e, "competitor": c} for e, c in rows]


def _links(ctx: Context, record_id: int) -> dict[str, list[dict[str, Any]]]:
    """Links from this record (``links_out``: its next steps, the deal it was qualified into)
    and to it (``links_in``: where it came from), with the other record, in one query."""
    other = aliased(Record)
    rows = ctx.session.execute(
        select(RecordLink, other)
        .join(other, or_(
            and_(RecordLink.from_record_id == record_id, other.id == RecordLink.to_record_id),
            and_(RecordLink.to_record_id == record_id, other.id == RecordLink.from_record_id),
        ))
        .where(or_(RecordLink.from_record_id == record_id, RecordLink.to_record_id == record_id),
               other.type.in_(sorted(record_types(ctx))))
        .order_by(RecordLink.id)
    ).all()
    out: dict[str, list[dict[str, Any]]] = {"links_out": [], "links_in": []}
    for link, rec in rows:
        key = "links_out" if link.from_record_id == record_id else "links_in"
        out[key].append({"kind": link.kind, "record": rec, "link": link})
    return out


def _history(ctx: Context, record_id: int) -> list[StageChange]:
    return list(ctx.session.scalars(
        select(StageChange).where(StageChange.record_id == record_id)
        .order_by(StageChange.changed_at, StageChange.id)
        .options(joinedload(StageChange.from_stage), joinedload(StageChange.to_stage),
                 joinedload(StageChange.user))
    ).unique())


@use_case(Role.READ_ONLY, write=False)
def stage_history(ctx: Context, record_id: int) -> list[StageChange]:
    """Every stage change of the record, oldest first, with ``from_stage`` / ``to_stage`` (names),
    ``user`` (who), ``changed_at`` (when) and ``seconds_in_from_stage`` (how long it had stayed
    in the stage it left; None for the first placement)."""
    record = _record(ctx, record_id)
    return _history(ctx, record.id)


@use_case(Role.READ_ONLY, write=False)
def record_panels(ctx: Context, record_id: int) -> list[dict[str, Any]]:
    """The panels enabled plugins add to the record's page (``crm_record_panels``), by ``order``,
    each with the ``plugin`` that gave it."""
    record = _record(ctx, record_id)
    panels = []
    for plugin, result in ctx.collect("crm_record_panels", record=record):
        for panel in result if isinstance(result, list) else [result]:
            if isinstance(panel, Mapping) and "title" in panel:
                panels.append({"order": 100, **panel, "plugin": plugin})
    return sorted(panels, key=lambda p: (p["order"], p["plugin"]))


@use_case(Role.READ_ONLY, write=False)
def list_records(ctx: Context, *, record_type: str | None = None, filters: Mapping[str, Any] | None = None,
                 cursor: str | None = None, limit: int | None = 50, sort: str = "-created",
                 with_count: bool = True) -> Page[Record]:
    """One keyset page of records (not archived unless ``include_archived``) with a capped total
    (``with_count=False``: no total, for a page that fetches :func:`count_records` afterwards);
    ``extra["parties"]`` maps the page's party ids to their parties (one query).

    ``filters``: ``status``, ``pipeline_id``, ``stage_id``, ``party_id``, ``contact_id``,
    ``owner_id``, ``q`` (title prefix, any case), ``custom`` ({key: value}; needs ``record_type``).
    ``sort``: created, updated or title, with ``-`` for descending.
    """
    if sort not in SORTS:
        raise ValidationFailed("unknown sort", {"sort": [f"use one of {', '.join(SORTS)}"]})
    stmt = _records_stmt(ctx, record_type, filters)
    column, descending = SORTS[sort]
    order = [getattr(Record, column)] + ([Record.id] if column != "id" else [])
    page = keyset_page(ctx.session, stmt, order, cursor=cursor, limit=limit, descending=descending)
    if with_count:
        page.total = capped_count(ctx.session, stmt)
    party_ids = {r.party_id for r in page.items if r.party_id is not None}
    page.extra["parties"] = ({p.id: p for p in ctx.session.scalars(select(Party).where(Party.id.in_(party_ids)))}
                             if party_ids else {})
    return page


@use_case(Role.READ_ONLY, write=False)
def count_records(ctx: Context, *, record_type: str | None = None,
                  filters: Mapping[str, Any] | None = None) -> CappedCount:
    """How many records match ``filters`` (as :func:`list_records` takes them), capped: what a
    list page shows after its rows, since counting is most of a filtered page's cost."""
    return capped_count(ctx.session, _records_stmt(ctx, record_type, filters))


def _records_stmt(ctx: Context, record_type: str | None, filters: Mapping[str, Any] | None) -> Select[Any]:
    """The filtered select of :func:`list_records` and :func:`count_records` (no order, no limit)."""
    clean = load(RecordFilterSchema(), filters or {}, "invalid filters")
    stmt = select(Record)
    if record_type is not None:
        stmt = stmt.where(Record.type == get_record_type(ctx, record_type).key)
    else:
        stmt = stmt.where(Record.type.in_(sorted(record_types(ctx))))
    if not clean.get("include_archived"):
        stmt = stmt.where(Record.archived_at.is_(None))
    for field in ("status", "pipeline_id", "stage_id", "party_id", "contact_id", "owner_id"):
        if clean.get(field) is not None:
            stmt = stmt.where(getattr(Record, field) == clean[field])
    if clean.get("q"):
        stmt = stmt.where(Record.title.ilike(_escape_like(clean["q"]) + "%", escape="\\"))
    if clean.get("custom"):
        if record_type is None:
            raise ValidationFailed("custom filters need a record type",
                                   {"custom": ["give record_type to filter on custom fields"]})
        from crmcore.fields.service import custom_filter

        for key, value in clean["custom"].items():
            stmt = stmt.where(custom_filter(ctx, _custom_target(record_type), Record.custom, key, value))
    return stmt


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@use_case(Role.READ_ONLY, write=False)
def board(ctx: Context, pipeline_id: int, *, per_stage: int = 50) -> dict[str, Any]:
    """A pipeline as columns: each active stage in order with its first ``per_stage`` records
    (open stages: those waiting longest first; closing stages: the latest closed first), a capped
    count, and the parties of the cards. Bounded work whatever the pipeline holds: two indexed
    queries per stage, one for the parties. :func:`stage_records` pages further."""
    per_stage = min(clamp_limit(per_stage), BOARD_MAX_PER_STAGE)
    pipeline = load_pipeline(ctx, pipeline_id)
    if pipeline is None or pipeline.record_type not in record_types(ctx):
        raise NotFound(f"pipeline {pipeline_id} not found")
    columns = []
    for stage in pipeline.active_stages():
        stmt = _stage_stmt(stage)
        newest_first = stage.kind != rules.OPEN
        order = [Record.stage_entered_at.desc(), Record.id.desc()] if newest_first else \
            [Record.stage_entered_at, Record.id]
        records = list(ctx.session.scalars(stmt.order_by(*order).limit(per_stage)))
        columns.append({"stage": stage, "records": records, "count": capped_count(ctx.session, stmt),
                        "more": len(records) == per_stage})
    party_ids = {r.party_id for c in columns for r in c["records"] if r.party_id}
    parties = {p.id: p for p in ctx.session.scalars(select(Party).where(Party.id.in_(party_ids)))} \
        if party_ids else {}
    return {"pipeline": pipeline, "columns": columns, "parties": parties}


def _stage_stmt(stage: Stage) -> Any:
    return select(Record).where(Record.stage_id == stage.id, Record.archived_at.is_(None))


@use_case(Role.READ_ONLY, write=False)
def stage_records(ctx: Context, stage_id: int, *, cursor: str | None = None, limit: int | None = 50) -> Page[Record]:
    """One keyset page of a board column (same order as :func:`board`)."""
    stage = get_or_404(ctx, Stage, stage_id, "stage")
    pipeline = ctx.session.get(Pipeline, stage.pipeline_id)
    if pipeline is None or pipeline.record_type not in record_types(ctx):
        raise NotFound(f"stage {stage_id} not found")
    return keyset_page(ctx.session, _stage_stmt(stage), [Record.stage_entered_at, Record.id], cursor=cursor,
                       limit=limit, descending=stage.kind != rules.OPEN)


# ---------------------------------------------------------------------------------------------
# stage moves


_stage_changes = StageChange.__table__
_INSERT_STAGE_CHANGE = _stage_changes.insert()


def _stage_row(ctx: Context, stage: AnyStage | None) -> Stage | None:
    """What hooks receive: a :class:`Stage` (snapshots become detached copies)."""
    if stage is None or isinstance(stage, Stage):
        return stage
    return stage.as_stage(ctx.business_id)


def _transition(ctx: Context, record: Record, pipeline: AnyPipeline, to_stage: AnyStage, note: str | None,
                event: str) -> AnyStage | None:
    """Ask the plugins, then move ``record`` into ``to_stage``: history row, status, timeline,
    audit and ``crm_after_stage_change``. Returns the stage it left. Nothing changes on a veto.

    The history row is one Core INSERT (this is the hot path of a board); the record's own
    columns are flushed with the transaction's commit, in one UPDATE with whatever the caller
    (close, reopen) changes next."""
    from_info = _stage_in(pipeline, record.stage_id)
    if from_info is None and record.stage_id is not None:  # a stage newer than the cached pipeline
        from_info = ctx.session.get(Stage, record.stage_id)
    from_stage, to_row = _stage_row(ctx, from_info), _stage_row(ctx, to_stage)
    ctx.validate("crm_before_stage_change", record=record, from_stage=from_stage, to_stage=to_row)
    now = utcnow()
    old_status = record.status
    from_stage_id = record.stage_id
    change_id = ctx.session.connection().execute(_INSERT_STAGE_CHANGE, {
        "business_id": ctx.business_id,  # explicit: Core INSERT, outside the tenant scope
        "record_id": record.id, "from_stage_id": from_stage_id, "to_stage_id": to_stage.id,
        "user_id": ctx.user_id, "changed_at": now,
        "seconds_in_from_stage": rules.seconds_between(record.stage_entered_at, now), "note": note,
    }).inserted_primary_key[0]
    record.stage_id = to_stage.id
    record.stage_entered_at = now
    record.status = rules.status_for(to_stage.kind)
    from_name = from_info.name if from_info else None
    audit.record(ctx, f"record.{event}", record, changes={
        "stage": [from_name, to_stage.name], "stage_id": [from_stage_id, to_stage.id],
        "status": [old_status, record.status],
    } | ({"note": note} if note else {}))
    summaries = {
        "stage_changed": f"Moved from {from_name} to {to_stage.name}",
        "won": f"Won ({to_stage.name})",
        "lost": f"Lost ({to_stage.name})",
        "reopened": f"Reopened into {to_stage.name}",
    }
    from crmcore.timeline.service import log_event

    log_event(ctx, "stage_changed" if event == "stage_changed" else f"record_{event}", summaries[event],
              record_id=record.id, party_id=record.party_id, ref_type="stage_change", ref_id=change_id,
              data={"from_stage_id": from_stage_id, "to_stage_id": to_stage.id,
                    "status": record.status, "note": note})
    ctx.emit("crm_after_stage_change", record=record, from_stage=from_stage, to_stage=to_row)
    return from_info


@use_case(Role.MEMBER)
def move_stage(ctx: Context, record_id: int, stage_id: int, *, note: str | None = None) -> Record:
    """Move an open record to another stage of its pipeline. A won stage closes it as won (see
    :func:`close_won`); a lost stage needs a reason (:func:`close_lost`). Moving into the stage it
    is already in changes nothing."""
    note = clean_note(note)
    record = _record(ctx, record_id, lock=True)
    _writable(ctx, record)
    pipeline = _with_pipeline(ctx, record)
    to_stage = _target_stage(ctx, pipeline, stage_id)
    if record.status == rules.OPEN and to_stage.kind == rules.WON:
        return close_won(ctx, record.id, stage_id=to_stage.id, note=note)
    if record.status == rules.OPEN and to_stage.id == record.stage_id:
        return record
    rules.check_move(record.status, to_stage.kind, what=_name(ctx, record))
    _transition(ctx, record, pipeline, to_stage, note, "stage_changed")
    return record


@use_case(Role.MEMBER)
def close_won(ctx: Context, record_id: int, *, stage_id: int | None = None, note: str | None = None) -> Record:
    """Close an open record as won, in ``stage_id`` or the pipeline's first won stage."""
    note = clean_note(note)
    record = _record(ctx, record_id, lock=True)
    _writable(ctx, record)
    pipeline = _with_pipeline(ctx, record)
    stage = _closing_stage(ctx, record, pipeline, stage_id, rules.WON)
    rules.check_close(record.status, stage.kind, rules.WON, what=_name(ctx, record))
    _transition(ctx, record, pipeline, stage, note, "won")
    record.closed_at = record.stage_entered_at
    record.lost_reason_id = None
    record.lost_note = None
    ctx.emit("crm_after_record_won", record=record)
    return record


@use_case(Role.MEMBER)
def close_lost(ctx: Context, record_id: int, lost_reason: Any, *, stage_id: int | None = None,
               note: str | None = None) -> Record:
    """Close an open record as lost, with a reason from the business's ``lost_reason`` list (its
    value or id), in ``stage_id`` or the pipeline's first lost stage."""
    from crmcore.lists.service import resolve_option

    note = clean_note(note)
    record = _record(ctx, record_id, lock=True)
    _writable(ctx, record)
    pipeline = _with_pipeline(ctx, record)
    reason = resolve_option(ctx, "lost_reason", lost_reason, field="lost_reason")
    if reason is None:
        raise ValidationFailed("say why it was lost", {"lost_reason": ["a lost reason is required"]})
    stage = _closing_stage(ctx, record, pipeline, stage_id, rules.LOST)
    rules.check_close(record.status, stage.kind, rules.LOST, what=_name(ctx, record))
    _transition(ctx, record, pipeline, stage, note, "lost")
    record.closed_at = record.stage_entered_at
    record.lost_reason_id = reason.id
    record.lost_note = note
    ctx.emit("crm_after_record_lost", record=record, lost_reason=reason.label)
    return record


def _closing_stage(ctx: Context, record: Record, pipeline: AnyPipeline, stage_id: Any, kind: str) -> AnyStage:
    if stage_id is not None:
        return _target_stage(ctx, pipeline, stage_id)
    stage = _first(pipeline, kind)
    if stage is None:  # the rules keep one; this guards a hand-edited database
        raise Conflict(f"pipeline {pipeline.name!r} has no {kind} stage")
    return stage


@use_case(Role.MEMBER)
def reopen(ctx: Context, record_id: int, *, stage_id: int | None = None, note: str | None = None) -> Record:
    """Reopen a won or lost record into an open stage: ``stage_id``, or by default the stage it
    was in before it was closed (else the pipeline's first open stage). Clears the close date and
    the lost reason."""
    note = clean_note(note)
    record = _record(ctx, record_id, lock=True)
    _writable(ctx, record)
    pipeline = _with_pipeline(ctx, record)
    if record.status == rules.OPEN:  # refuse before looking for a stage
        rules.check_reopen(record.status, rules.OPEN, what=_name(ctx, record))
    if stage_id is not None:
        stage = _target_stage(ctx, pipeline, stage_id)
    else:
        stage = _stage_before_closing(ctx, record, pipeline)
    rules.check_reopen(record.status, stage.kind, what=_name(ctx, record))
    _transition(ctx, record, pipeline, stage, note, "reopened")
    record.closed_at = None
    record.lost_reason_id = None
    record.lost_note = None
    ctx.emit("crm_after_record_reopened", record=record)
    return record


def _stage_before_closing(ctx: Context, record: Record, pipeline: AnyPipeline) -> AnyStage:
    previous_id = ctx.session.scalar(
        select(StageChange.from_stage_id)
        .where(StageChange.record_id == record.id, StageChange.to_stage_id == record.stage_id)
        .order_by(StageChange.changed_at.desc(), StageChange.id.desc()).limit(1)
    )
    previous = _stage_in(pipeline, previous_id)
    if previous is not None and previous.kind == rules.OPEN and previous.archived_at is None:
        return previous
    stage = _first(pipeline, rules.OPEN)
    if stage is None:
        raise Conflict(f"pipeline {pipeline.name!r} has no open stage")
    return stage


# ---------------------------------------------------------------------------------------------
# next steps and lead qualification


@use_case(Role.MEMBER)
def create_next_step(ctx: Context, source_id: int, record_type: str, data: Mapping[str, Any] | None = None) -> Record:
    """Create a record of ``record_type`` from ``source_id`` (prefilled from it, linked to it)."""
    return create_record(ctx, record_type, data or {}, source_id=source_id, link_kind="next_step")


@use_case(Role.MEMBER)
def qualify_lead(ctx: Context, lead_id: int, data: Mapping[str, Any] | None = None) -> Record:
    """Turn an open lead into a deal and return the deal.

    The deal takes the lead's party, contact, title, amount, currency, owner and the custom values
    whose keys deals also have; ``data`` overrides any of them (e.g. the ``party_id`` of a lead
    that had none). The lead is kept, linked to the deal (``qualified_into``) and closed as won
    in its pipeline, with its history. A lead is qualified once.
    """
    lead = _record(ctx, lead_id, lock=True, what="lead")
    if lead.type != "lead":
        raise ValidationFailed(f"{_name(ctx, lead)} is not a lead", {"lead_id": ["only a lead can be qualified"]})
    _writable(ctx, lead)
    already = ctx.session.scalar(select(RecordLink.to_record_id).where(
        RecordLink.from_record_id == lead.id, RecordLink.kind == "qualified_into").limit(1))
    if already is not None:
        raise Conflict(f"{_name(ctx, lead)} was already qualified into record {already}")
    if lead.status != rules.OPEN:
        raise Conflict(f"{_name(ctx, lead)} is {lead.status}; only an open lead can be qualified")
    if data is not None and not isinstance(data, Mapping):
        raise ValidationFailed("invalid deal", {"_schema": ["expected an object of fields"]})
    deal_data: dict[str, Any] = {f: getattr(lead, f) for f in QUALIFY_COPIES if getattr(lead, f) is not None}
    deal_keys = set(ctx.session.scalars(select(FieldDefinition.key).where(
        FieldDefinition.target == _custom_target("deal"), FieldDefinition.archived_at.is_(None))))
    custom = {k: v for k, v in (lead.custom or {}).items() if k in deal_keys}
    given = dict(data or {})
    _drop_unfit_lead_values(ctx, lead, deal_data, given)
    deal_data.update(given)
    if custom:
        deal_data["custom"] = {**custom, **(given.get("custom") or {})}
    deal = create_record(ctx, "deal", deal_data, source_id=lead.id, link_kind="qualified_into")
    close_won(ctx, lead.id, note=f"Qualified into {_name(ctx, deal)}")
    ctx.emit("crm_after_lead_qualified", lead=lead, deal=deal)
    return deal


def _drop_unfit_lead_values(ctx: Context, lead: Record, deal_data: dict[str, Any], given: dict[str, Any]) -> None:
    """What the deal would take from the lead but cannot: the lead's contact when ``given`` puts
    the deal at another party, its owner when they left the business."""
    party_id = given.get("party_id", lead.party_id)
    if "contact_id" not in given and lead.contact_id is not None:
        contact = ctx.session.get(Contact, lead.contact_id)
        if contact is None or contact.party_id not in (None, party_id):
            deal_data.pop("contact_id", None)
    if "owner_id" not in given and not _is_member(ctx, lead.owner_id):
        deal_data.pop("owner_id", None)


# ---------------------------------------------------------------------------------------------
# team, stakeholders, competitors


def _option(ctx: Context, list_key: str, value: Any, field: str, keep: int | None = None) -> OptionInfo | None:
    from crmcore.lists.service import resolve_option

    return resolve_option(ctx, list_key, value, field=field, keep=keep)


def _int_id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise ValidationFailed(f"invalid {field}", {field: ["must be a positive whole number (an id)"]})
    return int(value)


@use_case(Role.MEMBER)
def add_team_member(ctx: Context, record_id: int, user_id: int, role: Any = None) -> RecordTeamMember:
    """Put a member of the business on the record's team, with a role from ``team_role``."""
    record = _record(ctx, record_id, lock=True)
    _writable(ctx, record)
    uid = _int_id(user_id, "user_id")
    errors: dict[str, Any] = {}
    _check_owner(ctx, uid, errors, field="user_id")
    if errors:
        raise ValidationFailed("not a member", errors)
    option = _option(ctx, "team_role", role, "role")
    if ctx.session.get(RecordTeamMember, (record.id, uid)) is not None:
        raise Conflict(f"user {uid} is already on the team of {_name(ctx, record)}")
    member = RecordTeamMember(record_id=record.id, user_id=uid, role_id=option.id if option else None)
    ctx.session.add(member)
    ctx.session.flush()
    audit.record(ctx, "record.team_member_added", record,
                 changes={"user_id": uid, "role": option.value if option else None})
    return member


@use_case(Role.MEMBER)
def remove_team_member(ctx: Context, record_id: int, user_id: int) -> None:
    record = _record(ctx, record_id, lock=True)
    _writable(ctx, record)
    member = ctx.session.get(RecordTeamMember, (record.id, _int_id(user_id, "user_id")))
    if member is None:
        raise NotFound(f"user {user_id} is not on the team of {_name(ctx, record)}")
    ctx.session.delete(member)
    audit.record(ctx, "record.team_member_removed", record, changes={"user_id": member.user_id})


@use_case(Role.MEMBER)
def add_stakeholder(ctx: Context, record_id: int, contact_id: int, role: Any = None,
                    notes: str | None = None) -> RecordStakeholder:
    """Add a contact to the record's buying decision, with a ``stakeholder_role`` and notes. The
    contact must be at the record's party (or unassigned)."""
    record = _record(ctx, record_id, lock=True)
    _writable(ctx, record)
    clean = load(StakeholderSchema(), {"role": role, "notes": notes}, "invalid stakeholder")
    errors: dict[str, Any] = {}
    cid = _int_id(contact_id, "contact_id")
    contact = _check_contact(ctx, cid, record.party_id, errors)
    if errors:
        raise ValidationFailed("invalid stakeholder", errors)
    assert contact is not None
    option = _option(ctx, "stakeholder_role", clean["role"], "role")
    if ctx.session.scalar(select(RecordStakeholder.id).where(
            RecordStakeholder.record_id == record.id, RecordStakeholder.contact_id == contact.id)) is not None:
        raise Conflict(f"{contact.name} is already a stakeholder of {_name(ctx, record)}")
    row = RecordStakeholder(record_id=record.id, contact_id=contact.id, role_id=option.id if option else None,
                            notes=clean["notes"])
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(ctx, "record.stakeholder_added", record,
                 changes={"contact_id": contact.id, "role": option.value if option else None})
    return row


def _row_of_record(ctx: Context, model: type, row_id: Any, what: str) -> tuple[Any, Record]:
    row = get_or_404(ctx, model, row_id, what)
    ctx.session.refresh(row)
    record = _record(ctx, row.record_id, lock=True)
    _writable(ctx, record)
    return row, record


@use_case(Role.MEMBER)
def update_stakeholder(ctx: Context, stakeholder_id: int, data: Mapping[str, Any]) -> RecordStakeholder:
    """Change a stakeholder's ``role`` and/or ``notes``."""
    row, record = _row_of_record(ctx, RecordStakeholder, stakeholder_id, "stakeholder")
    clean = load(StakeholderSchema(), data, "invalid stakeholder")
    changes: dict[str, Any] = {}
    if "role" in clean:
        option = _option(ctx, "stakeholder_role", clean["role"], "role", keep=row.role_id)
        new_role = option.id if option else None
        if new_role != row.role_id:
            changes["role_id"] = [row.role_id, new_role]
            row.role_id = new_role
    if "notes" in clean and clean["notes"] != row.notes:
        changes["notes"] = [row.notes, clean["notes"]]
        row.notes = clean["notes"]
    if changes:
        audit.record(ctx, "record.stakeholder_updated", record, changes={"stakeholder_id": row.id, **changes})
    return row


@use_case(Role.MEMBER)
def remove_stakeholder(ctx: Context, stakeholder_id: int) -> None:
    row, record = _row_of_record(ctx, RecordStakeholder, stakeholder_id, "stakeholder")
    ctx.session.delete(row)
    audit.record(ctx, "record.stakeholder_removed", record, changes={"contact_id": row.contact_id})


@use_case(Role.MEMBER)
def add_competitor(ctx: Context, record_id: int, competitor: Any, notes: str | None = None) -> RecordCompetitor:
    """Note a competitor (from the business's ``competitor`` list, by value or id) on the record."""
    record = _record(ctx, record_id, lock=True)
    _writable(ctx, record)
    clean = load(CompetitorSchema(), {"competitor": competitor, "notes": notes}, "invalid competitor")
    option = _option(ctx, "competitor", clean["competitor"], "competitor")
    if option is None:
        raise ValidationFailed("which competitor?", {"competitor": ["a competitor is required"]})
    if ctx.session.scalar(select(RecordCompetitor.id).where(
            RecordCompetitor.record_id == record.id, RecordCompetitor.competitor_id == option.id)) is not None:
        raise Conflict(f"{option.label} is already a competitor on {_name(ctx, record)}")
    row = RecordCompetitor(record_id=record.id, competitor_id=option.id, notes=clean["notes"])
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(ctx, "record.competitor_added", record, changes={"competitor": option.value})
    return row


@use_case(Role.MEMBER)
def update_competitor(ctx: Context, entry_id: int, data: Mapping[str, Any]) -> RecordCompetitor:
    """Change a competitor entry's ``competitor`` and/or ``notes``."""
    row, record = _row_of_record(ctx, RecordCompetitor, entry_id, "competitor entry")
    clean = load(CompetitorSchema(), data, "invalid competitor")
    changes: dict[str, Any] = {}
    if "competitor" in clean:
        option = _option(ctx, "competitor", clean["competitor"], "competitor", keep=row.competitor_id)
        if option is None:
            raise ValidationFailed("which competitor?", {"competitor": ["a competitor is required"]})
        if option.id != row.competitor_id:
            taken = ctx.session.scalar(select(RecordCompetitor.id).where(
                RecordCompetitor.record_id == record.id, RecordCompetitor.competitor_id == option.id))
            if taken is not None:
                raise Conflict(f"{option.label} is already a competitor on {_name(ctx, record)}")
            changes["competitor_id"] = [row.competitor_id, option.id]
            row.competitor_id = option.id
    if "notes" in clean and clean["notes"] != row.notes:
        changes["notes"] = [row.notes, clean["notes"]]
        row.notes = clean["notes"]
    if changes:
        audit.record(ctx, "record.competitor_updated", record, changes={"entry_id": row.id, **changes})
    return row


@use_case(Role.MEMBER)
def remove_competitor(ctx: Context, entry_id: int) -> None:
    row, record = _row_of_record(ctx, RecordCompetitor, entry_id, "competitor entry")
    ctx.session.delete(row)
    audit.record(ctx, "record.competitor_removed", record, changes={"competitor_id": row.competitor_id})
