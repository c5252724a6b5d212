"""party search: FTS5 trigram tables and triggers (SQLite), pg_trgm GIN indexes (PostgreSQL)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 12:00:00

The SQLite statements are a frozen copy of ``crmcore.parties.search.SQLITE_DDL`` as of this
revision (a later change to the index is a new revision, never an edit of this one);
tests/test_party_search.py checks that this revision and ``create_all`` build the same schema.
"""
import logging
import sqlite3

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

log = logging.getLogger("crmcore.migrations")

_KINDS = "'email', 'fax', 'mobile', 'phone'"
_PARTY_ROW = "INSERT OR REPLACE INTO party_search (rowid, name_key, reference) VALUES (NEW.id, NEW.name_key, NEW.reference);"
SQLITE_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS party_search USING fts5(name_key, reference, tokenize = 'trigram')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS mechanism_search USING fts5(normalized, tokenize = 'trigram')",
    f"CREATE TRIGGER IF NOT EXISTS party_search_insert AFTER INSERT ON parties BEGIN {_PARTY_ROW} END",
    "CREATE TRIGGER IF NOT EXISTS party_search_update AFTER UPDATE OF name_key, reference ON parties "
    "WHEN OLD.name_key IS NOT NEW.name_key OR OLD.reference IS NOT NEW.reference BEGIN "
    f"DELETE FROM party_search WHERE rowid = OLD.id; {_PARTY_ROW} END",
    "CREATE TRIGGER IF NOT EXISTS party_search_delete AFTER DELETE ON parties BEGIN "
    "DELETE FROM party_search WHERE rowid = OLD.id; END",
    "CREATE TRIGGER IF NOT EXISTS mechanism_search_insert AFTER INSERT ON contact_mechanisms "
    f"WHEN NEW.kind IN ({_KINDS}) BEGIN "
    "INSERT OR REPLACE INTO mechanism_search (rowid, normalized) VALUES (NEW.id, NEW.normalized); END",
    "CREATE TRIGGER IF NOT EXISTS mechanism_search_update AFTER UPDATE OF kind, normalized ON contact_mechanisms "
    "WHEN OLD.kind IS NOT NEW.kind OR OLD.normalized IS NOT NEW.normalized BEGIN "
    "DELETE FROM mechanism_search WHERE rowid = OLD.id; "
    "INSERT OR REPLACE INTO mechanism_search (rowid, normalized) SELECT NEW.id, NEW.normalized "
    f"WHERE NEW.kind IN ({_KINDS}); END",
    "CREATE TRIGGER IF NOT EXISTS mechanism_search_delete AFTER DELETE ON contact_mechanisms "
    f"WHEN OLD.kind IN ({_KINDS}) BEGIN DELETE FROM mechanism_search WHERE rowid = OLD.id; END",
)
SQLITE_BACKFILL = (
    "INSERT INTO party_search (rowid, name_key, reference) SELECT id, name_key, reference FROM parties",
    f"INSERT INTO mechanism_search (rowid, normalized) SELECT id, normalized FROM contact_mechanisms "
    f"WHERE kind IN ({_KINDS})",
)
TRIGGERS = ("party_search_insert", "party_search_update", "party_search_delete",
            "mechanism_search_insert", "mechanism_search_update", "mechanism_search_delete")


def _sqlite_has_trigram(bind) -> bool:
    if sqlite3.sqlite_version_info < (3, 34, 0):
        return False
    return "ENABLE_FTS5" in {row[0] for row in bind.exec_driver_sql("PRAGMA compile_options")}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index("ix_parties_search_trgm", "parties", ["name_key", "reference"], postgresql_using="gin",
                        postgresql_ops={"name_key": "gin_trgm_ops", "reference": "gin_trgm_ops"})
        op.create_index("ix_contact_mechanisms_search_trgm", "contact_mechanisms", ["normalized"],
                        postgresql_using="gin", postgresql_ops={"normalized": "gin_trgm_ops"})
    elif bind.dialect.name == "sqlite":
        if not _sqlite_has_trigram(bind):
            log.warning("SQLite %s has no FTS5 trigram tokenizer (needs 3.34): party search stays "
                        "name prefix, exact reference and exact email", sqlite3.sqlite_version)
            return
        for statement in SQLITE_DDL + SQLITE_BACKFILL:
            bind.exec_driver_sql(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_index("ix_contact_mechanisms_search_trgm", table_name="contact_mechanisms")
        op.drop_index("ix_parties_search_trgm", table_name="parties")
    elif bind.dialect.name == "sqlite":
        for name in TRIGGERS:
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        bind.exec_driver_sql("DROP TABLE IF EXISTS mechanism_search")
        bind.exec_driver_sql("DROP TABLE IF EXISTS party_search")
