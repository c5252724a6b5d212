"""Fixtures of the catalog tests: the plugin enabled in ``acme`` (and, for isolation, in
``globex``), products and parties to price, a statement counter, and a real browser."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from crm_catalog import NAME, service
from sqlalchemy import event

from crmcore.parties.service import create_party
from crmcore.plugins.service import enable_plugin

_numbers = itertools.count(1)


@pytest.fixture
def cat(ctx):
    """The plugin enabled in ``acme`` (currency EUR); returns the owner's context."""
    enable_plugin(ctx, NAME)
    return ctx


@pytest.fixture
def other_cat(other_ctx):
    enable_plugin(other_ctx, NAME)
    return other_ctx


def new_product(ctx: Any, **values: Any) -> Any:
    """A product with a fresh SKU (``values`` override the defaults)."""
    n = next(_numbers)
    data = {"sku": f"SKU-{n}", "name": f"Product {n}", "unit_price": Decimal("10.00"), "tax_rate": Decimal(21)}
    data.update(values)
    return service.create_product(ctx, data)


def new_party(ctx: Any, name: str | None = None) -> Any:
    return create_party(ctx, {"kind": "organisation", "name": name or f"Customer {next(_numbers)}"})


class StatementCounter:
    """Counts the SQL statements an engine runs while active (SAVEPOINTs included)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def __enter__(self) -> StatementCounter:
        self.statements = []
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)

    @property
    def selects(self) -> int:
        return sum(1 for s in self.statements if s.lstrip().upper().startswith("SELECT"))


@pytest.fixture
def count_statements(crm):
    return lambda: StatementCounter(crm.db.engine)


# -- a real browser (Playwright driving Debian's Chromium, as tests/web does) -----------------



