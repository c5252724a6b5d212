"""The hand-written revision builds what ``models.py`` describes (autogenerate finds no
difference), on SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

import os
import uuid

import pytest
from crm_quoting.models import QuotingBase
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from crmcore.migrations.runner import upgrade
from crmcore.plugins.manager import get_registry


@pytest.fixture
def database_url(tmp_path):
    pg = os.environ.get("CRM_TEST_DATABASE_URL")
    if not pg:
        yield f"sqlite:///{tmp_path / 'crm.sqlite'}"
        return
    url = make_url(pg).set(drivername="postgresql+psycopg")
    name = f"crm_quoting_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_migration_builds_what_the_models_describe(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(database_url)
    ours = set(QuotingBase.metadata.tables)
    try:
        results = upgrade(engine, get_registry())
        assert ("quoting", None, "quoting_0001") in results
        # the catalog (a dependency) is migrated before quoting
        order = [name for name, *_ in results]
        assert order.index("catalog") < order.index("quoting")

        def include(obj, name, type_, reflected, compare_to):
            return type_ != "table" or name in ours

        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": include})
            assert compare_metadata(context, QuotingBase.metadata) == []
        assert ours <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
