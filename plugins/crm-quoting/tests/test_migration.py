"""The hand-written revision builds what ``models.py`` describes (autogenerate finds no
difference), on SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

from crm_quoting.models import QuotingBase
from sqlalchemy import create_engine

from crmcore.testing import check_migrations_match_models


def test_migration_builds_what_the_models_describe(scratch_database_url):
    engine = create_engine(scratch_database_url)
    try:
        results = check_migrations_match_models(engine, QuotingBase.metadata)
        assert ("quoting", None, "quoting_0001") in results
        # the catalog (a dependency) is migrated before quoting
        order = [name for name, *_ in results]
        assert order.index("catalog") < order.index("quoting")
    finally:
        engine.dispose()
