"""Invoicing an order through crm-invoicing, where the ``invoicing`` plugin is enabled.

crm-invoicing is optional: orders install and work without it, so it is imported only when a
business has it enabled. "Create invoice" calls :func:`crm_invoicing.service.create_invoice`
with ``order_id`` and one invoice line per order line (``source_kind="order_line"``, the line's
id), in the order's transaction: the invoice draft and the order's new state (a sales order
becomes ``invoiced``; a loaner keeps the status its unit has) are written together or not at
all, so a refusal of invoicing (a tax rate it does not offer) changes nothing. An order has one
live invoice; once that invoice is cancelled in invoicing, the order may be invoiced again.

Internal: import the use cases from :mod:`crm_orders.service`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from crm_quoting import service as quoting

from crm_orders.models import Kind, Order, Status
from crm_orders.orders import (
    InvoiceState,
    label,
    lines_of,
    sentence_label,
    store_totals,
    timeline,
    writable,
    write_lines,
)
from crm_orders.rules import INVOICEABLE, money_text
from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.errors import Conflict, NotFound, ValidationFailed
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

INVOICING = "invoicing"
SOURCE_KIND = "order_line"
#: the longest line description an invoice takes (crm-invoicing); a longer one is shortened
DESCRIPTION_MAX = 500
MAX_CHARGES = 20


def _invoicing() -> ModuleType | None:
    """crm-invoicing's service module, or None where it is not installed."""
    try:
        from crm_invoicing import service
    except ImportError:
        return None
    return service


def available(ctx: Context) -> bool:
    """Whether orders may be invoiced in this business: invoicing installed and enabled."""
    return ctx.is_enabled(INVOICING) and _invoicing() is not None


def invoice_state(ctx: Context, order: Order) -> InvoiceState | None:
    """The order's invoice as invoicing has it now (its status unknown while invoicing is off)."""
    if order.invoice_id is None:
        return None
    service = _invoicing() if ctx.is_enabled(INVOICING) else None
    if service is None:
        return InvoiceState(order.invoice_id, None, None)
    try:
        found = service.get_invoice(ctx, order.invoice_id)
    except NotFound:
        return InvoiceState(order.invoice_id, None, None)
    return InvoiceState(found.record.id, found.record.reference, found.invoice.status)


def _live(state: InvoiceState | None) -> bool:
    """An invoice that stands (an unknown status counts: it is not known to be cancelled)."""
    return state is not None and not state.cancelled


def may_invoice(ctx: Context, order: Order, state: InvoiceState | None) -> bool:
    if not available(ctx) or _live(state):
        return False
    if order.kind == Kind.SALES.value and order.status == Status.INVOICED.value:
        return True  # its invoice was cancelled: invoice it again
    return order.status in INVOICEABLE.get(order.kind, ())


def _shortened(text: str) -> str:
    return text if len(text) <= DESCRIPTION_MAX else text[:DESCRIPTION_MAX - 1] + "…"


def _add_charges(ctx: Context, record: Record, order: Order, charges: Any) -> None:
    """A loaner's charges (the loan fee, a repair) become order lines before it is invoiced,
    priced like any line (errors named ``charges.<index>.<field>``)."""
    if order.kind != Kind.LOANER.value:
        raise ValidationFailed("a sales order invoices its own lines", {
            "charges": ["only a loaner order takes charges when invoiced; a sales order invoices its lines"]})
    if not isinstance(charges, list | tuple) or len(charges) > MAX_CHARGES:
        raise ValidationFailed("invalid charges", {"charges": [f"a list of at most {MAX_CHARGES} lines"]})
    if not charges:
        return
    pricing = quoting.pricing_for(ctx, record.party_id, order.currency, order.order_date, document="order")
    priced = quoting.price_lines(ctx, pricing, list(charges), {}, field="charges")
    write_lines(ctx, order.id, priced, {}, start=len(lines_of(ctx, order.id)) + 1)
    totals = store_totals(ctx, record, order)
    timeline(ctx, record, "order_charges", f"Charges added to invoice: {', '.join(p.description for p in priced)}"
             [:480], {"total": str(totals.total)})


@use_case(Role.MEMBER)
def create_invoice(ctx: Context, record_id: int, data: Mapping[str, Any] | None = None) -> Record:
    """The invoice draft of an order; returns the invoice's record.

    A sales order is invoiced while open or fulfilled, and becomes ``invoiced`` (locked). A
    loaner is invoiced once its unit is out or returned (the loan fee, damage): ``data`` may give
    ``charges``, lines added to the loaner first (as :func:`crm_quoting.service.price_lines`
    takes them), and its status stays. Refused (Conflict) where invoicing is not enabled, while
    the order's invoice stands, and in other statuses; a refusal of invoicing itself is
    ValidationFailed with invoicing's reasons (``lines.0.tax_rate``), and nothing is written."""
    service = _invoicing() if ctx.is_enabled(INVOICING) else None
    if service is None:
        raise Conflict("invoicing is not enabled for this business: enable the invoicing plugin to invoice orders")
    given = dict(data or {})
    unknown = sorted(set(given) - {"charges"})
    if unknown:
        raise ValidationFailed("invalid invoice request", {k: ["Unknown field."] for k in unknown})
    record, order = writable(ctx, record_id)
    name = sentence_label(record, order)
    state = invoice_state(ctx, order)
    if _live(state):
        raise Conflict(f"{name} was invoiced already (invoice {state.reference or state.record_id}, "
                       f"{state.status or 'status unknown'}): cancel that invoice to invoice the order again")
    if not may_invoice(ctx, order, state):
        when = "once its unit is out" if order.kind == Kind.LOANER.value else "while open or fulfilled"
        raise Conflict(f"{name} is {order.status}: it cannot be invoiced (an order is invoiced {when})")
    if "charges" in given:
        _add_charges(ctx, record, order, given["charges"])
    lines = lines_of(ctx, order.id)
    if not lines:
        raise Conflict(f"{name} has no lines to invoice" + (": give the charges" if order.kind == Kind.LOANER.value
                                                            else ""))
    payload = {
        "party_id": record.party_id, "contact_id": order.contact_id, "currency": order.currency,
        "title": f"Invoice for {label(record, order)}"[:300], "order_id": record.id, "quote_id": order.quote_id,
        "deal_id": order.deal_id,
        "lines": [{"description": _shortened(line.description), "quantity": str(line.quantity), "unit": line.unit,
                   "unit_price": str(line.unit_price), "discount_percent": str(line.discount_percent),
                   "tax_rate": str(line.tax_rate), "product_id": line.product_id, "source_kind": SOURCE_KIND,
                   "source_id": line.id} for line in lines],
    }
    try:
        invoice = service.create_invoice(ctx, payload)
    except ValidationFailed as exc:  # its errors name invoicing's fields (lines.1.tax_rate)
        raise ValidationFailed("invoicing refused the invoice; the order was left as it was", exc.errors) from None
    again = state is not None
    order.invoice_id, order.invoiced_at = invoice.id, utcnow()
    if order.kind == Kind.SALES.value:
        order.status = Status.INVOICED.value
    ctx.session.flush()
    timeline(ctx, record, "order_invoiced", f"{'Invoiced again' if again else 'Invoiced'}: invoice draft for "
             f"{money_text(order.total_amount, order.currency)}", {"invoice_id": invoice.id, "again": again})
    return invoice
