"""The plugin in an installation: discovered with its driver, offered only where enabled, its
settings validated naming the field, secrets encrypted at rest and never shown."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from crm_payments_authorizenet import DRIVER, NAME
from crm_payments_authorizenet.gateway import AuthorizeNetGateway
from sqlalchemy import text

from crmcore import ValidationFailed
from crmcore.payments.gateways import PAYMENT_GATEWAYS_GROUP, PaymentRequest, enabled_gateways, get_gateway
from crmcore.plugins.drivers import load_group
from crmcore.plugins.service import disable_plugin, enable_plugin, get_settings, save_settings

LOGIN = "5KP3u95bQpv"
TRANSACTION_KEY = "346HZ32z3fP4hTG2"
SIGNATURE_KEY = "9F3A1C0B7E2D4F6A" * 8
SETTINGS = {"api_login_id": LOGIN, "transaction_key": TRANSACTION_KEY, "signature_key": SIGNATURE_KEY}


def test_discovered_with_its_driver(crm):
    assert NAME in crm.registry.plugins and NAME not in crm.registry.errors
    driver = load_group(PAYMENT_GATEWAYS_GROUP)[DRIVER]
    assert driver.plugin == NAME and driver.obj is AuthorizeNetGateway


def test_offered_only_where_enabled(ctx, other_ctx):
    assert DRIVER not in enabled_gateways(ctx)
    enable_plugin(ctx, NAME, SETTINGS)
    found = enabled_gateways(ctx)[DRIVER]
    assert isinstance(found.gateway, AuthorizeNetGateway) and found.plugin == NAME
    assert found.settings(ctx)["transaction_key"] == TRANSACTION_KEY
    assert get_gateway(other_ctx, DRIVER) is None
    disable_plugin(ctx, NAME)
    assert get_gateway(ctx, DRIVER) is None
    enable_plugin(ctx, NAME)
    assert get_gateway(ctx, DRIVER).settings(ctx)["signature_key"] == SIGNATURE_KEY  # kept while disabled


def test_the_stored_settings_drive_the_gateway(ctx, fake):
    enable_plugin(ctx, NAME, fake.settings())
    enabled = get_gateway(ctx, DRIVER)
    request = PaymentRequest(attempt_id=5, idempotency_key="k5", amount=Decimal("12.00"), currency="USD",
                             reference="INV-5", description="", return_url="https://crm.example.com/r",
                             cancel_url="https://crm.example.com/c")
    session = enabled.gateway.create_session(request, enabled.settings(ctx))
    assert session.provider_reference == "A5" and fake.sessions


def test_secrets_are_encrypted_and_masked(ctx, crm, caplog):
    caplog.set_level(logging.DEBUG)
    enable_plugin(ctx, NAME, SETTINGS)
    with crm.db.engine.connect() as conn:
        raw = str(conn.execute(text("select settings from plugin_enablements where plugin = :p"), {"p": NAME}).scalar())
    assert TRANSACTION_KEY not in raw and SIGNATURE_KEY not in raw and raw.count("$enc") == 2
    assert LOGIN in raw
    shown = get_settings(ctx, NAME)
    assert TRANSACTION_KEY not in str(shown) and SIGNATURE_KEY not in str(shown)
    assert shown["api_login_id"] == LOGIN and shown["environment"] == "sandbox"
    assert ctx.plugin_settings(NAME)["transaction_key"] == TRANSACTION_KEY
    assert TRANSACTION_KEY not in caplog.text and SIGNATURE_KEY not in caplog.text


def test_saving_again_keeps_the_stored_secrets(ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    save_settings(ctx, NAME, {"api_login_id": LOGIN, "environment": "production", "transaction_key": "",
                              "signature_key": "••••••••"})
    stored = ctx.plugin_settings(NAME)
    assert stored["transaction_key"] == TRANSACTION_KEY and stored["signature_key"] == SIGNATURE_KEY
    assert stored["environment"] == "production"


def test_secrets_may_come_from_the_environment(ctx, monkeypatch):
    monkeypatch.setenv("ACME_ANET_KEY", TRANSACTION_KEY)
    enable_plugin(ctx, NAME, SETTINGS | {"transaction_key": "$env:ACME_ANET_KEY"})
    assert ctx.plugin_settings(NAME)["transaction_key"] == TRANSACTION_KEY


@pytest.mark.parametrize(("settings", "field", "message"), [
    ({"transaction_key": TRANSACTION_KEY, "signature_key": SIGNATURE_KEY}, "api_login_id", "required"),
    (SETTINGS | {"api_login_id": "has space"}, "api_login_id", "API Login ID"),
    (SETTINGS | {"api_login_id": "x" * 26}, "api_login_id", "1 to 25"),
    ({"api_login_id": LOGIN, "signature_key": SIGNATURE_KEY}, "transaction_key", "required"),
    ({"api_login_id": LOGIN, "transaction_key": TRANSACTION_KEY}, "signature_key", "required"),
    (SETTINGS | {"environment": "live"}, "environment", "sandbox or production"),
    (SETTINGS | {"api_url": "ftp://apitest.authorize.net/xml"}, "api_url", "http"),
    (SETTINGS | {"api_url": "https://user:pw@apitest.authorize.net/"}, "api_url", "credentials"),
    (SETTINGS | {"hosted_url": "test.authorize.net/payment/payment"}, "hosted_url", "http"),
    (SETTINGS | {"hosted_url": "https://test.authorize.net/payment?x=1"}, "hosted_url", "query"),
    (SETTINGS | {"reference_prefix": "1A"}, "reference_prefix", "starting with a letter"),
    (SETTINGS | {"reference_prefix": "ABCDEFG"}, "reference_prefix", "1 to 6"),
    (SETTINGS | {"timeout": 60}, "timeout", "less than or equal"),
    (SETTINGS | {"currency": "USD"}, "currency", "Unknown"),
])
def test_invalid_settings_are_refused_naming_the_field(ctx, settings, field, message):
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, settings)
    assert field in exc.value.errors and message in str(exc.value.errors[field])
    assert TRANSACTION_KEY not in str(exc.value.errors) and SIGNATURE_KEY not in str(exc.value.errors)
    assert not ctx.is_enabled(NAME)


@pytest.mark.parametrize(("field", "value"), [
    ("transaction_key", "346HZ32z3fP4hTG"),            # 15 characters
    ("transaction_key", "346HZ32z3fP4hTG2x"),          # 17
    ("transaction_key", "346HZ32z3fP4hT-2"),
    ("signature_key", SIGNATURE_KEY[:-1]),
    ("signature_key", SIGNATURE_KEY[:-1] + "G"),
    ("signature_key", SIGNATURE_KEY + "00"),
])
def test_malformed_secrets_are_refused_without_echoing_them(ctx, field, value):
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, SETTINGS | {field: value})
    assert list(exc.value.errors) == [field]
    assert value not in str(exc.value.errors) and value not in str(exc.value)


def test_values_are_trimmed(ctx):
    enable_plugin(ctx, NAME, SETTINGS | {"api_login_id": f"  {LOGIN} ", "signature_key": f"{SIGNATURE_KEY}\n",
                                         "api_url": " "})
    stored = ctx.plugin_settings(NAME)
    assert stored["api_login_id"] == LOGIN and stored["signature_key"] == SIGNATURE_KEY
    assert stored.get("api_url") is None
