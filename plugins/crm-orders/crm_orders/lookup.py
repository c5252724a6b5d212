"""The order lookup (by party, status, kind, order date and item) and the statuses the core
shows for order records.

The lookup is one keyset page, newest order date first (``(order_date, id)`` descending, never
OFFSET), with a capped count; every filter is served by an index led by ``business_id``
(:mod:`crm_orders.models`). A page costs the same four queries whatever it holds: the page,
the count, its records, its parties' names.

Internal: import the use cases from :mod:`crm_orders.service`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, func, or_, select

from crm_orders.models import Order, OrderLine, Status
from crm_orders.orders import OrderSummary, summary
from crm_orders.rules import shown_status, today
from crm_orders.schemas import OVERDUE, LookupFilter, load
from crm_orders.types import TYPES
from crmcore.context import use_case
from crmcore.errors import ValidationFailed
from crmcore.paging import Page, capped_count, keyset_page
from crmcore.parties.models import Party
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _item(text: str) -> Any:
    """A line whose SKU starts with ``text`` or whose description holds it (any case), or a
    loaned unit whose serial starts with it or whose description holds it."""
    needle = _like(text.casefold())
    line = exists().where(OrderLine.order_id == Order.id, or_(
        func.lower(OrderLine.sku).like(f"{needle}%", escape="\\"),
        func.lower(OrderLine.description).like(f"%{needle}%", escape="\\")))
    return or_(line, func.lower(Order.unit_serial).like(f"{needle}%", escape="\\"),
               func.lower(Order.unit_description).like(f"%{needle}%", escape="\\"))


def clean_filters(filters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The filters as given, empty values dropped, validated (errors name the field)."""
    given = {k: v for k, v in dict(filters or {}).items() if not (v is None or (isinstance(v, str) and not v.strip()))}
    values = load(LookupFilter, given, "order filter")
    if values.get("date_from") and values.get("date_to") and values["date_to"] < values["date_from"]:
        raise ValidationFailed("invalid order filter", {"date_to": ["must be on or after the from date"]})
    return values


@use_case(Role.READ_ONLY, write=False)
def lookup_orders(ctx: Context, filters: Mapping[str, Any] | None = None, *, cursor: str | None = None,
                  limit: int | None = 50) -> Page[OrderSummary]:
    """One page of orders, newest order date first.

    ``filters``: ``party_id``, ``deal_id``, ``status`` (a stored status, or ``overdue``: a
    loaner out past its due-back day), ``kind`` (``sales`` / ``loaner``), ``date_from`` /
    ``date_to`` (the order date, inclusive), ``item`` (a SKU's start or words of a line's
    description, or a loaned unit's serial or description; any case) and ``product_id`` (a
    catalog product on a line or lent). Archived orders are left out. ``page.items`` are
    :class:`~crm_orders.orders.OrderSummary`; ``page.extra["party_names"]`` maps party ids to
    names; ``page.total`` is a capped count."""
    values = clean_filters(filters)
    day = today(ctx)
    stmt = select(Order).join(Record, Record.id == Order.record_id).where(
        Record.archived_at.is_(None), Record.type.in_(TYPES))
    if values.get("party_id"):
        stmt = stmt.where(Record.party_id == values["party_id"])
    if values.get("deal_id"):
        stmt = stmt.where(Order.deal_id == values["deal_id"])
    status = values.get("status")
    if status == OVERDUE:
        stmt = stmt.where(Order.status == Status.OUT.value, Order.due_back < day)
    elif status:
        stmt = stmt.where(Order.status == status)
    if values.get("kind"):
        stmt = stmt.where(Order.kind == values["kind"])
    if values.get("date_from"):
        stmt = stmt.where(Order.order_date >= values["date_from"])
    if values.get("date_to"):
        stmt = stmt.where(Order.order_date <= values["date_to"])
    if values.get("item"):
        stmt = stmt.where(_item(values["item"]))
    if values.get("product_id"):
        pid = values["product_id"]
        stmt = stmt.where(or_(Order.unit_product_id == pid, exists().where(
            OrderLine.order_id == Order.id, OrderLine.product_id == pid)))
    page = keyset_page(ctx.session, stmt, [Order.order_date, Order.id], cursor=cursor, limit=limit, descending=True)
    page.total = capped_count(ctx.session, stmt)
    found = list(page.items)
    by_id = {r.id: r for r in ctx.session.scalars(select(Record).where(
        Record.id.in_([o.record_id for o in found])))} if found else {}
    page.items = [summary(o, by_id[o.record_id], day) for o in found if o.record_id in by_id]
    party_ids = {s.party_id for s in page.items if s.party_id is not None}
    page.extra["party_names"] = dict(ctx.session.execute(select(Party.id, Party.name).where(
        Party.id.in_(party_ids))).all()) if party_ids else {}
    return page


def record_statuses(ctx: Context, record_type: str, records: Sequence[Record]) -> dict[int, str] | None:
    """``crm_record_statuses``: the status of each order record shown (``overdue`` for a loaner
    out past its day), in one query; None for other types."""
    if record_type not in TYPES:
        return None
    ids = [r.id for r in records]
    if not ids:
        return {}
    day = today(ctx)
    rows = ctx.session.scalars(select(Order).where(Order.record_id.in_(ids)))
    return {order.record_id: shown_status(order, day) for order in rows}
