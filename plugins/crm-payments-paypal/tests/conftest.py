"""Shared fixtures: a fake PayPal (crm_payments_paypal.testing) and the gateway's settings for it."""

from __future__ import annotations

import pytest
from crm_payments_paypal.client import clear_token_cache
from crm_payments_paypal.gateway import PayPalGateway
from crm_payments_paypal.testing import TEST_CLIENT_ID, TEST_CLIENT_SECRET, FakePayPal
from crm_payments_paypal.webhooks import clear_certificate_cache


@pytest.fixture(autouse=True)
def _fresh_caches():
    clear_token_cache()
    clear_certificate_cache()
    yield
    clear_token_cache()
    clear_certificate_cache()


@pytest.fixture
def fake():
    with FakePayPal(TEST_CLIENT_ID, TEST_CLIENT_SECRET) as server:
        yield server


@pytest.fixture
def gateway():
    return PayPalGateway()


@pytest.fixture
def settings(fake):
    """Settings pointing at the fake; keyword arguments override (None drops a key)."""
    def make(**over):
        base = fake.settings(brand_name="Acme Equipment", timeout=2.0)
        base.update(over)
        return {k: v for k, v in base.items() if v is not None}
    return make
