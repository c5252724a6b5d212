"""Records (leads, deals, incidents, actions, and plugins' types): lists, create, change, and
their moves through the pipeline (stage moves, won, lost, reopen, lead qualification)."""

from __future__ import annotations

from typing import Any

from crmcore.records import service
from crmcore.records.models import Record
from crmcore.records.schemas import RecordCreateSchema, RecordUpdateSchema
from crmcore.web.api.blueprint import ID, body, bp, ctx, query, reads, route, writes
from crmcore.web.api.parties import custom_filters, total
from crmcore.web.api.schemas import (
    CloseLostInput,
    CloseWonInput,
    RecordCreateInput,
    RecordListQuery,
    RecordPageSchema,
    RecordSchema,
    ReopenInput,
    StageMoveInput,
    money_text,
)

TAG = "records"

_COLUMNS = ("id", "type", "reference", "title", "description", "party_id", "contact_id", "owner_id", "amount",
            "currency", "expected_close_date", "pipeline_id", "stage_id", "stage_entered_at", "status",
            "lost_reason_id", "lost_note", "closed_at", "proposed_solution", "archived_at", "created_at",
            "updated_at")


def record_out(record: Record) -> dict[str, Any]:
    out = {column: getattr(record, column) for column in _COLUMNS}
    out["custom"] = dict(record.custom or {})
    out["amount"] = money_text(record.amount)
    return out


@route("/records", TAG, methods=["GET"])
@reads
@query(RecordListQuery)
@bp.response(200, RecordPageSchema)
def list_records(args: dict[str, Any]) -> dict[str, Any]:
    """List records

    One page of records (of one `type`, or of every type), newest first by default. Filter by
    custom fields with `custom.<key>=value` (needs `type`).
    """
    record_type = args.pop("type", None)
    cursor, limit, sort = args.pop("cursor", None), args.pop("limit", None), args.pop("sort")
    custom = custom_filters()
    if custom:
        args["custom"] = custom
    page = service.list_records(ctx(), record_type=record_type, filters=args, cursor=cursor, limit=limit,
                                sort=sort)
    return {"items": [record_out(r) for r in page.items], "next_cursor": page.next_cursor,
            "total": total(page.total)}


@route("/records", TAG, methods=["POST"])
@writes
@bp.arguments(RecordCreateInput)
@bp.response(201, RecordSchema)
def create_record(_args: dict[str, Any]) -> dict[str, Any]:
    """Create a record

    Of `type`; with `source_id` as the next step of that record (prefilled from it and linked).
    Keys left out are filled from the defaults (owner: you; pipeline: the type's default, first
    open stage; currency: the party's, then the business's).
    """
    data = body()
    record_type, source_id = data.pop("type"), data.pop("source_id", None)
    return record_out(service.create_record(ctx(), record_type, data, source_id=source_id))


@route(f"/records/<{ID}:record_id>", TAG, methods=["GET"])
@reads
@bp.response(200, RecordSchema)
def get_record(record_id: int) -> dict[str, Any]:
    """Get a record"""
    return record_out(service.get_record(ctx(), record_id))


@route(f"/records/<{ID}:record_id>", TAG, methods=["PATCH"])
@writes
@bp.arguments(RecordUpdateSchema)
@bp.response(200, RecordSchema)
def update_record(_args: dict[str, Any], record_id: int) -> dict[str, Any]:
    """Change a record

    Only the given keys change; the stage changes through the moves (`/moves`, `/won`, `/lost`,
    `/reopen`).
    """
    return record_out(service.update_record(ctx(), record_id, body()))


@route(f"/records/<{ID}:record_id>/moves", TAG, methods=["POST"])
@writes
@bp.arguments(StageMoveInput)
@bp.response(200, RecordSchema)
def move_stage(args: dict[str, Any], record_id: int) -> dict[str, Any]:
    """Move a record to another stage of its pipeline

    A won stage closes it as won; a lost stage needs a reason (use `/lost`). A plugin may refuse
    the move (409, its message in `detail`).
    """
    return record_out(service.move_stage(ctx(), record_id, args["stage_id"], note=args.get("note")))


@route(f"/records/<{ID}:record_id>/won", TAG, methods=["POST"])
@writes
@bp.arguments(CloseWonInput, required=False)
@bp.response(200, RecordSchema)
def close_won(args: dict[str, Any], record_id: int) -> dict[str, Any]:
    """Close a record as won"""
    return record_out(service.close_won(ctx(), record_id, stage_id=args.get("stage_id"), note=args.get("note")))


@route(f"/records/<{ID}:record_id>/lost", TAG, methods=["POST"])
@writes
@bp.arguments(CloseLostInput)
@bp.response(200, RecordSchema)
def close_lost(args: dict[str, Any], record_id: int) -> dict[str, Any]:
    """Close a record as lost, with a reason"""
    return record_out(service.close_lost(ctx(), record_id, args["lost_reason"], stage_id=args.get("stage_id"),
                                         note=args.get("note")))


@route(f"/records/<{ID}:record_id>/reopen", TAG, methods=["POST"])
@writes
@bp.arguments(ReopenInput, required=False)
@bp.response(200, RecordSchema)
def reopen(args: dict[str, Any], record_id: int) -> dict[str, Any]:
    """Reopen a won or lost record"""
    return record_out(service.reopen(ctx(), record_id, stage_id=args.get("stage_id"), note=args.get("note")))


@route(f"/records/<{ID}:record_id>/qualify", TAG, methods=["POST"])
@writes
@bp.arguments(RecordCreateSchema(partial=True), required=False)
@bp.response(201, RecordSchema)
def qualify(_args: dict[str, Any], record_id: int) -> dict[str, Any]:
    """Qualify a lead into a deal

    Answers the new deal. It takes the lead's party, contact, title, amount, currency and owner;
    the body overrides any of them. The lead is closed as won and linked to the deal.
    """
    return record_out(service.qualify_lead(ctx(), record_id, body()))
