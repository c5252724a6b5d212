"""invoicing plugin: invoices, lines, payments, payment attempts, gateway events

Revision ID: invoicing_0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "invoicing_0001"
down_revision = None
branch_labels = None
depends_on = None

#: the core's id type: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite
BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
Money = sa.Numeric(precision=18, scale=4)
Rate = sa.Numeric(precision=9, scale=4)
When = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], ondelete=ondelete,
                                   name=op.f(f"fk_{table}_{column}_{target.split('.')[0]}"))


def _business(table: str) -> list:
    return [sa.Column("id", BigId, autoincrement=True, nullable=False),
            sa.Column("business_id", BigId, nullable=False)]


def upgrade() -> None:
    t = "invoicing_invoices"
    op.create_table(
        t, *_business(t),
        sa.Column("record_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("payment_terms_days", sa.Integer(), nullable=True),
        sa.Column("customer_note", sa.Text(), nullable=True),
        sa.Column("billing_name", sa.String(length=300), nullable=True),
        sa.Column("billing_address", Json, nullable=True),
        sa.Column("deal_id", BigId, nullable=True),
        sa.Column("quote_id", BigId, nullable=True),
        sa.Column("order_id", BigId, nullable=True),
        sa.Column("credited_invoice_id", BigId, nullable=True),
        sa.Column("net_amount", Money, nullable=False),
        sa.Column("tax_amount", Money, nullable=False),
        sa.Column("total_amount", Money, nullable=False),
        sa.Column("paid_amount", Money, nullable=False),
        sa.Column("credited_amount", Money, nullable=False),
        sa.Column("token_prefix", sa.String(length=12), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("activated_at", When, nullable=True),
        sa.Column("paid_at", When, nullable=True),
        sa.Column("cancelled_at", When, nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.CheckConstraint("kind in ('invoice', 'credit_note')", name=op.f("ck_invoicing_invoices_kind")),
        sa.CheckConstraint("status in ('draft', 'active', 'partly_paid', 'paid', 'credited', 'cancelled')",
                           name=op.f("ck_invoicing_invoices_status")),
        _fk(t, "business_id", "businesses.id", "CASCADE"),
        _fk(t, "record_id", "records.id", "CASCADE"),
        _fk(t, "deal_id", "records.id", "SET NULL"),
        _fk(t, "quote_id", "records.id", "SET NULL"),
        _fk(t, "order_id", "records.id", "SET NULL"),
        _fk(t, "credited_invoice_id", "invoicing_invoices.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoicing_invoices")),
        sa.UniqueConstraint("record_id", name=op.f("uq_invoicing_invoices_record_id")),
    )
    op.create_index("ix_invoicing_invoices_status", t, ["business_id", "kind", "status", "due_date"])
    op.create_index("ix_invoicing_invoices_token", t, ["business_id", "token_prefix"])
    op.create_index("ix_invoicing_invoices_deal", t, ["business_id", "deal_id"])
    op.create_index("ix_invoicing_invoices_credited", t, ["business_id", "credited_invoice_id"])

    t = "invoicing_lines"
    op.create_table(
        t, *_business(t),
        sa.Column("invoice_id", BigId, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("quantity", Money, nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=True),
        sa.Column("unit_price", Money, nullable=False),
        sa.Column("discount_percent", Rate, nullable=False),
        sa.Column("tax_rate", Rate, nullable=False),
        sa.Column("net_amount", Money, nullable=False),
        sa.Column("tax_amount", Money, nullable=False),
        sa.Column("total_amount", Money, nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=True),
        sa.Column("source_kind", sa.String(length=32), nullable=True),
        sa.Column("source_id", sa.BigInteger(), nullable=True),
        sa.Column("credited_line_id", BigId, nullable=True),
        _fk(t, "business_id", "businesses.id", "CASCADE"),
        _fk(t, "invoice_id", "invoicing_invoices.id", "CASCADE"),
        _fk(t, "credited_line_id", "invoicing_lines.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoicing_lines")),
    )
    op.create_index("ix_invoicing_lines_invoice", t, ["business_id", "invoice_id", "position"])

    t = "invoicing_payment_attempts"
    op.create_table(
        t, *_business(t),
        sa.Column("invoice_id", BigId, nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("amount", Money, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_reference", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        _fk(t, "business_id", "businesses.id", "CASCADE"),
        _fk(t, "invoice_id", "invoicing_invoices.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoicing_payment_attempts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_invoicing_payment_attempts_idempotency_key")),
    )
    op.create_index("ix_invoicing_payment_attempts_invoice", t, ["business_id", "invoice_id", "id"])
    op.create_index("ix_invoicing_payment_attempts_reference", t, ["business_id", "gateway", "provider_reference"])

    t = "invoicing_payments"
    op.create_table(
        t, *_business(t),
        sa.Column("invoice_id", BigId, nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=True),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("provider_payment_id", sa.String(length=200), nullable=True),
        sa.Column("amount", Money, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("applied_amount", Money, nullable=False),
        sa.Column("refund_of_id", BigId, nullable=True),
        sa.Column("attempt_id", BigId, nullable=True),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_by_id", BigId, nullable=True),
        sa.Column("created_at", When, nullable=False),
        _fk(t, "business_id", "businesses.id", "CASCADE"),
        _fk(t, "invoice_id", "invoicing_invoices.id", "CASCADE"),
        _fk(t, "refund_of_id", "invoicing_payments.id", "SET NULL"),
        _fk(t, "attempt_id", "invoicing_payment_attempts.id", "SET NULL"),
        _fk(t, "recorded_by_id", "users.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoicing_payments")),
        sa.UniqueConstraint("business_id", "gateway", "provider_payment_id",
                            name=op.f("uq_invoicing_payments_business_id_gateway_provider_payment_id")),
    )
    op.create_index("ix_invoicing_payments_invoice", t, ["business_id", "invoice_id", "id"])

    t = "invoicing_gateway_events"
    op.create_table(
        t, *_business(t),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("provider_event_id", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider_reference", sa.String(length=200), nullable=True),
        sa.Column("provider_payment_id", sa.String(length=200), nullable=True),
        sa.Column("amount", Money, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("invoice_id", BigId, nullable=True),
        sa.Column("attempt_id", BigId, nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("received_at", When, nullable=False),
        sa.Column("last_received_at", When, nullable=False),
        _fk(t, "business_id", "businesses.id", "CASCADE"),
        _fk(t, "invoice_id", "invoicing_invoices.id", "SET NULL"),
        _fk(t, "attempt_id", "invoicing_payment_attempts.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoicing_gateway_events")),
        sa.UniqueConstraint("business_id", "gateway", "provider_event_id",
                            name=op.f("uq_invoicing_gateway_events_business_id_gateway_provider_event_id")),
    )
    op.create_index("ix_invoicing_gateway_events_business", t, ["business_id", "id"])
    op.create_index("ix_invoicing_gateway_events_invoice", t, ["business_id", "invoice_id"])


def downgrade() -> None:
    for table, indexes in (
        ("invoicing_gateway_events", ("ix_invoicing_gateway_events_invoice", "ix_invoicing_gateway_events_business")),
        ("invoicing_payments", ("ix_invoicing_payments_invoice",)),
        ("invoicing_payment_attempts", ("ix_invoicing_payment_attempts_reference",
                                        "ix_invoicing_payment_attempts_invoice")),
        ("invoicing_lines", ("ix_invoicing_lines_invoice",)),
        ("invoicing_invoices", ("ix_invoicing_invoices_credited", "ix_invoicing_invoices_deal",
                                "ix_invoicing_invoices_token", "ix_invoicing_invoices_status")),
    ):
        for index in indexes:
            op.drop_index(index, table_name=table)
        op.drop_table(table)
