"""Fixtures of the orders tests: the catalog, quoting and orders enabled in ``acme`` (and, for
isolation, in ``globex``); invoicing enabled on demand; parties, deals, products and accepted
quotes to order from (quoting's test helpers, :mod:`crm_quoting.testing`). The real plugins
throughout (crm-catalog, crm-quoting, crm-invoicing)."""

from __future__ import annotations

from typing import Any

import pytest
from crm_orders import NAME
from crm_quoting import testing
from crm_quoting.testing import new_contact, new_deal, new_party, new_product, statements

from crmcore.plugins.service import enable_plugin

__all__ = ["accepted_quote", "line", "new_contact", "new_deal", "new_party", "new_product", "statements"]


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


def line(**values: Any) -> dict[str, Any]:
    """A free-text line at 21% (``values`` override)."""
    return testing.line(**{"tax_rate": "21", **values})


def accepted_quote(ctx: Any, party: Any, lines: list[dict[str, Any]] | None = None, **data: Any) -> Any:
    """A quote for ``party`` with ``lines`` (one :func:`line` if none), sent and accepted."""
    return testing.accepted_quote(ctx, party, lines or [line()], **data)
