"""Reading orders and making them: loading an order's record and details, the view pages use,
the recent orders of a deal or a party, and the helpers every change shares (the lock, lines,
totals, the timeline).

Internal: import the use cases from :mod:`crm_orders.service`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crm_quoting import service as quoting
from sqlalchemy import case, select

from crm_orders.models import Kind, Order, OrderLine, Status
from crm_orders.rules import EDITABLE, is_overdue, shown_status, today
from crm_orders.types import KIND_OF, TYPES
from crmcore.context import use_case
from crmcore.errors import Conflict, NotFound
from crmcore.money import Totals, document_totals
from crmcore.records import service as records
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

#: the kind of the core record link from a quote (or a deal) to its order
LINK_KIND = "order"
#: panels list at most this many orders
PANEL_LIMIT = 30

# --------------------------------------------------------------------------------------------
# loading


def load_record(ctx: Context, record_id: Any) -> Record:
    """The core record of an order (another business's, another type's: not found)."""
    try:
        record = records.get_record(ctx, record_id)
    except NotFound:
        raise NotFound(f"order {record_id} not found") from None
    if record.type not in TYPES:
        raise NotFound(f"order {record_id} not found")
    return record


def details(ctx: Context, record: Record, *, lock: bool = False, create: bool = False) -> Order:
    """The details row of ``record``. An order made by the core's own "New sales order" form
    has none yet: an open order is made from the record (``create``) or, when only reading, an
    unsaved one stands in."""
    stmt = select(Order).where(Order.record_id == record.id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    order = ctx.session.scalar(stmt)
    if order is not None:
        return order
    order = Order(record_id=record.id, kind=KIND_OF[record.type], status=Status.OPEN.value,
                  currency=record.currency or ctx.business.currency or "EUR", order_date=today(ctx),
                  contact_id=record.contact_id, net_amount=Decimal(0), tax_amount=Decimal(0),
                  total_amount=Decimal(0))
    if create:
        order.deal_id = _linked_deal(ctx, record)
        if record.party_id is not None:
            order.billing_address, order.shipping_address = quoting.address_snapshots(ctx, record.party_id)
        ctx.session.add(order)
        ctx.session.flush()
    return order


def _linked_deal(ctx: Context, record: Record) -> int | None:
    """The deal an order made by the core's forms was created from (its source link)."""
    found = records.record_details(ctx, record.id)
    return next((link["record"].id for link in found["links_in"] if link["record"].type == "deal"), None)


def lines_of(ctx: Context, order_id: int | None) -> list[OrderLine]:
    if order_id is None:
        return []
    return list(ctx.session.scalars(select(OrderLine).where(OrderLine.order_id == order_id)
                                    .order_by(OrderLine.position, OrderLine.id)))


def writable(ctx: Context, record_id: Any) -> tuple[Record, Order]:
    """The order's record and details, locked, for a change (archived: restore it first)."""
    record = load_record(ctx, record_id)
    if record.archived_at is not None:
        raise Conflict(f"order {record.reference or record.id} is archived; restore it first")
    return record, details(ctx, record, lock=True, create=True)


def label(record: Record, order: Order | None = None) -> str:
    """How messages name an order: "order SO26-0001", "loaner order LO26-0003"."""
    kind = "loaner order" if (order.kind if order is not None else KIND_OF.get(record.type)) == Kind.LOANER \
        else "order"
    return f"{kind} {record.reference or '#' + str(record.id)}"


def sentence_label(record: Record, order: Order | None = None) -> str:
    """:func:`label` starting a sentence (the reference keeps its case: "Order SO26-0001")."""
    text = label(record, order)
    return text[:1].upper() + text[1:]


def require_open(record: Record, order: Order) -> None:
    """The lock: header and lines change only while the order is open."""
    if order.status != EDITABLE:
        why = {Status.FULFILLED.value: "it was fulfilled", Status.INVOICED.value: "it was invoiced",
               Status.CANCELLED.value: "it was cancelled", Status.OUT.value: "its unit was handed over",
               Status.RETURNED.value: "its unit was returned"}.get(order.status, f"it is {order.status}")
        raise Conflict(f"{sentence_label(record, order)} is {order.status} and locked: {why}, so its "
                       "header and lines can no longer change (only an open order can)")


def timeline(ctx: Context, record: Record, kind: str, summary: str, data: dict[str, Any] | None = None) -> None:
    from crmcore.timeline.service import log_event

    log_event(ctx, kind, summary, record_id=record.id, party_id=record.party_id, ref_type="record",
              ref_id=record.id, data=data or {})


def store_totals(ctx: Context, record: Record, order: Order) -> Totals:
    """The order's totals from its lines (sums of the lines' rounded amounts), and the record's
    ``amount`` (the net total, what lists show; None while it is negative)."""
    totals = document_totals([quoting.stored_amounts(line) for line in lines_of(ctx, order.id)], order.currency)
    order.net_amount, order.tax_amount, order.total_amount = totals.net, totals.tax, totals.total
    ctx.session.flush()
    amount = totals.net if totals.net >= 0 else None
    if record.amount != amount or (amount is not None and record.currency != order.currency):
        records.update_record(ctx, record.id, {"amount": amount, "currency": order.currency})
    return totals


def write_lines(ctx: Context, order_id: int, priced: Sequence[Any], existing: Mapping[int, OrderLine], *,
                start: int = 1) -> None:
    """Make the order's lines exactly ``priced`` (:class:`crm_quoting.service.PricedLine`), in
    that order: lines given by id are changed in place, the others removed, new ones added."""
    quoting.store_lines(ctx, priced, existing, lambda: OrderLine(order_id=order_id), start=start)


# --------------------------------------------------------------------------------------------
# reading


@dataclass
class InvoiceState:
    """The invoice an order points at, as invoicing knows it now."""

    record_id: int
    reference: str | None
    status: str | None  # None: invoicing is off here (the invoice cannot be read)

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"


@dataclass
class OrderView:
    """An order as pages and callers read it."""

    record: Record
    order: Order
    lines: list[OrderLine]
    totals: Totals
    #: the status to show: the stored one, or "overdue" for a loaner out past its day
    status: str
    overdue: bool
    today: dt.date
    quote: Record | None
    deal: Record | None
    invoice: InvoiceState | None
    #: what may be done now (see :func:`crm_orders.lifecycle.actions`)
    actions: set[str] = field(default_factory=set)

    @property
    def locked(self) -> bool:
        return self.order.status != EDITABLE


@use_case(Role.READ_ONLY, write=False)
def get_order(ctx: Context, record_id: int) -> OrderView:
    """The order: record, details, lines in order, totals (with the tax summary by rate), its
    quote and deal, the state of its invoice and the actions allowed now."""
    from crm_orders.billing import invoice_state
    from crm_orders.lifecycle import actions

    record = load_record(ctx, record_id)
    order = details(ctx, record)
    lines = lines_of(ctx, order.id)
    related = [i for i in (order.quote_id, order.deal_id) if i is not None]
    others = {r.id: r for r in ctx.session.scalars(select(Record).where(Record.id.in_(related)))} if related else {}
    day = today(ctx)
    view = OrderView(record=record, order=order, lines=lines,
                     totals=document_totals([quoting.stored_amounts(line) for line in lines], order.currency),
                     status=shown_status(order, day), overdue=is_overdue(order, day), today=day,
                     quote=others.get(order.quote_id), deal=others.get(order.deal_id),
                     invoice=invoice_state(ctx, order))
    view.actions = actions(ctx, view)
    return view


@dataclass(frozen=True)
class OrderSummary:
    """One row of a deal's or a party's order list (and of the lookup)."""

    record_id: int
    reference: str | None
    title: str
    kind: str
    status: str
    overdue: bool
    currency: str
    net: Decimal
    total: Decimal
    order_date: dt.date
    party_id: int | None
    unit_description: str | None
    unit_serial: str | None
    lent_on: dt.date | None
    due_back: dt.date | None


def summary(order: Order, record: Record, day: dt.date) -> OrderSummary:
    return OrderSummary(record_id=record.id, reference=record.reference, title=record.title, kind=order.kind,
                        status=shown_status(order, day), overdue=is_overdue(order, day), currency=order.currency,
                        net=order.net_amount, total=order.total_amount, order_date=order.order_date,
                        party_id=record.party_id, unit_description=order.unit_description,
                        unit_serial=order.unit_serial, lent_on=order.lent_on, due_back=order.due_back)


def _summaries(ctx: Context, where: Any) -> list[OrderSummary]:
    """The orders matching ``where``, loaners out first (by due-back day), then the newest: one
    query, at most :data:`PANEL_LIMIT`."""
    day = today(ctx)
    out_first = case((Order.status == Status.OUT.value, 0), else_=1)
    rows = ctx.session.execute(
        select(Order, Record).join(Record, Record.id == Order.record_id)
        .where(where, Record.archived_at.is_(None), Record.type.in_(TYPES))
        .order_by(out_first, Order.due_back, Order.order_date.desc(), Order.id.desc()).limit(PANEL_LIMIT)).all()
    return [summary(order, record, day) for order, record in rows]


@use_case(Role.READ_ONLY, write=False)
def orders_for_deal(ctx: Context, deal_id: int) -> list[OrderSummary]:
    """The deal's orders: loaners out first (by due-back day), then the newest (one query)."""
    return _summaries(ctx, Order.deal_id == deal_id)


@use_case(Role.READ_ONLY, write=False)
def orders_for_party(ctx: Context, party_id: int) -> list[OrderSummary]:
    """The party's orders: loaners out first (by due-back day), then the newest (one query)."""
    return _summaries(ctx, Record.party_id == party_id)


@use_case(Role.READ_ONLY, write=False)
def order_for_quote(ctx: Context, quote_id: int) -> Record | None:
    """The order made from the quote ``quote_id`` (a quote record id), if any (one query)."""
    return ctx.session.scalar(select(Record).join(Order, Order.record_id == Record.id)
                              .where(Order.quote_id == quote_id))
