"""The outbox worker: partial indexes for claiming due rows and pruning finished ones

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 09:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

CLAIMABLE = sa.text("status IN ('pending', 'failed', 'running')")
FINISHED = sa.text("status IN ('done', 'discarded')")


def upgrade() -> None:
    # a running row's next_attempt_at becomes its lease end, so one ordered index over the
    # claimable statuses serves every claim; done rows (most of the table) stay out of it
    op.execute(sa.text("UPDATE outbox SET next_attempt_at = locked_until "
                       "WHERE status = 'running' AND locked_until IS NOT NULL"))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due')
        batch_op.create_index('ix_outbox_due', ['next_attempt_at'], unique=False,
                              sqlite_where=CLAIMABLE, postgresql_where=CLAIMABLE)
        batch_op.create_index('ix_outbox_finished', ['done_at'], unique=False,
                              sqlite_where=FINISHED, postgresql_where=FINISHED)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_finished')
        batch_op.drop_index('ix_outbox_due')
        batch_op.create_index('ix_outbox_due', ['status', 'next_attempt_at'], unique=False)
