"""Fixtures of the quoting tests: the catalog and quoting enabled in ``acme`` (and, for
isolation, in ``globex``); the parties, deals and products to quote are the public test helpers
of :mod:`crm_quoting.testing`. The SMTP server (``smtp_server``) and the browser come from
crmcore.testing."""

from __future__ import annotations

import pytest
from crm_quoting import NAME
from crm_quoting.testing import line, new_contact, new_deal, new_party, new_product, statements

from crmcore.plugins.service import enable_plugin

__all__ = ["line", "new_contact", "new_deal", "new_party", "new_product", "statements"]


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
