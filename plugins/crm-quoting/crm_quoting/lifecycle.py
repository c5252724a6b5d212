"""A quote's life after its lines: new versions, sending (by hand or by email), accepting and
refusing, and the counts by status.

Internal: import the use cases from :mod:`crm_quoting.service`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from crm_quoting.models import Quote, QuoteLine, Status
from crm_quoting.quotes import (
    LINK_KIND,
    label,
    lines_of,
    require_draft,
    store_totals,
    timeline,
    valid_until_for,
    writable,
)
from crm_quoting.rules import LIVE, REVISABLE, effective_status, money_text, settings, today
from crm_quoting.schemas import (
    RefuseInput,
    load,
)
from crm_quoting.types import QUOTE
from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.errors import Conflict
from crmcore.records import service as records
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context


# --------------------------------------------------------------------------------------------
# versions


@use_case(Role.MEMBER)
def new_version(ctx: Context, record_id: int) -> Record:
    """A new draft copying the quote and its lines (prices as they were; a changed quantity or
    a cleared price is priced again), dated today with a fresh valid-until day; the old quote
    becomes ``superseded``. The new version has its own number; it knows the one it revises
    (``revises_id``) and is linked from the same deal. Refused for an accepted quote (final)
    and for one already revised (revise the latest)."""
    record, quote = writable(ctx, record_id)
    status = effective_status(quote, today(ctx))
    if status == Status.ACCEPTED.value:
        raise Conflict(f"{label(record, quote)} was accepted: an accepted quote is final")
    newer = ctx.session.scalar(select(Quote.record_id).where(Quote.revises_id == record.id).limit(1))
    if newer is not None or status not in REVISABLE:
        raise Conflict(f"{label(record, quote)} was already revised: make a new version of the latest one")
    cfg = settings(ctx)
    day = today(ctx)
    source = quote.deal_id if quote.deal_id is not None else record.id
    new_record = records.create_record(ctx, QUOTE.key, {
        "title": record.title, "party_id": record.party_id, "contact_id": record.contact_id,
        "currency": quote.currency, "amount": record.amount,
    }, source_id=source, link_kind=LINK_KIND)
    copy = Quote(record_id=new_record.id, deal_id=quote.deal_id, revises_id=record.id, version=quote.version + 1,
                 status=Status.DRAFT.value, currency=quote.currency, quote_date=day,
                 valid_until=valid_until_for(cfg, day) if quote.valid_until is not None or cfg.validity_days else None,
                 contact_id=quote.contact_id, billing_address=quote.billing_address,
                 shipping_address=quote.shipping_address, intro=quote.intro, terms=quote.terms)
    ctx.session.add(copy)
    ctx.session.flush()
    for line in lines_of(ctx, quote.id):
        ctx.session.add(QuoteLine(
            quote_id=copy.id, position=line.position, product_id=line.product_id, sku=line.sku,
            description=line.description, quantity=line.quantity, unit=line.unit, unit_price=line.unit_price,
            discount_percent=line.discount_percent, tax_rate=line.tax_rate, price_source=line.price_source,
            origin=line.origin, net_amount=line.net_amount, tax_amount=line.tax_amount,
            total_amount=line.total_amount))
    ctx.session.flush()
    store_totals(ctx, new_record, copy)
    old_status = quote.status
    quote.status = Status.SUPERSEDED.value
    ctx.session.flush()
    timeline(ctx, record, "quote_superseded",
              f"Superseded by version {copy.version} ({new_record.reference or new_record.id})",
              {"from": old_status, "by": new_record.id})
    timeline(ctx, new_record, "quote_version",
              f"Version {copy.version} of {record.reference or record.id}", {"revises": record.id})
    return new_record


# --------------------------------------------------------------------------------------------
# sending, accepting, refusing


def check_offerable(ctx: Context, record: Record, quote: Quote, what: str) -> None:
    """A quote goes out (or is accepted) only while live, with lines, before its day passed."""
    status = effective_status(quote, today(ctx))
    if status == Status.EXPIRED.value:
        raise Conflict(f"{label(record, quote)} expired on {quote.valid_until:%Y-%m-%d}: "
                       f"make a new version to {what} it")
    if status not in LIVE:
        hint = {Status.ACCEPTED.value: "it is final", Status.REFUSED.value: "make a new version",
                Status.SUPERSEDED.value: "a newer version replaced it"}.get(status, "")
        raise Conflict(f"{label(record, quote)} is {status}: it cannot be {what}ed ({hint})"
                       .replace("sended", "sent"))
    if quote.valid_until is not None and quote.valid_until < today(ctx):
        raise Conflict(f"{label(record, quote)} is valid until {quote.valid_until:%Y-%m-%d}, which has passed: "
                       "change its valid-until day first")
    if not lines_of(ctx, quote.id):
        raise Conflict(f"{label(record, quote)} has no lines: add some first")


@use_case(Role.MEMBER)
def mark_sent(ctx: Context, record_id: int) -> Record:
    """Record that a draft was handed to the customer another way than by email."""
    record, quote = writable(ctx, record_id)
    require_draft(record, quote)
    check_offerable(ctx, record, quote, "send")
    record_sent(ctx, record, quote, "Quote marked as sent")
    return record


def record_sent(ctx: Context, record: Record, quote: Quote, summary: str) -> None:
    """Draft -> sent (a re-send keeps the status and stamps the time); the expiry job is queued
    for the day after the valid-until day."""
    from crm_quoting.expiry import schedule

    quote.sent_at = utcnow()
    if quote.status == Status.DRAFT.value:
        quote.status = Status.SENT.value
        schedule(ctx, quote)
    ctx.session.flush()
    timeline(ctx, record, "quote_sent", summary, {"status": quote.status})


def send_quote(ctx: Context, record_id: int, data: Mapping[str, Any] | None = None) -> Any:
    """Email the quote with its PDF (stored on the quote's timeline) through the outbox, to
    ``contact_id`` (default: the quote's contact) or ``to`` (an address), with ``subject`` and
    ``message`` (defaults name the quote); the send is in the message log and on the timeline.
    A draft becomes sent; a sent quote may be sent again. Returns the message (members).

    The PDF is rendered first, outside the write transaction; the sending transaction checks
    that it still prints what the quote says (else renders it again), so what is sent is
    what the quote was when it was sent."""
    from crm_quoting import documents

    ctx.require(Role.MEMBER)
    prepared = None
    if not ctx.in_use_case:
        prepared = documents.prepare(ctx, record_id, check="send")
    return documents.send(ctx, record_id, dict(data or {}), prepared)


@dataclass
class Acceptance:
    """What accepting did besides changing the quote's status (each effect on its own: one
    that could not be done is in ``problems`` and on the timeline, the acceptance stands)."""

    record: Record
    party_became_customer: bool = False
    deal_moved_to: str | None = None
    invoice_id: int | None = None
    #: no invoice draft because the orders plugin makes the quote's order, which is invoiced
    invoiced_by_order: bool = False
    problems: list[str] | None = None


@use_case(Role.MEMBER)
def accept_quote(ctx: Context, record_id: int) -> Acceptance:
    """The customer accepted: the quote becomes ``accepted`` (a draft or a sent quote whose day
    has not passed; refused, expired and superseded quotes cannot be: make a new version).

    Then, each on its own (a problem is noted, never undoes the acceptance): a prospect party
    becomes a customer; the deal moves to the ``accepted_stage_id`` setting's stage when it is
    in that stage's pipeline; with ``invoice_on_accept`` and crm-invoicing enabled, an invoice
    draft is made from the lines, unless the orders plugin makes the quote's order (its
    ``order_on_accept`` setting), which is then what gets invoiced; ``crm_after_quote_accepted``
    is raised for other plugins (orders). Other quotes of the same deal are left as they are."""
    from crm_quoting.acceptance import apply_effects

    record, quote = writable(ctx, record_id)
    check_offerable(ctx, record, quote, "accept")
    quote.status = Status.ACCEPTED.value
    quote.accepted_at = utcnow()
    quote.accepted_by_id = ctx.user_id
    ctx.session.flush()
    timeline(ctx, record, "quote_accepted", f"Quote accepted ({money_text(quote.total_amount, quote.currency)})",
              {"total": str(quote.total_amount)})
    result = apply_effects(ctx, record, quote, settings(ctx))
    ctx.emit("crm_after_quote_accepted", quote=record)
    return result


@use_case(Role.MEMBER)
def refuse_quote(ctx: Context, record_id: int, reason: str) -> Record:
    """The customer refused, for ``reason`` (required): a draft, sent or expired quote becomes
    ``refused`` (final; a new version may follow)."""
    values = load(RefuseInput, {"reason": reason}, "refusal")
    record, quote = writable(ctx, record_id)
    status = effective_status(quote, today(ctx))
    if status not in (*LIVE, Status.EXPIRED.value):
        raise Conflict(f"{label(record, quote)} is {status}: it cannot be refused")
    quote.status = Status.REFUSED.value
    quote.refused_at = utcnow()
    quote.refused_by_id = ctx.user_id
    quote.refusal_reason = values["reason"]
    ctx.session.flush()
    timeline(ctx, record, "quote_refused", f"Quote refused: {values['reason']}", {"reason": values["reason"]})
    return record


# --------------------------------------------------------------------------------------------
# counting


@use_case(Role.READ_ONLY, write=False)
def count_by_status(ctx: Context) -> dict[str, int]:
    """How many quotes the business has in each stored status."""
    rows = ctx.session.execute(select(Quote.status, func.count()).group_by(Quote.status)).all()
    return {status: count for status, count in rows}
