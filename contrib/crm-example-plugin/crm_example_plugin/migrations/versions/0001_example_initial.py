"""example plugin: the welcome log

Revision ID: example_0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "example_0001"
down_revision = None
branch_labels = None
depends_on = None

#: the core's id type: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite
BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "example_welcome_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_id", BigId, nullable=False),
        sa.Column("party_id", BigId, nullable=True),
        sa.Column("message", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["business_id"], ["businesses.id"], ondelete="CASCADE",
                                name=op.f("fk_example_welcome_log_business_id_businesses")),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], ondelete="CASCADE",
                                name=op.f("fk_example_welcome_log_party_id_parties")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_example_welcome_log")),
    )
    op.create_index("ix_example_welcome_log_party", "example_welcome_log",
                    ["business_id", "party_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_example_welcome_log_party", table_name="example_welcome_log")
    op.drop_table("example_welcome_log")
