"""The orders plugin's tables, in its own ``MetaData``: an order's details (1:1 with its core
record of type ``sales_order`` or ``loaner_order``) and its lines.

Every table carries ``business_id``, so once the plugin is loaded (``PluginInfo.model_base``)
every ORM query through ``ctx.session`` is scoped to the current business, and every index
starts with it. Money is ``Numeric(18, 4)`` beside the order's currency; line amounts are
rounded per line by :mod:`crmcore.money` and the order's totals are their sums (the rule of
quotes and invoices, so a quote, its order and its invoice agree to the cent).

``quote_id`` is unique per business when set: an accepted quote makes at most one order, even
when the hook that makes it runs twice. ``product_id`` (lines, loaned unit) points at a catalog
product without a foreign key (the catalog's table is another plugin's): the line keeps its
SKU and description. The schema is created by ``migrations/versions`` (``crm db upgrade``);
tests create it from this metadata.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from crm_quoting.service import LineColumns
from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crmcore.db import NAMING_CONVENTION, BigId, IdMixin, JsonDoc, TimestampMixin, UtcDateTime, core_column

#: amounts and unit prices: 4 decimals (a unit price of 0.0125), amounts rounded to the currency
Money = Numeric(18, 4, asdecimal=True)
#: quantities: fractions allowed (2.5 h)
Quantity = Numeric(18, 4, asdecimal=True)
#: percent, 0 to 100
Percent = Numeric(7, 4, asdecimal=True)
#: tax rate in percent, 0 to 100 (the catalog's precision)
Rate = Numeric(6, 3, asdecimal=True)


class OrdersBase(DeclarativeBase):
    """Declarative base of this plugin: own MetaData, the core's naming convention and types."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UtcDateTime(), dt.date: Date(), dict[str, Any]: JsonDoc}


class Kind(enum.StrEnum):
    SALES = "sales"      # goods or services sold: record type sales_order
    LOANER = "loaner"    # a unit lent to the customer and due back: record type loaner_order


class Status(enum.StrEnum):
    OPEN = "open"              # editable: header and lines
    FULFILLED = "fulfilled"    # sales: delivered / done; locked, still to invoice
    INVOICED = "invoiced"      # sales: an invoice was made from it; locked
    CANCELLED = "cancelled"    # final: withdrawn while open
    OUT = "out"                # loaner: the unit was handed over (its "fulfilled"); locked
    RETURNED = "returned"      # loaner: the unit came back; final


#: the statuses each kind goes through
KIND_STATUSES = {
    Kind.SALES.value: (Status.OPEN.value, Status.FULFILLED.value, Status.INVOICED.value, Status.CANCELLED.value),
    Kind.LOANER.value: (Status.OPEN.value, Status.OUT.value, Status.RETURNED.value, Status.CANCELLED.value),
}
STATUSES = tuple(s.value for s in Status)


def _business() -> Mapped[int]:
    return mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))


def _record_ref() -> Mapped[int | None]:
    return mapped_column(BigId, ForeignKey(core_column("records.id"), ondelete="SET NULL"))


def _user_ref() -> Mapped[int | None]:
    return mapped_column(BigId, ForeignKey(core_column("users.id"), ondelete="SET NULL"))


class Order(IdMixin, TimestampMixin, OrdersBase):
    """The details of one order record: kind, status, where it came from, dates, addresses,
    totals, the steps of its life and, for a loaner, the unit lent."""

    __tablename__ = "orders_orders"
    __table_args__ = (
        # the lookup: newest first by order date, alone or by status, kind; a deal's orders;
        # loaners out by due-back day (overdue); the order of an invoice
        Index("ix_orders_orders_date", "business_id", "order_date", "id"),
        Index("ix_orders_orders_status", "business_id", "status", "order_date", "id"),
        Index("ix_orders_orders_kind", "business_id", "kind", "order_date", "id"),
        Index("ix_orders_orders_deal", "business_id", "deal_id", "id"),
        Index("ix_orders_orders_due", "business_id", "status", "due_back"),
        Index("ix_orders_orders_invoice", "business_id", "invoice_id"),
        UniqueConstraint("business_id", "quote_id"),
        CheckConstraint("kind in ('sales', 'loaner')", name="kind"),
        CheckConstraint("(kind = 'sales' and status in ('open', 'fulfilled', 'invoiced', 'cancelled')) or "
                        "(kind = 'loaner' and status in ('open', 'out', 'returned', 'cancelled'))",
                        name="kind_status"),
        CheckConstraint("kind = 'loaner' or (lent_on is null and due_back is null and returned_on is null)",
                        name="loaner_dates"),
        CheckConstraint("due_back is null or lent_on is null or due_back >= lent_on", name="due_back"),
        CheckConstraint("returned_on is null or (lent_on is not null and returned_on >= lent_on)",
                        name="returned_on"),
        CheckConstraint("status not in ('out', 'returned') or "
                        "(lent_on is not null and due_back is not null and unit_description is not null)",
                        name="unit_out"),
        CheckConstraint("status <> 'returned' or returned_on is not null", name="returned"),
    )

    business_id: Mapped[int] = _business()
    record_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("records.id"), ondelete="CASCADE"),
                                           unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=Status.OPEN.value)
    #: the record of the accepted quote it was made from (at most one order per quote)
    quote_id: Mapped[int | None] = _record_ref()
    #: the deal it belongs to (its quote's deal, or the deal it was made from)
    deal_id: Mapped[int | None] = _record_ref()
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("contacts.id"), ondelete="SET NULL"))
    currency: Mapped[str] = mapped_column(String(3))
    #: the day it was ordered (catalog prices of new lines are those of that day)
    order_date: Mapped[dt.date]
    #: the customer's purchase order number or reference
    customer_reference: Mapped[str | None] = mapped_column(String(100))
    requested_date: Mapped[dt.date | None]
    promised_date: Mapped[dt.date | None]
    #: snapshots of the party's addresses (label, line1, line2, postal_code, city, region, country)
    billing_address: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    notes: Mapped[str | None] = mapped_column(Text)
    net_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    tax_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    total_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    fulfilled_at: Mapped[dt.datetime | None]
    fulfilled_by_id: Mapped[int | None] = _user_ref()
    #: the record of the invoice made from it (the latest; a cancelled one may be replaced)
    invoice_id: Mapped[int | None] = _record_ref()
    invoiced_at: Mapped[dt.datetime | None]
    cancelled_at: Mapped[dt.datetime | None]
    cancelled_by_id: Mapped[int | None] = _user_ref()
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # -- loaners ---------------------------------------------------------------------------
    #: what is lent ("Demo tractor T100"), its serial or stock number, its catalog product
    unit_description: Mapped[str | None] = mapped_column(String(300))
    unit_serial: Mapped[str | None] = mapped_column(String(100))
    unit_product_id: Mapped[int | None] = mapped_column(BigId)
    #: the day the unit was handed over (set by "hand over"), due back, came back
    lent_on: Mapped[dt.date | None]
    due_back: Mapped[dt.date | None]
    returned_on: Mapped[dt.date | None]
    return_condition: Mapped[str | None] = mapped_column(Text)
    #: the owner's reminder on the due-back day (completed when the unit comes back)
    reminder_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("reminders.id"),
                                                                      ondelete="SET NULL"))


class OrderLine(IdMixin, LineColumns, OrdersBase):
    """One line: a catalog product (``product_id``) or free text, priced by quoting's rule; a
    line copied from a quote keeps that quote line's id (``source_quote_line_id``) and its
    amounts. A credit (a trade-in) is a negative unit price, never a negative quantity."""

    __tablename__ = "orders_order_lines"
    __table_args__ = (
        Index("ix_orders_order_lines_order", "business_id", "order_id", "position"),
        Index("ix_orders_order_lines_product", "business_id", "product_id", "order_id"),
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("discount_percent >= 0 and discount_percent <= 100", name="discount_percent"),
        CheckConstraint("tax_rate >= 0 and tax_rate <= 100", name="tax_rate"),
    )

    business_id: Mapped[int] = _business()
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders_orders.id", ondelete="CASCADE"))
    #: the quote line it was copied from (quoting's table: no foreign key)
    source_quote_line_id: Mapped[int | None] = mapped_column(BigId)
