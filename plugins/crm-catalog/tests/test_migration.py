"""The hand-written revision builds what ``models.py`` describes (autogenerate finds no
difference), on SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

from crm_catalog.models import CatalogBase
from sqlalchemy import create_engine, inspect

from crmcore.testing import check_migrations_match_models


def test_migration_builds_what_the_models_describe(scratch_database_url):
    engine = create_engine(scratch_database_url)
    try:
        results = check_migrations_match_models(engine, CatalogBase.metadata)
        assert ("catalog", None, "catalog_0001") in results
        inspector = inspect(engine)
        # every index of the plugin is led by business_id (the tenant scope's column)
        for table in CatalogBase.metadata.tables:
            for index in inspector.get_indexes(table):
                assert index["column_names"][0] == "business_id", (table, index["name"])
            checks = {c["name"] for c in inspector.get_check_constraints(table)}
            assert checks == {c.name for c in CatalogBase.metadata.tables[table].constraints
                              if c.__class__.__name__ == "CheckConstraint"}, table
    finally:
        engine.dispose()
