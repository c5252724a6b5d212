"""The plugin's migrations build exactly what its models describe (SQLite, or PostgreSQL when
``CRM_TEST_DATABASE_URL`` is set). ``crm db upgrade`` runs in a subprocess, as in production."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from crm_plugin_template import NAME
from crm_plugin_template.plugin import PLUGIN
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@pytest.fixture
def database_url(tmp_path):
    pg = os.environ.get("CRM_TEST_DATABASE_URL")
    if not pg:
        yield f"sqlite:///{tmp_path / 'migrate.sqlite'}"
        return
    url = make_url(pg).set(drivername="postgresql+psycopg")
    name = f"crm_plugin_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_migrations_match_models(tmp_path, database_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    result = subprocess.run(
        [sys.executable, "-c", "from crmcore.cli import main; main()", "--instance", str(tmp_path),
         "--database", database_url, "db", "upgrade"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{NAME}: (empty) -> " in result.stdout

    ours = set(PLUGIN.metadata.tables)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True,
                "include_object": lambda obj, name, type_, reflected, compare_to: type_ != "table" or name in ours,
            })
            assert compare_metadata(context, PLUGIN.metadata) == []
    finally:
        engine.dispose()
