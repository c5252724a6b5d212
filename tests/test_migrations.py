"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from crmcore.db import Base, import_models, make_engine
from crmcore.migrations.runner import status, upgrade
from crmcore.parties.search import alembic_include_name


@pytest.fixture
def empty_engine(tmp_path):
    pg = os.environ.get("CRM_TEST_DATABASE_URL")
    if not pg:
        engine = make_engine(f"sqlite:///{tmp_path / 'migrate.sqlite'}")
        yield engine
        engine.dispose()
        return
    url = make_url(pg).set(drivername="postgresql+psycopg")
    name = f"crm_migrate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(url.set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _diff(engine):
    import_models()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": alembic_include_name})
        diffs = compare_metadata(context, Base.metadata)
    # PostgreSQL-only indexes are declared with ddl_if; autogenerate compares them on SQLite too
    pg_only = {ix.name for t in Base.metadata.tables.values() for ix in t.indexes
               if getattr(ix, "_ddl_if", None) is not None}
    return [d for d in diffs
            if not (engine.dialect.name == "sqlite" and d[0] in ("add_index", "remove_index") and d[1].name in pg_only)]


def test_core_migrations_match_models(empty_engine):
    results = upgrade(empty_engine, include_plugins=False)
    assert results[0][0] == "core" and results[0][2] is not None
    assert _diff(empty_engine) == []


def test_upgrade_twice_is_a_no_op(empty_engine):
    upgrade(empty_engine, include_plugins=False)
    (name, before, after), = upgrade(empty_engine, include_plugins=False)
    assert before == after
    (core, current, head), = status(empty_engine)
    assert current == head


def test_gin_index_exists_only_on_postgresql(empty_engine):
    upgrade(empty_engine, include_plugins=False)
    names = {ix["name"] for ix in inspect(empty_engine).get_indexes("parties")}
    on_pg = empty_engine.dialect.name == "postgresql"
    assert ("ix_parties_custom_gin" in names) == on_pg
    assert ("ix_parties_name_prefix_pg" in names) == on_pg
