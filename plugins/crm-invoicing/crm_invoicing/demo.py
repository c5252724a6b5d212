"""Invoicing's part of ``crm demo`` (hook ``crm_seed_demo``, called after the other plugins'):
three invoices a dealer has on any day:

- issued from the accepted quote: the oldest draft made from a quote or an order (crm-quoting
  drafts one when its demo accepts a quote; where crm-orders makes the accepted quote's order
  instead, the draft an orders demo makes for that order). Without one, an invoice for the
  oldest won deal is issued instead;
- issued and partly paid: a down payment received by bank transfer, recorded by hand;
- a draft, for a service contract.

Written through :mod:`crm_invoicing.service` and the core's record service only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crm_invoicing import service

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.records.models import Record

DELIVERY = {"description": "Delivery and commissioning", "quantity": "1", "unit": "job", "unit_price": "850.00",
            "tax_rate": "21"}
CONTRACT = {"description": "Full service contract, 1 year", "quantity": "1", "unit": "year",
            "unit_price": "2400.00", "tax_rate": "21"}
DOWN_PAYMENT = Decimal("0.30")


def seed(ctx: Context) -> list[str]:
    """Create the demo invoices; returns the lines ``crm demo`` prints."""
    made: list[str] = []
    from_document = _document_draft(ctx)
    deals = _deals(ctx, skip=from_document[1].deal_id if from_document is not None else None)
    if from_document is not None:
        issued = service.activate_invoice(ctx, from_document[0].id).record
        source = "order" if from_document[1].order_id is not None else "accepted quote"
        made.append(f"{issued.reference} issued from the {source}")
    elif deals:
        issued = service.activate_invoice(ctx, _deal_invoice(ctx, deals.pop(0)).id).record
        made.append(f"{issued.reference} issued")
    if deals:
        activation = service.activate_invoice(ctx, _deal_invoice(ctx, deals.pop(0)).id)
        paid = (activation.invoice.total_amount * DOWN_PAYMENT).quantize(Decimal("0.01"))
        service.record_payment(ctx, activation.record.id, {
            "amount": str(paid), "method": "bank_transfer", "reference": f"Down payment {activation.record.reference}",
            "note": "30 % down payment on the order, as agreed."})
        made.append(f"{activation.record.reference} partly paid by bank transfer")
    if deals:
        deal = deals.pop(0)
        service.create_invoice_from_deal(ctx, deal.id, {"lines": [CONTRACT], "title": f"Service contract: {deal.title}"})
        made.append("1 draft")
    return [f"{len(made)} invoices: {', '.join(made)}"] if made else []


def _document_draft(ctx: Context) -> tuple[Record, Any] | None:
    """The oldest draft invoice made from a quote or an order, as (record, invoice)."""
    drafts = service.list_invoices(ctx, {"status": "draft", "kind": "invoice"}, limit=50).items
    found = [(record, invoice) for record, invoice in drafts
             if invoice.quote_id is not None or invoice.order_id is not None]
    return min(found, key=lambda pair: pair[0].id) if found else None


def _deals(ctx: Context, skip: int | None) -> list[Record]:
    """Deals to invoice, oldest first: the won ones, then open ones (a down-payment invoice);
    not ``skip`` (the deal of the accepted quote, invoiced already)."""
    from crmcore.records.service import list_records

    out: list[Record] = []
    for status in ("won", "open"):
        page = list_records(ctx, record_type="deal", filters={"status": status}, sort="created", limit=10,
                            with_count=False)
        out += [deal for deal in page.items if deal.party_id is not None and deal.id != skip]
    return out[:5]


def _deal_invoice(ctx: Context, deal: Record) -> Record:
    """A draft invoice for the deal's machine (at the deal's amount) and its delivery."""
    model = str((deal.custom or {}).get("machine_model") or "").strip() or deal.title
    price = deal.amount if deal.amount is not None and deal.amount > 0 else Decimal("25000")
    lines: list[dict[str, Any]] = [{"description": model, "quantity": "1", "unit": "pcs", "unit_price": str(price),
                                    "tax_rate": "21"}, DELIVERY]
    return service.create_invoice_from_deal(ctx, deal.id, {"lines": lines})
