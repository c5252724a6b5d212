"""quoting plugin: quote details and lines

Revision ID: quoting_0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "quoting_0001"
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
    t = "quoting_quotes"
    op.create_table(
        t,
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_id", BigId, nullable=False),
        sa.Column("record_id", BigId, nullable=False),
        sa.Column("deal_id", BigId, nullable=True),
        sa.Column("revises_id", BigId, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("quote_date", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("contact_id", BigId, nullable=True),
        sa.Column("billing_address", Json, nullable=True),
        sa.Column("shipping_address", Json, nullable=True),
        sa.Column("intro", sa.Text(), nullable=True),
        sa.Column("terms", sa.Text(), nullable=True),
        sa.Column("net_amount", Money, nullable=False),
        sa.Column("tax_amount", Money, nullable=False),
        sa.Column("total_amount", Money, nullable=False),
        sa.Column("sent_at", When, nullable=True),
        sa.Column("accepted_at", When, nullable=True),
        sa.Column("accepted_by_id", BigId, nullable=True),
        sa.Column("refused_at", When, nullable=True),
        sa.Column("refused_by_id", BigId, nullable=True),
        sa.Column("refusal_reason", sa.Text(), nullable=True),
        sa.Column("pdf_attachment_id", BigId, nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.CheckConstraint("status in ('draft', 'sent', 'accepted', 'refused', 'expired', 'superseded')",
                           name=op.f("ck_quoting_quotes_status")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_quoting_quotes_version")),
        _fk(t, "business_id", "businesses.id", "CASCADE"),
        _fk(t, "record_id", "records.id", "CASCADE"),
        _fk(t, "deal_id", "records.id", "SET NULL"),
        _fk(t, "revises_id", "records.id", "SET NULL"),
        _fk(t, "contact_id", "contacts.id", "SET NULL"),
        _fk(t, "accepted_by_id", "users.id", "SET NULL"),
        _fk(t, "refused_by_id", "users.id", "SET NULL"),
        _fk(t, "pdf_attachment_id", "attachments.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quoting_quotes")),
        sa.UniqueConstraint("record_id", name=op.f("uq_quoting_quotes_record_id")),
    )
    op.create_index("ix_quoting_quotes_deal", t, ["business_id", "deal_id", "id"])
    op.create_index("ix_quoting_quotes_revises", t, ["business_id", "revises_id"])
    op.create_index("ix_quoting_quotes_status", t, ["business_id", "status", "valid_until"])

    t = "quoting_quote_lines"
    op.create_table(
        t,
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_id", BigId, nullable=False),
        sa.Column("quote_id", BigId, nullable=False),
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
        sa.Column("net_amount", Money, nullable=False),
        sa.Column("tax_amount", Money, nullable=False),
        sa.Column("total_amount", Money, nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_quoting_quote_lines_quantity")),
        sa.CheckConstraint("discount_percent >= 0 and discount_percent <= 100",
                           name=op.f("ck_quoting_quote_lines_discount_percent")),
        sa.CheckConstraint("tax_rate >= 0 and tax_rate <= 100", name=op.f("ck_quoting_quote_lines_tax_rate")),
        _fk(t, "business_id", "businesses.id", "CASCADE"),
        _fk(t, "quote_id", "quoting_quotes.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quoting_quote_lines")),
    )
    op.create_index("ix_quoting_quote_lines_quote", t, ["business_id", "quote_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_quoting_quote_lines_quote", table_name="quoting_quote_lines")
    op.drop_table("quoting_quote_lines")
    op.drop_index("ix_quoting_quotes_status", table_name="quoting_quotes")
    op.drop_index("ix_quoting_quotes_revises", table_name="quoting_quotes")
    op.drop_index("ix_quoting_quotes_deal", table_name="quoting_quotes")
    op.drop_table("quoting_quotes")
