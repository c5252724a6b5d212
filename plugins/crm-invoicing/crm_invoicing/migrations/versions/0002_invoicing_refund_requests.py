"""invoicing plugin: refunds asked of a gateway by staff (idempotency key saved before the call)

Revision ID: invoicing_0002
Revises: invoicing_0001
Create Date: 2027-01-15
"""

import sqlalchemy as sa
from alembic import op

revision = "invoicing_0002"
down_revision = "invoicing_0001"
branch_labels = None
depends_on = None

#: the core's id type: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite
BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
Money = sa.Numeric(precision=18, scale=4)
When = sa.DateTime(timezone=True)
TABLE = "invoicing_refund_requests"


def _fk(column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], ondelete=ondelete,
                                   name=op.f(f"fk_{TABLE}_{column}_{target.split('.')[0]}"))


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_id", BigId, nullable=False),
        sa.Column("invoice_id", BigId, nullable=False),
        sa.Column("payment_id", BigId, nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("amount", Money, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_refund_id", sa.String(length=200), nullable=True),
        sa.Column("refund_id", BigId, nullable=True),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by_id", BigId, nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.CheckConstraint("status in ('created', 'succeeded', 'pending', 'failed')",
                           name=op.f(f"ck_{TABLE}_status")),
        sa.CheckConstraint("amount > 0", name=op.f(f"ck_{TABLE}_amount")),
        _fk("business_id", "businesses.id", "CASCADE"),
        _fk("invoice_id", "invoicing_invoices.id", "CASCADE"),
        _fk("payment_id", "invoicing_payments.id", "CASCADE"),
        _fk("refund_id", "invoicing_payments.id", "SET NULL"),
        _fk("requested_by_id", "users.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
        sa.UniqueConstraint("idempotency_key", name=op.f(f"uq_{TABLE}_idempotency_key")),
    )
    op.create_index("ix_invoicing_refund_requests_payment", TABLE, ["business_id", "payment_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_invoicing_refund_requests_payment", table_name=TABLE)
    op.drop_table(TABLE)
