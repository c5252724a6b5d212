"""Making orders: entered directly (for a party or a deal, with catalog or free lines) and from
an accepted quote (its party, contact, addresses, currency and lines, the same amounts; at most
one order per quote).

Internal: import the use cases from :mod:`crm_orders.service`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crm_quoting import service as quoting

from crm_orders.models import Kind, Order, OrderLine, Status
from crm_orders.orders import LINK_KIND, order_for_quote, sentence_label, store_totals, timeline, write_lines
from crm_orders.rules import money_text, settings, today
from crm_orders.schemas import OrderInput, load
from crm_orders.types import SALES_ORDER, TYPE_OF
from crmcore.context import use_case
from crmcore.errors import Conflict, NotFound, ValidationFailed
from crmcore.money import document_totals
from crmcore.records import service as records
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

#: the keys of a line another plugin proposes through crm_record_defaults
DEFAULT_LINE_KEYS = ("product_id", "sku", "description", "quantity", "unit", "unit_price", "discount_percent",
                     "tax_rate")
LOANER_FIELDS = ("unit_description", "unit_serial", "unit_product_id", "due_back")
NO_PARTY = "an order is for a party: give party_id (or a deal that has one)"


def check_contact(ctx: Context, contact_id: int | None, party_id: int, errors: dict[str, list[str]]) -> None:
    quoting.check_contact(ctx, contact_id, party_id, errors, document="order")


def check_loaner(kind: str, values: Mapping[str, Any], order_date: dt.date, lent_on: dt.date | None,
                 errors: dict[str, list[str]]) -> None:
    """Loaner fields only on a loaner; a due-back day not before the day it is (or may be) lent."""
    if kind != Kind.LOANER.value:
        for key in LOANER_FIELDS:
            if values.get(key) is not None:
                errors[key] = ["only a loaner order lends a unit"]
        return
    due = values.get("due_back")
    start = lent_on or order_date
    if due is not None and due < start:
        errors["due_back"] = [f"must be on or after the day the unit is lent ({start:%Y-%m-%d})"
                              if lent_on else f"must be on or after the order's date ({start:%Y-%m-%d})"]


def check_unit_product(ctx: Context, product_id: int | None, errors: dict[str, list[str]]) -> Any:
    """The catalog product of a loaned unit (another business's: not found)."""
    if product_id is None:
        return None
    from crm_catalog import service as catalog

    try:
        return catalog.get_product(ctx, product_id)
    except NotFound:
        errors["unit_product_id"] = [f"no product {product_id} in this business's catalog"]
        return None


def _proposed_lines(ctx: Context, record_type: str, deal: Record | None, party: Any) -> list[dict[str, Any]]:
    """Lines enabled plugins propose for a new order through ``crm_record_defaults``
    (``{"lines": [...]}``, every plugin's, in call order)."""
    proposed = records.record_defaults(ctx, record_type, source_id=deal.id if deal is not None else None,
                                       party_id=party.id).get("lines") or []
    return [{k: line[k] for k in DEFAULT_LINE_KEYS if k in line} for line in proposed if isinstance(line, Mapping)]


def _priced_proposals(ctx: Context, pricing: Any, proposed: list[dict[str, Any]]) -> tuple[list[Any], list[str]]:
    """Each proposed line priced on its own: one that does not validate is left out (a default
    never stops a create) and said why."""
    kept: list[Any] = []
    dropped: list[str] = []
    for line in proposed:
        try:
            kept.extend(quoting.price_lines(ctx, pricing, [line], {}))
        except ValidationFailed as exc:
            reasons = "; ".join(f"{k.split('.', 2)[-1]}: {' '.join(v)}" for k, v in exc.errors.items())
            dropped.append(f"a proposed line ({line.get('description') or line.get('sku') or '?'}) was left out: "
                           f"{reasons}")
    return kept, dropped


@use_case(Role.MEMBER)
def create_order(ctx: Context, data: Mapping[str, Any]) -> Record:
    """A new open order entered directly; returns its record.

    ``data``: ``kind`` (``sales``, the default, or ``loaner``), ``deal_id`` (the order is for
    the deal's party and linked from the deal) and/or ``party_id``, ``contact_id`` (of that
    party; default: the deal's contact), ``title``, ``currency`` (default: the party's, else the
    business's), ``order_date`` (default: today; catalog prices of its lines are those of that
    day), ``customer_reference``, ``requested_date``, ``promised_date``, ``notes``,
    ``billing_address`` / ``shipping_address`` (default: snapshots of the party's addresses),
    ``lines`` (each as :func:`crm_quoting.service.price_lines` takes it: a catalog
    ``product_id`` at the party's price, or a free ``description`` with a ``unit_price``) and,
    for a loaner, ``unit_description``, ``unit_serial``, ``unit_product_id`` and ``due_back``.
    Without ``lines``, the lines other plugins propose through ``crm_record_defaults`` are used.
    """
    try:
        values = load(OrderInput, data, "order")
    except ValidationFailed as exc:  # name a missing party with the other errors
        if isinstance(data, Mapping) and data.get("party_id") in (None, "") and data.get("deal_id") in (None, ""):
            exc.errors.setdefault("party_id", [NO_PARTY])
        raise
    errors: dict[str, list[str]] = {}
    deal = quoting.deal_or_error(ctx, values["deal_id"], errors) if values["deal_id"] is not None else None
    party_id = values["party_id"]
    if deal is not None:
        if deal.party_id is None:
            errors["deal_id"] = ["the deal has no party: give it one first"]
        elif party_id is not None and party_id != deal.party_id:
            errors["party_id"] = [f"the deal is for party {deal.party_id}; an order of a deal is for its party"]
        party_id = party_id or deal.party_id
    if party_id is None and "deal_id" not in errors:
        errors["party_id"] = [NO_PARTY]
    party = quoting.party_or_error(ctx, party_id, errors) if party_id is not None and "party_id" not in errors else None
    if errors:
        raise ValidationFailed("invalid order: check " + ", ".join(sorted(errors)), errors)
    kind = values["kind"]
    contact_id = values.get("contact_id")
    if "contact_id" not in values and deal is not None and deal.contact_id in quoting.contacts_of(ctx, party.id):
        contact_id = deal.contact_id
    check_contact(ctx, contact_id, party.id, errors)
    day = values.get("order_date") or today(ctx)
    check_loaner(kind, values, day, None, errors)
    check_unit_product(ctx, values.get("unit_product_id"), errors)
    currency = values["currency"] or party.currency or ctx.business.currency or "EUR"
    pricing = quoting.pricing_for(ctx, party.id, currency, day, document="order")
    record_type = TYPE_OF[kind]
    priced, dropped = [], []
    if "lines" in values:
        try:
            priced = quoting.price_lines(ctx, pricing, values["lines"], {})
        except ValidationFailed as exc:
            errors.update(exc.errors)
    elif not errors:
        priced, dropped = _priced_proposals(ctx, pricing, _proposed_lines(ctx, record_type, deal, party))
    if errors:
        raise ValidationFailed("invalid order: check " + ", ".join(sorted(errors)), errors)

    billing, shipping = quoting.address_snapshots(ctx, party.id)
    noun = "Loan" if kind == Kind.LOANER.value else "Order"
    title = values.get("title") or (f"{noun}: {deal.title}" if deal is not None else f"{noun} for {party.name}")
    net = document_totals([p.amounts for p in priced], currency).net
    record = records.create_record(ctx, record_type, {
        "title": title[:300], "party_id": party.id, "contact_id": contact_id, "currency": currency,
        "amount": net if net >= 0 else None,
    }, source_id=deal.id if deal is not None else None, link_kind=LINK_KIND)
    order = Order(record_id=record.id, kind=kind, status=Status.OPEN.value,
                  deal_id=deal.id if deal is not None else None, contact_id=contact_id, currency=currency,
                  order_date=day, customer_reference=values.get("customer_reference"),
                  requested_date=values.get("requested_date"), promised_date=values.get("promised_date"),
                  notes=values.get("notes"),
                  billing_address=values.get("billing_address", billing),
                  shipping_address=values.get("shipping_address", shipping),
                  net_amount=Decimal(0), tax_amount=Decimal(0), total_amount=Decimal(0))
    if kind == Kind.LOANER.value:
        order.unit_description, order.unit_serial = values.get("unit_description"), values.get("unit_serial")
        order.unit_product_id = values.get("unit_product_id")
        order.due_back = values.get("due_back") or day + dt.timedelta(days=settings(ctx).loan_days)
    ctx.session.add(order)
    ctx.session.flush()
    write_lines(ctx, order.id, priced, {})
    totals = store_totals(ctx, record, order)
    timeline(ctx, record, "order_created", f"{sentence_label(record, order)} entered "
             f"({len(priced)} line{'s' if len(priced) != 1 else ''}, {money_text(totals.total, currency)})",
             {"kind": kind})
    for reason in dropped:
        timeline(ctx, record, "order_line_left_out", reason[:1].upper() + reason[1:])
    return record


@use_case(Role.MEMBER)
def create_order_from_quote(ctx: Context, quote_id: int) -> Record:
    """The sales order of an accepted quote (a quote record id); returns its record.

    The order takes the quote's party, contact, addresses, currency and lines (the same prices
    and amounts: each line remembers its quote line), is linked from the quote (link kind
    ``order``) and belongs to the quote's deal. A quote has at most one order: when it already
    has one, that one is returned and nothing is written (so running it twice, as the outbox
    may, makes one order). Only an accepted quote becomes an order (Conflict otherwise)."""
    existing = order_for_quote(ctx, quote_id)
    if existing is not None:
        return existing
    view = quoting.get_quote(ctx, quote_id)
    if view.status != "accepted":
        raise Conflict(f"quote {view.record.reference or view.record.id} is {view.status}: only an accepted "
                       "quote becomes an order")
    if view.record.party_id is None:
        raise Conflict(f"quote {view.record.reference or view.record.id} has no party")
    quote, source = view.quote, view.record
    # a contact archived since the quote was made is left off (the order is still made)
    contact_id = quote.contact_id if quote.contact_id in quoting.contacts_of(ctx, source.party_id) else None
    record = records.create_record(ctx, SALES_ORDER.key, {
        "title": _title_from(source.title)[:300], "party_id": source.party_id, "contact_id": contact_id,
        "currency": quote.currency, "amount": quote.net_amount if quote.net_amount >= 0 else None,
    }, source_id=source.id, link_kind=LINK_KIND)
    order = Order(record_id=record.id, kind=Kind.SALES.value, status=Status.OPEN.value, quote_id=source.id,
                  deal_id=quote.deal_id, contact_id=contact_id, currency=quote.currency,
                  order_date=today(ctx), billing_address=quote.billing_address,
                  shipping_address=quote.shipping_address, net_amount=Decimal(0), tax_amount=Decimal(0),
                  total_amount=Decimal(0))
    ctx.session.add(order)
    ctx.session.flush()
    if quote.deal_id is not None:  # the deal's page lists its orders too (unless it is archived)
        with contextlib.suppress(NotFound, Conflict):
            records.link_records(ctx, quote.deal_id, record.id, LINK_KIND)
    for position, line in enumerate(view.lines, start=1):
        ctx.session.add(OrderLine(
            order_id=order.id, position=position, product_id=line.product_id, sku=line.sku,
            description=line.description, quantity=line.quantity, unit=line.unit, unit_price=line.unit_price,
            discount_percent=line.discount_percent, tax_rate=line.tax_rate, price_source=line.price_source,
            origin=line.origin, source_quote_line_id=line.id, net_amount=line.net_amount,
            tax_amount=line.tax_amount, total_amount=line.total_amount))
    ctx.session.flush()
    store_totals(ctx, record, order)
    ref = source.reference or f"#{source.id}"
    timeline(ctx, record, "order_created", f"Order made from accepted quote {ref}", {"quote_id": source.id})
    timeline(ctx, source, "quote_ordered", f"Sales order {record.reference or record.id} made from this quote",
             {"order_id": record.id})
    return record


def _title_from(quote_title: str) -> str:
    """"Quote: Fleet renewal" -> "Order: Fleet renewal"; another title -> "Order: <title>"."""
    if quote_title.startswith("Quote:") or quote_title.startswith("Quote for "):
        return "Order" + quote_title[len("Quote"):]
    return f"Order: {quote_title}"


def order_on_accept(ctx: Context, quote: Record) -> Record | None:
    """``crm_after_quote_accepted``: the quote's order, where the ``order_on_accept`` setting is
    on (idempotent: a quote has at most one order)."""
    if not settings(ctx).order_on_accept:
        return None
    return create_order_from_quote(ctx, quote.id)
