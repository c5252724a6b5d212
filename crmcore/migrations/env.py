"""Alembic environment for developers (``alembic -c crmcore/migrations/alembic.ini revision
--autogenerate``). Installations migrate with ``crm db upgrade`` (crmcore.migrations.runner)."""

import os

from alembic import context
from sqlalchemy import engine_from_config, pool

from crmcore.db import Base, import_models
from crmcore.parties.search import alembic_include_name

import_models()
config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    section = config.get_section(config.config_ini_section, {})
    if os.environ.get("ALEMBIC_URL"):
        section["sqlalchemy.url"] = os.environ["ALEMBIC_URL"]
    connectable = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite", compare_type=True,
                          include_name=alembic_include_name)  # the FTS5 tables no model describes
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
