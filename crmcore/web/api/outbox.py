"""The business's outbox (admins): jobs by status, retry, discard — what the outbox page does.

Payloads are not returned: they may hold personal data, and a program has no need for them to
decide on a retry. Errors were redacted of the business's secrets when they were recorded.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from crmcore.outbox import admin
from crmcore.outbox.models import OutboxMessage
from crmcore.outbox.schemas import VIEWS
from crmcore.web.api.blueprint import ID, bp, ctx, no_body, problems, query, reads, route, writes
from crmcore.web.api.schemas import PageQuery, TotalSchema, _Page

TAG = "outbox"


class OutboxJobSchema(ma.Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": "`hook` (a plugin's react-hook), `email`, `sms`, ..."})
    topic = fields.String(required=True, metadata={"description": "the hook or event the job is for"})
    plugin = fields.String(allow_none=True, required=True)
    status = fields.String(required=True, metadata={
        "description": "pending (queued), running, done, failed (tried again at `next_attempt_at`), parked, discarded"})
    attempts = fields.Integer(required=True)
    max_attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True, required=True)
    last_duration_ms = fields.Float(allow_none=True, required=True)
    next_attempt_at = fields.DateTime(required=True, metadata={
        "description": "when a queued or failed job is due; for a running one, when its lease ends"})
    done_at = fields.DateTime(allow_none=True, required=True)
    idempotency_key = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class OutboxPageSchema(_Page):
    items = fields.List(fields.Nested(OutboxJobSchema), required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Nested(TotalSchema), required=True,
                         metadata={"description": "jobs per view, each counted up to a cap"})


class OutboxListQuery(PageQuery):
    view = fields.String(validate=validate.OneOf(list(VIEWS)), metadata={
        "description": "queued (default), running, failed, parked, done or discarded"})


def job_out(row: OutboxMessage) -> dict[str, Any]:
    return {name: getattr(row, name) for name in OutboxJobSchema().fields}


def _total(count: Any) -> dict[str, Any]:
    return {"count": count.value, "capped": count.capped}


@route("/outbox", TAG, methods=["GET"])
@reads
@problems(403)
@query(OutboxListQuery)
@bp.response(200, OutboxPageSchema)
def list_jobs(args: dict[str, Any]) -> dict[str, Any]:
    """List the business's outbox jobs in one status (admins)

    Newest first. `total` is the count of the chosen view, `counts` those of every view.
    """
    view = args.get("view", "queued")
    page = admin.list_messages(ctx(), view, cursor=args.get("cursor"), limit=args.get("limit"))
    counts = admin.view_counts(ctx())
    return {"items": [job_out(r) for r in page.items], "next_cursor": page.next_cursor,
            "total": _total(counts[view]), "counts": {k: _total(v) for k, v in counts.items()}}


@route(f"/outbox/<{ID}:job_id>", TAG, methods=["GET"])
@reads
@problems(403)
@bp.response(200, OutboxJobSchema)
def get_job(job_id: int) -> dict[str, Any]:
    """Get one outbox job (admins)"""
    return job_out(admin.get_message(ctx(), job_id))


@route(f"/outbox/<{ID}:job_id>/retry", TAG, methods=["POST"])
@writes
@no_body
@bp.response(200, OutboxJobSchema)
def retry_job(_args: dict[str, Any], job_id: int) -> dict[str, Any]:
    """Run a failed or parked job again now (admins)

    It gets a fresh set of attempts; the ones it used stay counted. Audited.
    """
    return job_out(admin.retry_message(ctx(), job_id))


@route(f"/outbox/<{ID}:job_id>/discard", TAG, methods=["POST"])
@writes
@no_body
@bp.response(200, OutboxJobSchema)
def discard_job(_args: dict[str, Any], job_id: int) -> dict[str, Any]:
    """Discard a queued, failed or parked job: it will not run (admins)

    Audited. A running, done or discarded job cannot be discarded (409).
    """
    return job_out(admin.discard_message(ctx(), job_id))
