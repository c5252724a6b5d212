"""The plugin as installed: discovered, its gateway usable only where it is enabled, its settings
validated (naming the field) and its secret encrypted, masked and never echoed."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from crm_payments_paypal import DRIVER, NAME
from crm_payments_paypal.gateway import PayPalGateway, amount_value
from crm_payments_paypal.testing import CURRENCY_DECIMALS, TEST_CLIENT_ID, TEST_CLIENT_SECRET, TEST_WEBHOOK_ID
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from crmcore import ValidationFailed
from crmcore.money import round_money
from crmcore.payments.gateways import (
    PAYMENT_GATEWAYS_GROUP,
    EventKind,
    PaymentRequest,
    ReturnRequest,
    enabled_gateways,
)
from crmcore.plugins.drivers import load_group
from crmcore.plugins.service import disable_plugin, enable_plugin, get_settings, save_settings

SETTINGS = {"client_id": TEST_CLIENT_ID, "client_secret": TEST_CLIENT_SECRET, "webhook_id": TEST_WEBHOOK_ID}


def test_the_driver_belongs_to_the_plugin():
    driver = load_group(PAYMENT_GATEWAYS_GROUP)[DRIVER]
    assert driver.obj is PayPalGateway and driver.plugin == NAME
    assert PayPalGateway.name == DRIVER and not PayPalGateway.offline


def test_enabled_per_business(ctx, other_ctx):
    assert DRIVER not in enabled_gateways(ctx)
    enable_plugin(ctx, NAME, SETTINGS)
    found = enabled_gateways(ctx)[DRIVER]
    assert isinstance(found.gateway, PayPalGateway) and found.plugin == NAME
    assert found.settings(ctx)["client_secret"] == TEST_CLIENT_SECRET
    assert DRIVER not in enabled_gateways(other_ctx)
    disable_plugin(ctx, NAME)
    assert DRIVER not in enabled_gateways(ctx)
    enable_plugin(ctx, NAME)
    assert enabled_gateways(ctx)[DRIVER].settings(ctx)["webhook_id"] == TEST_WEBHOOK_ID  # kept while disabled


def test_stored_settings_drive_the_gateway(ctx, fake):
    """Saved by an admin (secret encrypted), read back decrypted: a payment goes through."""
    enable_plugin(ctx, NAME, fake.settings(timeout=2, brand_name="Acme"))
    found = enabled_gateways(ctx)[DRIVER]
    session = found.gateway.create_session(PaymentRequest(
        attempt_id=3, idempotency_key="k3", amount=Decimal("75.00"), currency="EUR", reference="INV-3",
        description="Invoice INV-3", return_url="https://crm.example.com/r", cancel_url="https://crm.example.com/c"),
        found.settings(ctx))
    fake.approve(session.provider_reference)
    [event] = found.gateway.handle_return(ReturnRequest(session.provider_reference, {}, {}), found.settings(ctx))
    assert event.kind == EventKind.SUCCEEDED and event.amount == Decimal("75.00")


def test_the_defaults(ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    stored = ctx.plugin_settings(NAME)
    assert stored["api_base"] == "https://api-m.paypal.com" and stored["timeout"] == 10.0
    assert stored.get("brand_name") is None


def test_the_secret_is_encrypted_and_masked(ctx, crm, caplog):
    caplog.set_level(logging.DEBUG)
    enable_plugin(ctx, NAME, SETTINGS)
    with crm.db.engine.connect() as conn:
        raw = str(conn.execute(text("select settings from plugin_enablements where plugin = :p"), {"p": NAME}).scalar())
    assert TEST_CLIENT_SECRET not in raw and "$enc" in raw and TEST_CLIENT_ID in raw
    shown = get_settings(ctx, NAME)
    assert TEST_CLIENT_SECRET not in str(shown) and shown["client_id"] == TEST_CLIENT_ID
    assert ctx.plugin_settings(NAME)["client_secret"] == TEST_CLIENT_SECRET
    assert TEST_CLIENT_SECRET not in caplog.text


def test_saving_again_keeps_the_stored_secret(ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    save_settings(ctx, NAME, {**SETTINGS, "client_secret": "", "api_base": "https://api-m.sandbox.paypal.com/"})
    assert ctx.plugin_settings(NAME)["client_secret"] == TEST_CLIENT_SECRET
    assert ctx.plugin_settings(NAME)["api_base"] == "https://api-m.sandbox.paypal.com"


def test_the_secret_may_come_from_the_environment(ctx, monkeypatch):
    monkeypatch.setenv("ACME_PAYPAL_SECRET", TEST_CLIENT_SECRET)
    enable_plugin(ctx, NAME, {**SETTINGS, "client_secret": "$env:ACME_PAYPAL_SECRET"})
    assert ctx.plugin_settings(NAME)["client_secret"] == TEST_CLIENT_SECRET


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"client_id": None}, "client_id", "required"),
    ({"client_id": "AZ 12"}, "client_id", "not a PayPal client ID"),
    ({"client_secret": None}, "client_secret", "required"),
    ({"client_secret": "short"}, "client_secret", "not a PayPal client secret"),
    ({"webhook_id": None}, "webhook_id", "required"),
    ({"webhook_id": "8PT5-9711"}, "webhook_id", "not a PayPal webhook ID"),
    ({"api_base": "ftp://api-m.paypal.com"}, "api_base", "https address"),
    ({"api_base": "http://api-m.paypal.com"}, "api_base", "must be https"),
    ({"api_base": "https://api-m.paypal.com/v2"}, "api_base", "no credentials, path"),
    ({"api_base": "https://user:pw@api-m.paypal.com"}, "api_base", "no credentials"),
    ({"api_base": "https://api-m.paypal.com:99999"}, "api_base", "port"),
    ({"brand_name": "B" * 128}, "brand_name", "127"),
    ({"timeout": 60}, "timeout", "less than or equal"),
    ({"timeout": "soon"}, "timeout", "number"),
    ({"colour": "red"}, "colour", "Unknown"),
])
def test_invalid_settings_are_refused_naming_the_field(ctx, changes, field, message):
    values = {k: v for k, v in {**SETTINGS, **changes}.items() if v is not None}
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, values)
    assert field in exc.value.errors and message in str(exc.value.errors[field])
    assert TEST_CLIENT_SECRET not in str(exc.value.errors) and not ctx.is_enabled(NAME)


def test_a_bad_secret_is_not_echoed(ctx):
    typed = "s3cr3t with spaces"
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, {**SETTINGS, "client_secret": typed})
    assert "client_secret" in exc.value.errors and typed not in str(exc.value.errors)


@pytest.mark.parametrize("api_base", ["http://127.0.0.1:8080", "http://localhost:9000", "http://[::1]:80",
                                      "https://api-m.sandbox.paypal.com"])
def test_plain_http_only_for_a_local_server(ctx, api_base):
    enable_plugin(ctx, NAME, {**SETTINGS, "api_base": api_base})
    assert ctx.plugin_settings(NAME)["api_base"] == api_base


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999"), allow_nan=False, allow_infinity=False,
                   places=4),
       st.sampled_from(sorted(set(CURRENCY_DECIMALS) - {"HUF", "TWD"})))
def test_amount_values_have_the_currencys_decimals(amount, currency):
    value = amount_value(amount, currency)
    whole, _, decimals = value.partition(".")
    assert len(decimals) == CURRENCY_DECIMALS[currency] and whole.isdigit()
    assert Decimal(value) == round_money(amount, currency)
