"""plugin_template: remembered wins

Revision ID: plugin_template_0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "plugin_template_0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "plugin_template_wins",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_id", BigId, nullable=False),
        sa.Column("record_id", BigId, nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("won_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["business_id"], ["businesses.id"], ondelete="CASCADE",
                                name=op.f("fk_plugin_template_wins_business_id_businesses")),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE",
                                name=op.f("fk_plugin_template_wins_record_id_records")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plugin_template_wins")),
    )
    op.create_index("ix_plugin_template_wins_record", "plugin_template_wins", ["business_id", "record_id"])


def downgrade() -> None:
    op.drop_index("ix_plugin_template_wins_record", table_name="plugin_template_wins")
    op.drop_table("plugin_template_wins")
