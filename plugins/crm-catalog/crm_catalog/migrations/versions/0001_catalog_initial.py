"""catalog plugin: products, price lists and items, special prices, cross references

Revision ID: catalog_0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "catalog_0001"
down_revision = None
branch_labels = None
depends_on = None

#: the core's id type: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite
BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
Money = sa.Numeric(precision=18, scale=4)
Rate = sa.Numeric(precision=6, scale=3)


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], ondelete=ondelete,
                                   name=op.f(f"fk_{table}_{column}_{target.split('.')[0]}"))


def _common(table: str) -> list:
    return [
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_id", BigId, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _fk(table, "business_id", "businesses.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def _check(table: str, name: str, sql: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sql, name=op.f(f"ck_{table}_{name}"))


def upgrade() -> None:
    t = "catalog_products"
    op.create_table(
        t, *_common(t),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("sku_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("unit_price", Money, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tax_rate", Rate, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("stock_on_hand", Money, nullable=True),
        sa.UniqueConstraint("business_id", "sku_key", name=op.f("uq_catalog_products_business_id_sku_key")),
        _check(t, "kind", "kind in ('product', 'service')"),
        _check(t, "unit_price", "unit_price >= 0"),
        _check(t, "tax_rate", "tax_rate >= 0 and tax_rate <= 100"),
    )
    op.create_index("ix_catalog_products_name", t, ["business_id", "name_key", "id"])
    op.create_index("ix_catalog_products_active_name", t, ["business_id", "active", "name_key", "id"])

    t = "catalog_price_lists"
    op.create_table(
        t, *_common(t),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.UniqueConstraint("business_id", "name_key", name=op.f("uq_catalog_price_lists_business_id_name_key")),
        _check(t, "dates", "valid_from is null or valid_to is null or valid_from <= valid_to"),
    )
    op.create_index("ix_catalog_price_lists_name", t, ["business_id", "name_key", "id"])

    t = "catalog_price_list_items"
    op.create_table(
        t, *_common(t),
        sa.Column("price_list_id", BigId, nullable=False),
        sa.Column("product_id", BigId, nullable=False),
        sa.Column("unit_price", Money, nullable=False),
        sa.Column("min_quantity", Money, nullable=False),
        _fk(t, "price_list_id", "catalog_price_lists.id", "CASCADE"),
        _fk(t, "product_id", "catalog_products.id", "CASCADE"),
        sa.UniqueConstraint("business_id", "price_list_id", "product_id", "min_quantity",
                            name="uq_catalog_price_list_items_break"),
        _check(t, "unit_price", "unit_price >= 0"),
        _check(t, "min_quantity", "min_quantity >= 1"),
    )
    op.create_index("ix_catalog_price_list_items_product", t, ["business_id", "product_id", "price_list_id"])

    t = "catalog_special_prices"
    op.create_table(
        t, *_common(t),
        sa.Column("party_id", BigId, nullable=False),
        sa.Column("price_list_id", BigId, nullable=True),
        sa.Column("product_id", BigId, nullable=True),
        sa.Column("unit_price", Money, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        _fk(t, "party_id", "parties.id", "CASCADE"),
        _fk(t, "price_list_id", "catalog_price_lists.id", "CASCADE"),
        _fk(t, "product_id", "catalog_products.id", "CASCADE"),
        _check(t, "target", "(price_list_id is null) <> (product_id is null)"),
        _check(t, "price", "product_id is null or (unit_price is not null and currency is not null)"),
        _check(t, "unit_price", "unit_price is null or unit_price >= 0"),
        _check(t, "dates", "valid_from is null or valid_to is null or valid_from <= valid_to"),
    )
    op.create_index("ix_catalog_special_prices_party", t, ["business_id", "party_id", "product_id"])
    op.create_index("ix_catalog_special_prices_product", t, ["business_id", "product_id"])
    op.create_index("ix_catalog_special_prices_list", t, ["business_id", "price_list_id"])

    t = "catalog_cross_references"
    op.create_table(
        t, *_common(t),
        sa.Column("party_id", BigId, nullable=False),
        sa.Column("product_id", BigId, nullable=False),
        sa.Column("customer_part_number", sa.String(length=64), nullable=False),
        sa.Column("part_key", sa.String(length=64), nullable=False),
        sa.Column("customer_description", sa.String(length=500), nullable=True),
        _fk(t, "party_id", "parties.id", "CASCADE"),
        _fk(t, "product_id", "catalog_products.id", "CASCADE"),
        sa.UniqueConstraint("business_id", "party_id", "part_key",
                            name=op.f("uq_catalog_cross_references_business_id_party_id_part_key")),
    )
    op.create_index("ix_catalog_cross_references_product", t, ["business_id", "product_id"])


def downgrade() -> None:
    for table in ("catalog_cross_references", "catalog_special_prices", "catalog_price_list_items",
                  "catalog_price_lists", "catalog_products"):
        op.drop_table(table)
