"""The hand-written revision builds what ``models.py`` describes (autogenerate finds no
difference), on SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

from crm_mass_mail.models import MassMailBase
from sqlalchemy import create_engine

from crmcore.testing import check_migrations_match_models


def test_migration_builds_what_the_models_describe(scratch_database_url):
    engine = create_engine(scratch_database_url)
    try:
        results = check_migrations_match_models(engine, MassMailBase.metadata)
        assert ("mass-mail", None, "mass_mail_0001") in results
    finally:
        engine.dispose()
