"""Fixtures of the invoicing tests: the plugin enabled in ``acme`` with a party (billing address,
email) and a deal; a test payment gateway backed by a local HTTP provider (testing.py); a real
browser."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from crm_invoicing import NAME

from crmcore.parties.service import create_party
from crmcore.plugins.service import enable_plugin
from crmcore.records import service as records


@pytest.fixture
def crm_config(crm_config):
    """The installation has a public address (payment links, return URLs, webhooks)."""
    return dataclasses.replace(crm_config, public_url="https://crm.example.test")


@pytest.fixture
def inv(ctx):
    """The plugin enabled in ``acme`` (rates 0, 9, 21; default 21; 14 days)."""
    enable_plugin(ctx, NAME)
    return ctx


@pytest.fixture
def party(inv):
    return create_party(inv, {
        "kind": "organisation", "name": "Initech <BV>", "currency": "EUR",
        "mechanisms": [{"kind": "email", "value": "billing@initech.example"}],
        "addresses": [{"purpose": "billing", "line1": "Keizersgracht 1", "postal_code": "1015 CJ",
                       "city": "Amsterdam", "country": "NL", "is_default": True}],
    })


@pytest.fixture
def deal(inv, party):
    return records.create_record(inv, "deal", {"title": "Printers for Initech", "party_id": party.id,
                                               "amount": "1000.00", "currency": "EUR"})


def line(**changes: Any) -> dict[str, Any]:
    values = {"description": "Consulting", "quantity": "2", "unit_price": "50.00", "tax_rate": "21"}
    values.update(changes)
    return values


@pytest.fixture
def gateway(inv) -> Iterator[Any]:
    """The test gateway ``testpay`` enabled in ``acme``, talking to a fresh local provider."""
    from .testgateway import installed  # noqa: TID252

    with installed(inv) as fake:
        yield fake
