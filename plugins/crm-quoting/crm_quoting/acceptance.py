"""What accepting a quote does besides changing its status, each effect on its own.

Each effect runs in a savepoint of the acceptance's transaction: one that cannot be done (a
plugin vetoes the deal's move, the invoice's tax rates are not invoicing's) is rolled back
alone, noted on the quote's timeline and returned in :attr:`Acceptance.problems`; the
acceptance and the other effects stand. Accepting happens once (the status is checked under a
lock), so the effects happen once.

Where the orders plugin makes the quote's sales order (``order_on_accept``), the invoice draft
is left out: the order is invoiced, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError, fields

from crm_quoting.models import Quote
from crmcore.errors import CrmError
from crmcore.parties import service as parties
from crmcore.records import service as records

if TYPE_CHECKING:
    from crm_quoting.lifecycle import Acceptance
    from crm_quoting.rules import Settings
    from crmcore.context import Context
    from crmcore.records.models import Record

log = logging.getLogger("crm_quoting")

INVOICING = "invoicing"
ORDERS = "orders"


def _attempt(ctx: Context, record: Record, what: str, fn: Callable[[], Any], problems: list[str]) -> Any:
    """``fn()`` in a savepoint; a CrmError rolls back only it and becomes a problem."""
    from crm_quoting.quotes import timeline

    savepoint = ctx.session.begin_nested()
    try:
        result = fn()
        ctx.session.flush()
    except CrmError as exc:
        savepoint.rollback()
        problem = f"{what}: {exc}"  # the message and, for invalid input, which field and why
        problems.append(problem)
        timeline(ctx, record, "quote_effect_failed", f"Accepted, but {problem}", {"effect": what})
        return None
    savepoint.commit()
    return result


def apply_effects(ctx: Context, record: Record, quote: Quote, cfg: Settings) -> Acceptance:
    from crm_quoting.lifecycle import Acceptance

    problems: list[str] = []
    result = Acceptance(record=record, problems=problems)
    if record.party_id is not None:
        party = parties.get_party(ctx, record.party_id)
        if not party.is_customer:
            done = _attempt(ctx, record, "the party could not be made a customer",
                            lambda: parties.update_party(ctx, party.id, {"is_customer": True, "is_prospect": False}),
                            problems)
            result.party_became_customer = done is not None
    if quote.deal_id is not None and cfg.accepted_stage_id is not None:
        result.deal_moved_to = _move_deal(ctx, record, quote.deal_id, cfg.accepted_stage_id, problems)
    if cfg.invoice_on_accept and ctx.is_enabled(INVOICING):
        if orders_make_the_order(ctx):
            from crm_quoting.quotes import timeline

            result.invoiced_by_order = True
            timeline(ctx, record, "quote_invoice_left_to_order", "No invoice draft from this quote: the sales order "
                     "made from it is invoiced instead (the orders plugin's order_on_accept is on)",
                     {"effect": "invoice"})
        else:
            invoice = _attempt(ctx, record, "no invoice draft was made", lambda: _invoice(ctx, record, quote),
                               problems)
            result.invoice_id = invoice.id if invoice is not None else None
    return result


def orders_make_the_order(ctx: Context) -> bool:
    """Whether the orders plugin makes the accepted quote's sales order here (enabled, its
    ``order_on_accept`` setting on, as by default): that order is what gets invoiced, so an
    invoice draft of the quote's own would bill the customer twice. Read from the business's
    stored settings (orders depends on quoting, not the other way round)."""
    if not ctx.is_enabled(ORDERS):
        return False
    value = (ctx.plugin_settings(ORDERS) or {}).get("order_on_accept", True)
    try:
        return bool(fields.Boolean().deserialize(value))
    except ValidationError:  # a hand-edited row: orders falls back to its default (on)
        return True


def _move_deal(ctx: Context, record: Record, deal_id: int, stage_id: int, problems: list[str]) -> str | None:
    """Move the deal to the accepted stage when it is open and in that stage's pipeline (a deal
    of another pipeline stays where it is: the setting names one pipeline's stage)."""
    from crm_quoting.rules import deal_stages

    stage = next((s for s in deal_stages(ctx) if s["id"] == stage_id), None)
    if stage is None:
        problems.append(f"the deal was not moved: the accepted stage setting names stage {stage_id}, "
                        "which is no longer an active stage of a deal pipeline")
        return None
    try:
        deal = records.get_record(ctx, deal_id)
    except CrmError:
        return None
    if deal.pipeline_id != stage["pipeline_id"] or deal.archived_at is not None:
        return None
    if deal.status != "open":
        problems.append(f"the deal was not moved to {stage['name']}: it is {deal.status}")
        return None
    if deal.stage_id == stage_id:
        return stage["name"]
    note = f"Quote {record.reference or record.id} accepted"
    moved = _attempt(ctx, record, f"the deal could not be moved to {stage['name']}",
                     lambda: records.move_stage(ctx, deal.id, stage_id, note=note), problems)
    return stage["name"] if moved is not None else None


#: the longest line description an invoice takes (crm-invoicing); a longer one is shortened
INVOICE_DESCRIPTION_MAX = 500


def _invoice(ctx: Context, record: Record, quote: Quote) -> Record:
    """An invoice draft from the quote's lines (same amounts: the same rounding rule; the
    invoice refuses a tax rate that is not one of invoicing's rates, which is then a problem)."""
    from crm_invoicing import service as invoicing

    from crm_quoting.quotes import lines_of

    lines = [{
        "description": _shortened(line.description), "quantity": str(line.quantity), "unit": line.unit,
        "unit_price": str(line.unit_price), "discount_percent": str(line.discount_percent),
        "tax_rate": str(line.tax_rate), "product_id": line.product_id, "source_kind": "quote_line",
        "source_id": line.id,
    } for line in lines_of(ctx, quote.id)]
    return invoicing.create_invoice(ctx, {
        "party_id": record.party_id, "contact_id": quote.contact_id, "currency": quote.currency,
        "title": f"Invoice for quote {record.reference or record.id}"[:300], "quote_id": record.id,
        "deal_id": quote.deal_id, "lines": lines,
    })


def _shortened(text: str) -> str:
    return text if len(text) <= INVOICE_DESCRIPTION_MAX else text[:INVOICE_DESCRIPTION_MAX - 1] + "…"
