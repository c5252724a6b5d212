"""mass-mail plugin: campaigns, batches, recipients

Revision ID: mass_mail_0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "mass_mail_0001"
down_revision = None
branch_labels = None
depends_on = None

#: the core's id type: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite
BigId = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], ondelete=ondelete,
                                   name=op.f(f"fk_{table}_{column}_{target.split('.')[0]}"))


def upgrade() -> None:
    op.create_table(
        "mass_mail_campaigns",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_id", BigId, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("template_key", sa.String(length=100), nullable=False),
        sa.Column("audience", Json, nullable=False),
        sa.Column("throttle", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("batches_total", sa.Integer(), nullable=False),
        sa.Column("recipients_total", sa.Integer(), nullable=False),
        sa.Column("started_by", BigId, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _fk("mass_mail_campaigns", "business_id", "businesses.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mass_mail_campaigns")),
    )
    op.create_index("ix_mass_mail_campaigns_business", "mass_mail_campaigns", ["business_id", "id"])
    op.create_table(
        "mass_mail_batches",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_id", BigId, nullable=False),
        sa.Column("campaign_id", BigId, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("party_ids", Json, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outbox_id", BigId, nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        _fk("mass_mail_batches", "business_id", "businesses.id", "CASCADE"),
        _fk("mass_mail_batches", "campaign_id", "mass_mail_campaigns.id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mass_mail_batches")),
        sa.UniqueConstraint("campaign_id", "seq", name=op.f("uq_mass_mail_batches_campaign_id_seq")),
    )
    op.create_index("ix_mass_mail_batches_campaign", "mass_mail_batches", ["business_id", "campaign_id", "status"])
    op.create_table(
        "mass_mail_recipients",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("business_id", BigId, nullable=False),
        sa.Column("campaign_id", BigId, nullable=False),
        sa.Column("batch_id", BigId, nullable=True),
        sa.Column("party_id", BigId, nullable=True),
        sa.Column("message_id", BigId, nullable=True),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("mass_mail_recipients", "business_id", "businesses.id", "CASCADE"),
        _fk("mass_mail_recipients", "campaign_id", "mass_mail_campaigns.id", "CASCADE"),
        _fk("mass_mail_recipients", "batch_id", "mass_mail_batches.id", "SET NULL"),
        _fk("mass_mail_recipients", "party_id", "parties.id", "SET NULL"),
        _fk("mass_mail_recipients", "message_id", "messages.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mass_mail_recipients")),
        sa.UniqueConstraint("campaign_id", "party_id", name=op.f("uq_mass_mail_recipients_campaign_id_party_id")),
    )
    op.create_index("ix_mass_mail_recipients_campaign", "mass_mail_recipients", ["business_id", "campaign_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_mass_mail_recipients_campaign", table_name="mass_mail_recipients")
    op.drop_table("mass_mail_recipients")
    op.drop_index("ix_mass_mail_batches_campaign", table_name="mass_mail_batches")
    op.drop_table("mass_mail_batches")
    op.drop_index("ix_mass_mail_campaigns_business", table_name="mass_mail_campaigns")
    op.drop_table("mass_mail_campaigns")
