"""orders plugin: order details and lines

Revision ID: orders_0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "orders_0001"
down_revision = None
branch_labels = None
depends_on = None

#: the core's id type: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite
BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
Money = sa.Numeric(18, 4)
When = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], ondelete=ondelete,
                                   name=op.f(f"fk_{table}_{column}_{target.split('.')[0]}"))


def upgrade() -> None:
    t = "orders_orders"
    op.create_table(
        t,
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_id", BigId, nullable=False),
        sa.Column("record_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("quote_id", BigId, nullable=True),
        sa.Column("deal_id", BigId, nullable=True),
        sa.Column("contact_id", BigId, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("order_date", sa.Date(), nullable=False),
        sa.Column("customer_reference", sa.String(length=100), nullable=True),
        sa.Column("requested_date", sa.Date(), nullable=True),
        sa.Column("promised_date", sa.Date(), nullable=True),
        sa.Column("billing_address", Json, nullable=True),
        sa.Column("shipping_address", Json, nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("net_amount", Money, nullable=False),
        sa.Column("tax_amount", Money, nullable=False),
        sa.Column("total_amount", Money, nullable=False),
        sa.Column("fulfilled_at", When, nullable=True),
        sa.Column("fulfilled_by_id", BigId, nullable=True),
        sa.Column("invoice_id", BigId, nullable=True),
        sa.Column("invoiced_at", When, nullable=True),
        sa.Column("cancelled_at", When, nullable=True),
        sa.Column("cancelled_by_id", BigId, nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("unit_description", sa.String(length=300), nullable=True),
        sa.Column("unit_serial", sa.String(length=100), nullable=True),
        sa.Column("unit_product_id", BigId, nullable=True),
        sa.Column("lent_on", sa.Date(), nullable=True),
        sa.Column("due_back", sa.Date(), nullable=True),
        sa.Column("returned_on", sa.Date(), nullable=True),
        sa.Column("return_condition", sa.Text(), nullable=True),
        sa.Column("reminder_id", BigId, nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.CheckConstraint("kind in ('sales', 'loaner')", name=op.f("ck_orders_orders_kind")),
        sa.CheckConstraint("(kind = 'sales' and status in ('open', 'fulfilled', 'invoiced', 'cancelled')) or "
                           "(kind = 'loaner' and status in ('open', 'out', 'returned', 'cancelled'))",
                           name=op.f("ck_orders_orders_kind_status")),
        sa.CheckConstraint("kind = 'loaner' or (lent_on is null and due_back is null and returned_on is null)",
                           name=op.f("ck_orders_orders_loaner_dates")),
        sa.CheckConstraint("due_back is null or lent_on is null or due_back >= lent_on",
                           name=op.f("ck_orders_orders_due_back")),
        sa.CheckConstraint("returned_on is null or (lent_on is not null and returned_on >= lent_on)",
                           name=op.f("ck_orders_orders_returned_on")),
        sa.CheckConstraint("status not in ('out', 'returned') or "
                           "(lent_on is not null and due_back is not null and unit_description is not null)",
                           name=op.f("ck_orders_orders_unit_out")),
        sa.CheckConstraint("status <> 'returned' or returned_on is not null", name=op.f("ck_orders_orders_returned")),
        _fk(t, "business_id", "businesses.id", "CASCADE"),
        _fk(t, "record_id", "records.id", "CASCADE"),
        _fk(t, "quote_id", "records.id", "SET NULL"),
        _fk(t, "deal_id", "records.id", "SET NULL"),
        _fk(t, "contact_id", "contacts.id", "SET NULL"),
        _fk(t, "fulfilled_by_id", "users.id", "SET NULL"),
        _fk(t, "invoice_id", "records.id", "SET NULL"),
        _fk(t, "cancelled_by_id", "users.id", "SET NULL"),
        _fk(t, "reminder_id", "reminders.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders_orders")),
        sa.UniqueConstraint("record_id", name=op.f("uq_orders_orders_record_id")),
        sa.UniqueConstraint("business_id", "quote_id", name=op.f("uq_orders_orders_business_id_quote_id")),
    )
    op.create_index("ix_orders_orders_date", t, ["business_id", "order_date", "id"])
    op.create_index("ix_orders_orders_status", t, ["business_id", "status", "order_date", "id"])
    op.create_index("ix_orders_orders_kind", t, ["business_id", "kind", "order_date", "id"])
    op.create_index("ix_orders_orders_deal", t, ["business_id", "deal_id", "id"])
    op.create_index("ix_orders_orders_due", t, ["business_id", "status", "due_back"])
    op.create_index("ix_orders_orders_invoice", t, ["business_id", "invoice_id"])

    t = "orders_order_lines"
    op.create_table(
        t,
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_id", BigId, nullable=False),
        sa.Column("order_id", BigId, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("product_id", BigId, nullable=True),
        sa.Column("sku", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(18, 4), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=True),
        sa.Column("unit_price", Money, nullable=False),
        sa.Column("discount_percent", sa.Numeric(7, 4), nullable=False),
        sa.Column("tax_rate", sa.Numeric(6, 3), nullable=False),
        sa.Column("price_source", sa.String(length=200), nullable=True),
        sa.Column("origin", sa.String(length=64), nullable=True),
        sa.Column("source_quote_line_id", BigId, nullable=True),
        sa.Column("net_amount", Money, nullable=False),
        sa.Column("tax_amount", Money, nullable=False),
        sa.Column("total_amount", Money, nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_orders_order_lines_quantity")),
        sa.CheckConstraint("discount_percent >= 0 and discount_percent <= 100",
                           name=op.f("ck_orders_order_lines_discount_percent")),
        sa.CheckConstraint("tax_rate >= 0 and tax_rate <= 100", name=op.f("ck_orders_order_lines_tax_rate")),
        _fk(t, "business_id", "businesses.id", "CASCADE"),
        _fk(t, "order_id", "orders_orders.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders_order_lines")),
    )
    op.create_index("ix_orders_order_lines_order", t, ["business_id", "order_id", "position"])
    op.create_index("ix_orders_order_lines_product", t, ["business_id", "product_id", "order_id"])


def downgrade() -> None:
    op.drop_index("ix_orders_order_lines_product", table_name="orders_order_lines")
    op.drop_index("ix_orders_order_lines_order", table_name="orders_order_lines")
    op.drop_table("orders_order_lines")
    for name in ("invoice", "due", "deal", "kind", "status", "date"):
        op.drop_index(f"ix_orders_orders_{name}", table_name="orders_orders")
    op.drop_table("orders_orders")
