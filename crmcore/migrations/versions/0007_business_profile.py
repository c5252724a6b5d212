"""businesses: the business profile shown on documents (legal name, address, tax id, contact,
bank details, paper size, logo)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 09:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

COLUMNS = (
    ('legal_name', sa.String(length=200)),
    ('address_line1', sa.String(length=200)),
    ('address_line2', sa.String(length=200)),
    ('postcode', sa.String(length=20)),
    ('city', sa.String(length=100)),
    ('region', sa.String(length=100)),
    ('country', sa.String(length=2)),
    ('tax_id', sa.String(length=40)),
    ('email', sa.String(length=254)),
    ('phone', sa.String(length=40)),
    ('website', sa.String(length=200)),
    ('bank_details', sa.Text()),
    ('paper_size', sa.String(length=10)),
    ('logo_file', sa.String(length=80)),
    ('logo_sha256', sa.String(length=64)),
)


def upgrade() -> None:
    # nullable columns without defaults: a plain ADD COLUMN on SQLite and PostgreSQL alike, so
    # the businesses table (which every tenant table points at) is never copied
    for name, kind in COLUMNS:
        op.add_column('businesses', sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('businesses') as batch:
        for name, _kind in reversed(COLUMNS):
            batch.drop_column(name)
