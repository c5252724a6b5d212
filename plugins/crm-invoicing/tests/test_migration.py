"""The hand-written revisions build what ``models.py`` describes (autogenerate finds no
difference), on SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

from crm_invoicing.models import InvoicingBase
from sqlalchemy import create_engine

from crmcore.testing import check_migrations_match_models


def test_migration_builds_what_the_models_describe(scratch_database_url):
    engine = create_engine(scratch_database_url)
    try:
        results = check_migrations_match_models(engine, InvoicingBase.metadata)
        assert ("invoicing", None, "invoicing_0002") in results
    finally:
        engine.dispose()
