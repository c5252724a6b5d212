"""reminders.notified_at: reminders that fell due are announced once, by the worker

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 07:00:00
"""
from alembic import op
import sqlalchemy as sa

import crmcore.db

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reminders') as batch:
        batch.add_column(sa.Column('notified_at', crmcore.db.UtcDateTime(timezone=True), nullable=True))
    # reminders already past due when this runs are not announced (no burst of stale notices)
    op.execute("UPDATE reminders SET notified_at = due_at WHERE done_at IS NULL AND due_at <= CURRENT_TIMESTAMP")
    with op.batch_alter_table('reminders') as batch:
        batch.create_index('ix_reminders_unannounced', ['due_at'], unique=False,
                           sqlite_where=sa.text('done_at IS NULL AND notified_at IS NULL'),
                           postgresql_where=sa.text('done_at IS NULL AND notified_at IS NULL'))


def downgrade() -> None:
    with op.batch_alter_table('reminders') as batch:
        batch.drop_index('ix_reminders_unannounced')
        batch.drop_column('notified_at')
