"""What an admin sees and does with the business's outbox: rows by status, retry, discard.

Every function is a use case for admins and owners, scoped to the business like any other (the
row another business owns is "not found"). Retry and discard are conditional UPDATEs: a row a
worker claimed in the meantime is refused with a clear message, never changed under its feet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from crmcore.audit import service as audit
from crmcore.context import get_or_404, use_case
from crmcore.db import utcnow
from crmcore.errors import Conflict
from crmcore.outbox.models import OutboxMessage, OutboxStatus
from crmcore.outbox.schemas import VIEWS, load_list_query
from crmcore.paging import COUNT_CAP, CappedCount, Page, keyset_page
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

RETRYABLE = (OutboxStatus.FAILED.value, OutboxStatus.PARKED.value)
DISCARDABLE = (OutboxStatus.PENDING.value, OutboxStatus.FAILED.value, OutboxStatus.PARKED.value)
_LABELS = {"pending": "queued"}


@use_case(Role.ADMIN, write=False)
def list_messages(ctx: Context, view: str = "queued", *, cursor: str | None = None,
                  limit: int | None = None) -> Page[OutboxMessage]:
    """One page of the rows in ``view``, newest first (keyset on id over the index
    ``(business_id, status, id)``)."""
    args = load_list_query({"view": view, "cursor": cursor, "limit": limit})
    stmt = select(OutboxMessage).where(OutboxMessage.status == VIEWS[args["view"]])
    return keyset_page(ctx.session, stmt, [OutboxMessage.id], cursor=args["cursor"], limit=args["limit"],
                       descending=True)


@use_case(Role.ADMIN, write=False)
def view_counts(ctx: Context, cap: int = COUNT_CAP) -> dict[str, CappedCount]:
    """Rows per view, each count capped (one index range per status)."""
    out = {}
    for view, status in VIEWS.items():
        inner = select(OutboxMessage.id).where(OutboxMessage.status == status).limit(cap + 1).subquery()
        n = ctx.session.scalar(select(func.count()).select_from(inner)) or 0
        out[view] = CappedCount(min(n, cap), n > cap)
    return out


@use_case(Role.ADMIN, write=False)
def get_message(ctx: Context, message_id: int) -> OutboxMessage:
    return get_or_404(ctx, OutboxMessage, message_id, "outbox job")


def _change(ctx: Context, message_id: int, allowed: tuple[str, ...], values: dict[str, Any],
            verb: str) -> tuple[OutboxMessage, str]:
    row = get_or_404(ctx, OutboxMessage, message_id, "outbox job")
    before = row.status
    if before not in allowed:
        names = [_LABELS.get(s, s) for s in allowed]
        raise Conflict(f"job {message_id} is {_LABELS.get(before, before)}: only "
                       f"{', '.join(names[:-1])} or {names[-1]} jobs can be {verb}")
    changed = ctx.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == before,
               OutboxMessage.attempts == row.attempts)
        .values(**values, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:  # a worker claimed it between the read and the write
        raise Conflict(f"job {message_id} changed meanwhile (a worker picked it up); reload and look again")
    ctx.session.expire(row)
    return row, before


@use_case(Role.ADMIN)
def retry_message(ctx: Context, message_id: int) -> OutboxMessage:
    """Queue a failed or parked job to run now, with a fresh set of attempts (the ones it used
    stay counted). Audited."""
    attempts = get_or_404(ctx, OutboxMessage, message_id, "outbox job").attempts
    now = utcnow()
    row, before = _change(ctx, message_id, RETRYABLE, {
        "status": OutboxStatus.PENDING.value, "next_attempt_at": now, "locked_until": None,
        "max_attempts": attempts + ctx.crm.config.outbox_max_attempts,
    }, "retried")
    audit.record(ctx, "outbox.retried", entity_type="outbox", entity_id=message_id,
                 changes={"status": [before, OutboxStatus.PENDING.value], "kind": row.kind, "topic": row.topic})
    ctx._pending.append(message_id)  # runs after commit when inline; else wakes a worker here
    return row


@use_case(Role.ADMIN)
def discard_message(ctx: Context, message_id: int) -> OutboxMessage:
    """Give up on a queued, failed or parked job: it never runs (again). Audited; the row is
    pruned with the done ones."""
    row, before = _change(ctx, message_id, DISCARDABLE, {
        "status": OutboxStatus.DISCARDED.value, "done_at": utcnow(), "locked_until": None,
    }, "discarded")
    audit.record(ctx, "outbox.discarded", entity_type="outbox", entity_id=message_id,
                 changes={"status": [before, OutboxStatus.DISCARDED.value], "kind": row.kind, "topic": row.topic})
    return row
