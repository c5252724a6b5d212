"""Fixtures of the orders tests: the catalog, quoting and orders enabled in ``acme`` (and, for
isolation, in ``globex``); invoicing enabled on demand; parties, deals, products and accepted
quotes to order from. The real plugins throughout (crm-catalog, crm-quoting, crm-invoicing)."""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from crm_catalog import service as catalog
from crm_orders import NAME
from crm_quoting import service as quoting
from sqlalchemy import event

from crmcore.parties.contacts import create_contact
from crmcore.parties.service import create_party
from crmcore.plugins.service import enable_plugin
from crmcore.records import service as records

_numbers = itertools.count(1)


def _enable_all(ctx: Any) -> Any:
    enable_plugin(ctx, "catalog")
    enable_plugin(ctx, "quoting")
    enable_plugin(ctx, NAME)
    return ctx


@pytest.fixture
def o(ctx):
    """Catalog, quoting and orders enabled in ``acme`` (EUR); the owner's context."""
    return _enable_all(ctx)


@pytest.fixture
def other_o(other_ctx):
    return _enable_all(other_ctx)


@pytest.fixture
def inv(o):
    """Invoicing enabled too (rates 0, 9, 21). Quoting's ``invoice_on_accept`` stays on (its
    default): with orders' ``order_on_accept`` on, an accepted quote drafts no invoice of its own
    (the order is what gets invoiced)."""
    enable_plugin(o, "invoicing")
    return o


def new_party(ctx: Any, name: str | None = None, **values: Any) -> Any:
    data = {"kind": "organisation", "name": name or f"Customer {next(_numbers)}"}
    data.update(values)
    return create_party(ctx, data)


def new_contact(ctx: Any, party: Any, name: str = "Ann Buyer", email: str | None = "ann@buyer.example") -> Any:
    first, _, last = name.partition(" ")
    data: dict[str, Any] = {"party_id": party.id, "first_name": first, "last_name": last or None}
    if email:
        data["mechanisms"] = [{"kind": "email", "value": email}]
    return create_contact(ctx, data)


def new_deal(ctx: Any, party: Any, title: str = "New tractor", **values: Any) -> Any:
    return records.create_record(ctx, "deal", {"title": title, "party_id": party.id, **values})


def new_product(ctx: Any, **values: Any) -> Any:
    n = next(_numbers)
    data = {"sku": f"SKU-{n}", "name": f"Product {n}", "unit_price": Decimal("10.00"), "tax_rate": Decimal(21)}
    data.update(values)
    return catalog.create_product(ctx, data)


def line(**values: Any) -> dict[str, Any]:
    """A free-text line (``values`` override)."""
    data: dict[str, Any] = {"description": "Service hour", "quantity": "1", "unit_price": "100.00", "tax_rate": "21"}
    data.update(values)
    return data


def accepted_quote(ctx: Any, party: Any, lines: list[dict[str, Any]] | None = None, **data: Any) -> Any:
    """A quote for ``party`` with ``lines``, sent and accepted; returns its record."""
    record = quoting.create_quote(ctx, {"party_id": party.id, "lines": lines or [line()], **data})
    quoting.mark_sent(ctx, record.id)
    quoting.accept_quote(ctx, record.id)
    return record


@contextmanager
def statements(ctx: Any):
    """Every SQL statement the engine runs inside the block."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)

    engine = ctx.crm.db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)
