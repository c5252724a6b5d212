"""Migration 0007 adds the business profile to existing businesses, its schema equals the models
(on SQLite and PostgreSQL), and it goes down again."""

from __future__ import annotations

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from crmcore.db import Base, import_models, make_engine
from crmcore.migrations.runner import _run, _script, core_set, upgrade
from crmcore.parties.search import alembic_include_name

PROFILE_COLUMNS = {"legal_name", "address_line1", "address_line2", "postcode", "city", "region", "country",
                   "tax_id", "email", "phone", "website", "bank_details", "paper_size", "logo_file", "logo_sha256"}


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


def _columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("businesses")}


def _business_diffs(engine) -> list:
    import_models()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": alembic_include_name})
        diffs = compare_metadata(context, Base.metadata)
    return [d for d in diffs if "businesses" in repr(d)]


def _downgrade(engine, destination: str) -> None:
    mset = core_set()
    script = _script(mset)
    with engine.begin() as conn:
        context = MigrationContext.configure(conn, opts={
            "version_table": mset.version_table, "render_as_batch": conn.dialect.name == "sqlite",
            "fn": lambda revision, _context: script._downgrade_revs(destination, revision),
            "transactional_ddl": True})
        with Operations.context(context):
            context.run_migrations()


def test_existing_businesses_get_an_empty_profile(empty_engine):
    _run(empty_engine, core_set(), "0006")
    assert not PROFILE_COLUMNS & _columns(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(text("INSERT INTO businesses (slug, name, currency, language, timezone, plugins_version, "
                          "config_version, created_at, updated_at) VALUES ('old', 'Old Co', 'EUR', 'de', 'UTC', "
                          "0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    upgrade(empty_engine, include_plugins=False)
    assert _columns(empty_engine) >= PROFILE_COLUMNS
    with empty_engine.connect() as conn:
        row = conn.execute(text("SELECT name, legal_name, tax_id, logo_file FROM businesses WHERE slug = 'old'")).one()
    assert tuple(row) == ("Old Co", None, None, None)
    assert _business_diffs(empty_engine) == []


def test_the_profile_migration_goes_down_and_up_again(empty_engine):
    upgrade(empty_engine, include_plugins=False)
    _downgrade(empty_engine, "0006")
    assert not PROFILE_COLUMNS & _columns(empty_engine)
    upgrade(empty_engine, include_plugins=False)
    assert _columns(empty_engine) >= PROFILE_COLUMNS
    assert _business_diffs(empty_engine) == []
