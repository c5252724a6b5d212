"""The quoting plugin's tables, in its own ``MetaData``: a quote's details (1:1 with its core
record of type ``quote``) and its lines.

Every table carries ``business_id``, so once the plugin is loaded (``PluginInfo.model_base``)
every ORM query through ``ctx.session`` is scoped to the current business. Money is
``Numeric(18, 4)`` beside the quote's currency; line amounts are rounded per line by
:mod:`crmcore.money` and the quote's totals are their sums. ``product_id`` points at a catalog
product without a foreign key (the catalog's table is another plugin's): the line keeps its
SKU and description, so deleting a product never changes a quote that was sent. The schema is
created by ``migrations/versions`` (``crm db upgrade``); tests create it from this metadata.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, MetaData, Numeric, String, Text
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


class QuotingBase(DeclarativeBase):
    """Declarative base of this plugin: own MetaData, the core's naming convention and types."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UtcDateTime(), dt.date: Date(), dict[str, Any]: JsonDoc}


class Status(enum.StrEnum):
    DRAFT = "draft"              # lines editable; nothing sent
    SENT = "sent"                # handed to the customer (by email, or marked sent)
    ACCEPTED = "accepted"        # final: the customer said yes
    REFUSED = "refused"          # final: the customer said no (with a reason)
    EXPIRED = "expired"          # a sent quote past its valid-until day
    SUPERSEDED = "superseded"    # a newer version replaced it


STATUSES = tuple(s.value for s in Status)


def _business() -> Mapped[int]:
    return mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))


class Quote(IdMixin, TimestampMixin, QuotingBase):
    """The details of one quote record: status, version, currency, addresses, texts and totals."""

    __tablename__ = "quoting_quotes"
    __table_args__ = (
        # a deal's quotes (its panel) and a quote's newer version
        Index("ix_quoting_quotes_deal", "business_id", "deal_id", "id"),
        Index("ix_quoting_quotes_revises", "business_id", "revises_id"),
        Index("ix_quoting_quotes_status", "business_id", "status", "valid_until"),
        CheckConstraint("status in ('draft', 'sent', 'accepted', 'refused', 'expired', 'superseded')",
                        name="status"),
        CheckConstraint("version >= 1", name="version"),
    )

    business_id: Mapped[int] = _business()
    record_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("records.id"), ondelete="CASCADE"),
                                           unique=True)
    #: the deal it was made for (also linked from the deal with a core record link)
    deal_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("records.id"), ondelete="SET NULL"))
    #: the record id of the quote this version revises (None for a first version)
    revises_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("records.id"), ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=Status.DRAFT.value)
    currency: Mapped[str] = mapped_column(String(3))
    #: the day the quote is dated and priced on
    quote_date: Mapped[dt.date]
    valid_until: Mapped[dt.date | None]
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("contacts.id"), ondelete="SET NULL"))
    #: snapshots of the party's addresses (line1, line2, postal_code, city, region, country)
    billing_address: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    intro: Mapped[str | None] = mapped_column(Text)
    terms: Mapped[str | None] = mapped_column(Text)
    net_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    tax_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    total_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    sent_at: Mapped[dt.datetime | None]
    accepted_at: Mapped[dt.datetime | None]
    accepted_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("users.id"), ondelete="SET NULL"))
    refused_at: Mapped[dt.datetime | None]
    refused_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("users.id"), ondelete="SET NULL"))
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    #: the last PDF generated (a timeline attachment of the quote)
    pdf_attachment_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey(core_column("attachments.id"), ondelete="SET NULL"))


class LineColumns:
    """The columns of a line priced by quoting's rule (:func:`crm_quoting.service.price_lines`):
    a quote's lines and other plugins' documents priced like them (crm-orders' order lines) mix
    them into a table of their own MetaData, beside its ``business_id`` and document id (their
    migrations write the same columns). A credit (a trade-in) is a negative unit price, never a
    negative quantity."""

    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int | None] = mapped_column(BigId)
    sku: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    unit: Mapped[str | None] = mapped_column(String(20))
    unit_price: Mapped[Decimal] = mapped_column(Money)
    discount_percent: Mapped[Decimal] = mapped_column(Percent, default=Decimal(0))
    tax_rate: Mapped[Decimal] = mapped_column(Rate, default=Decimal(0))
    #: where the price comes from: the catalog's source ("special price", "price list X",
    #: "list price"), "manual price" when typed over a catalog price, None for a free line
    price_source: Mapped[str | None] = mapped_column(String(200))
    #: the plugin whose ``crm_record_defaults`` proposed the line (a trade-in), if any
    origin: Mapped[str | None] = mapped_column(String(64))
    net_amount: Mapped[Decimal] = mapped_column(Money)
    tax_amount: Mapped[Decimal] = mapped_column(Money)
    total_amount: Mapped[Decimal] = mapped_column(Money)


class QuoteLine(IdMixin, LineColumns, QuotingBase):
    """One line: a catalog product (``product_id``) or free text; a credit (a trade-in) is a
    negative unit price, never a negative quantity."""

    __tablename__ = "quoting_quote_lines"
    __table_args__ = (
        Index("ix_quoting_quote_lines_quote", "business_id", "quote_id", "position"),
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("discount_percent >= 0 and discount_percent <= 100", name="discount_percent"),
        CheckConstraint("tax_rate >= 0 and tax_rate <= 100", name="tax_rate"),
    )

    business_id: Mapped[int] = _business()
    quote_id: Mapped[int] = mapped_column(BigId, ForeignKey("quoting_quotes.id", ondelete="CASCADE"))
