"""The hand-written revision builds what ``models.py`` describes (autogenerate finds no
difference), on SQLite and on a fresh PostgreSQL database, after quoting's (a dependency)."""

from __future__ import annotations

from crm_orders.models import OrdersBase
from sqlalchemy import create_engine, inspect

from crmcore.testing import check_migrations_match_models


def test_migration_builds_what_the_models_describe(scratch_database_url):
    engine = create_engine(scratch_database_url)
    try:
        results = check_migrations_match_models(engine, OrdersBase.metadata)
        assert ("orders", None, "orders_0001") in results
        order = [name for name, *_ in results]
        assert order.index("catalog") < order.index("quoting") < order.index("orders")
        indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("orders_orders")}
        assert all(columns[0] == "business_id" for name, columns in indexes.items() if name.startswith("ix_"))
        uniques = {tuple(u["column_names"]) for u in inspect(engine).get_unique_constraints("orders_orders")}
        assert ("business_id", "quote_id") in uniques
    finally:
        engine.dispose()
