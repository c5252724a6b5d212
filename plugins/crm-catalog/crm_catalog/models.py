"""The catalog's tables, in the plugin's own ``MetaData``: products, price lists and their items,
party special prices and customer cross references.

Every table carries ``business_id``, so once the plugin is loaded (``PluginInfo.model_base``)
every ORM query through ``ctx.session`` is scoped to the current business. Money is
``Numeric(18, 4)`` with a currency code beside it; the input schemas keep values to 10 integer
digits so SQLite (which stores NUMERIC as REAL) gives back exactly what was written. The schema
is created by ``migrations/versions`` (``crm db upgrade``); tests create it from this metadata.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from crmcore.db import NAMING_CONVENTION, BigId, IdMixin, TimestampMixin, UtcDateTime, core_column

#: unit prices: 4 decimals (a screw at 0.0125), rounded to the currency only per document line
Money = Numeric(18, 4, asdecimal=True)
#: quantities (stock, minimum quantities): fractions allowed (2.5 h, 0.75 kg)
Quantity = Numeric(18, 4, asdecimal=True)
#: tax rate in percent, 0 to 100
Rate = Numeric(6, 3, asdecimal=True)

PRODUCT_KINDS = ("product", "service")


class CatalogBase(DeclarativeBase):
    """Declarative base of this plugin: own MetaData, the core's naming convention and types."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UtcDateTime(), dt.date: Date()}


def _business() -> Mapped[int]:
    return mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))


class Product(IdMixin, TimestampMixin, CatalogBase):
    """Something the business sells: a product or a service, with its base (list) price."""

    __tablename__ = "catalog_products"
    __table_args__ = (
        UniqueConstraint("business_id", "sku_key"),
        # list pages: keyset by (name_key, id), with and without the active filter
        Index("ix_catalog_products_name", "business_id", "name_key", "id"),
        Index("ix_catalog_products_active_name", "business_id", "active", "name_key", "id"),
        CheckConstraint("kind in ('product', 'service')", name="kind"),
        CheckConstraint("unit_price >= 0", name="unit_price"),
        CheckConstraint("tax_rate >= 0 and tax_rate <= 100", name="tax_rate"),
    )

    business_id: Mapped[int] = _business()
    sku: Mapped[str] = mapped_column(String(64))
    #: casefolded SKU: unique per business, the prefix-search key
    sku_key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    #: casefolded name: the sort and substring-search key
    name_key: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="product")
    unit: Mapped[str] = mapped_column(String(20), default="pcs")
    unit_price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    tax_rate: Mapped[Decimal] = mapped_column(Rate, default=Decimal(0))
    active: Mapped[bool] = mapped_column(default=True)
    #: units in stock; None when the business does not track stock of this product
    stock_on_hand: Mapped[Decimal | None] = mapped_column(Quantity)


class PriceList(IdMixin, TimestampMixin, CatalogBase):
    """A named set of prices in one currency, valid between two dates (inclusive, open ends
    allowed), given to parties through :class:`SpecialPrice` rows."""

    __tablename__ = "catalog_price_lists"
    __table_args__ = (
        UniqueConstraint("business_id", "name_key"),
        Index("ix_catalog_price_lists_name", "business_id", "name_key", "id"),
        CheckConstraint("valid_from is null or valid_to is null or valid_from <= valid_to", name="dates"),
    )

    business_id: Mapped[int] = _business()
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[dt.date | None]
    valid_to: Mapped[dt.date | None]
    active: Mapped[bool] = mapped_column(default=True)
    note: Mapped[str | None] = mapped_column(String(500))


class PriceListItem(IdMixin, TimestampMixin, CatalogBase):
    """A product's price on a list from ``min_quantity`` units on (quantity breaks)."""

    __tablename__ = "catalog_price_list_items"
    __table_args__ = (
        # one price per (list, product, quantity break); named: the convention's name is too long
        UniqueConstraint("business_id", "price_list_id", "product_id", "min_quantity",
                         name="uq_catalog_price_list_items_break"),
        Index("ix_catalog_price_list_items_product", "business_id", "product_id", "price_list_id"),
        CheckConstraint("unit_price >= 0", name="unit_price"),
        CheckConstraint("min_quantity >= 1", name="min_quantity"),
    )

    business_id: Mapped[int] = _business()
    price_list_id: Mapped[int] = mapped_column(BigId, ForeignKey("catalog_price_lists.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("catalog_products.id", ondelete="CASCADE"))
    unit_price: Mapped[Decimal] = mapped_column(Money)
    min_quantity: Mapped[Decimal] = mapped_column(Quantity, default=Decimal(1))

    product: Mapped[Product] = relationship(lazy="raise_on_sql")


class SpecialPrice(IdMixin, TimestampMixin, CatalogBase):
    """What a party pays: EITHER a price list (``price_list_id``) OR one product at a fixed
    ``unit_price`` (``product_id``), valid between two dates (inclusive, open ends allowed)."""

    __tablename__ = "catalog_special_prices"
    __table_args__ = (
        Index("ix_catalog_special_prices_party", "business_id", "party_id", "product_id"),
        Index("ix_catalog_special_prices_product", "business_id", "product_id"),
        Index("ix_catalog_special_prices_list", "business_id", "price_list_id"),
        CheckConstraint("(price_list_id is null) <> (product_id is null)", name="target"),
        CheckConstraint("product_id is null or (unit_price is not null and currency is not null)", name="price"),
        CheckConstraint("unit_price is null or unit_price >= 0", name="unit_price"),
        CheckConstraint("valid_from is null or valid_to is null or valid_from <= valid_to", name="dates"),
    )

    business_id: Mapped[int] = _business()
    party_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("parties.id"), ondelete="CASCADE"))
    price_list_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("catalog_price_lists.id", ondelete="CASCADE"))
    product_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("catalog_products.id", ondelete="CASCADE"))
    unit_price: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    valid_from: Mapped[dt.date | None]
    valid_to: Mapped[dt.date | None]
    note: Mapped[str | None] = mapped_column(String(500))


class CrossReference(IdMixin, TimestampMixin, CatalogBase):
    """Customer Cross Reference Item Information: the party's own part number (and wording) for
    one of our products. A part number is unique per party, whatever its case."""

    __tablename__ = "catalog_cross_references"
    __table_args__ = (
        UniqueConstraint("business_id", "party_id", "part_key"),
        Index("ix_catalog_cross_references_product", "business_id", "product_id"),
    )

    business_id: Mapped[int] = _business()
    party_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("parties.id"), ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("catalog_products.id", ondelete="CASCADE"))
    customer_part_number: Mapped[str] = mapped_column(String(64))
    #: casefolded part number: unique per party, the lookup key
    part_key: Mapped[str] = mapped_column(String(64))
    customer_description: Mapped[str | None] = mapped_column(String(500))
