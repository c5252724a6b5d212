"""Expiry: a sent quote becomes ``expired`` the day after its valid-until day (in the business's
time zone).

Sending a quote queues one outbox job of kind ``quoting.expire`` due at that moment (its
idempotency key is the quote's, so a re-send queues nothing new). The job marks the quote
expired if it is still sent then; a quote accepted, refused or revised meanwhile is left as it
is. Until the job runs, pages already show the quote as expired
(:func:`crm_quoting.service.effective_status`) and it can no longer be accepted.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crm_quoting import NAME
from crm_quoting.models import Quote, Status
from crmcore.context import Context, use_case
from crmcore.db import utcnow
from crmcore.errors import PermissionDenied
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.records.models import Record

log = logging.getLogger("crm_quoting")

KIND = "quoting.expire"
#: after the business's midnight, so the job never finds the quote still valid
MARGIN = dt.timedelta(minutes=5)


def due_at(ctx: Context, valid_until: dt.date) -> dt.datetime:
    """The first moment after ``valid_until`` in the business's time zone (plus a margin), UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone: dt.tzinfo = ZoneInfo(ctx.business.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    midnight = dt.datetime.combine(valid_until + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return midnight.astimezone(dt.UTC) + MARGIN


def schedule(ctx: Context, quote: Quote) -> None:
    """Queue the expiry job of a quote that was just sent (in the sending transaction)."""
    from crmcore.outbox.service import enqueue

    if quote.valid_until is None:
        return
    delay = max(0.0, (due_at(ctx, quote.valid_until) - utcnow()).total_seconds())
    enqueue(ctx, KIND, "quote", {"record_id": quote.record_id, "valid_until": quote.valid_until.isoformat()},
            idempotency_key=f"{KIND}:{ctx.business_id}:{quote.record_id}:{quote.valid_until.isoformat()}",
            plugin=NAME, delay=delay)


@use_case(Role.MEMBER)
def expire(ctx: Context, record_id: int) -> bool:
    """Mark the quote expired when it is still sent and its day has passed; True if it was."""
    from crm_quoting.quotes import timeline
    from crm_quoting.rules import today

    quote = ctx.session.scalar(select(Quote).where(Quote.record_id == record_id).with_for_update()
                               .execution_options(populate_existing=True))
    if quote is None or quote.status != Status.SENT.value or quote.valid_until is None \
            or quote.valid_until >= today(ctx):
        return False
    quote.status = Status.EXPIRED.value
    ctx.session.flush()
    from crmcore.records import service as records

    record: Record = records.get_record(ctx, record_id)
    timeline(ctx, record, "quote_expired", f"Quote expired (valid until {quote.valid_until:%Y-%m-%d})")
    return True


def run(crm: Any, message: Any) -> None:
    """The outbox handler of ``quoting.expire``."""
    from crmcore.outbox.service import JobDiscarded

    try:
        ctx = Context.open(crm, message.business_id, message.user_id, system=True)
    except PermissionDenied:  # the sender left the business: the quote still expires
        ctx = Context.open(crm, message.business_id, None, system=True)
    try:
        if not ctx.is_enabled(NAME):
            raise JobDiscarded(f"the {NAME} plugin was disabled for this business")
        if expire(ctx, int(message.payload["record_id"])):
            log.info("business %s: quote record %s expired", message.business_id, message.payload["record_id"])
    finally:
        ctx.close()
