"""Fixtures of the quoting tests: the catalog and quoting enabled in ``acme`` (and, for
isolation, in ``globex``), parties, deals and products to quote. The SMTP server
(``smtp_server``) and the browser come from crmcore.testing."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from crm_catalog import service as catalog
from crm_quoting import NAME

from crmcore.parties.contacts import create_contact
from crmcore.parties.service import create_party
from crmcore.plugins.service import enable_plugin
from crmcore.records import service as records

_numbers = itertools.count(1)


@pytest.fixture
def q(ctx):
    """Catalog and quoting enabled in ``acme`` (EUR); the owner's context."""
    enable_plugin(ctx, "catalog")
    enable_plugin(ctx, NAME)
    return ctx


@pytest.fixture
def other_q(other_ctx):
    enable_plugin(other_ctx, "catalog")
    enable_plugin(other_ctx, NAME)
    return other_ctx


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
    data: dict[str, Any] = {"description": "Service hour", "quantity": "1", "unit_price": "100.00"}
    data.update(values)
    return data
