"""The payment gateway contract (crmcore.payments.gateways): money in minor units, the
interface's defaults, and which gateways a business may use."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore import PluginInfo
from crmcore.payments.gateways import (
    PAYMENT_GATEWAYS_GROUP,
    InvalidWebhook,
    PaymentGateway,
    PaymentRequest,
    PaymentSession,
    PermanentFailure,
    WebhookRequest,
    enabled_gateways,
    from_minor_units,
    get_gateway,
    minor_units,
)
from crmcore.plugins.drivers import register_driver, unregister_driver


class Minimal(PaymentGateway):
    name = "minimal"
    title = "Minimal"

    def create_session(self, request: PaymentRequest, settings) -> PaymentSession:
        return PaymentSession(provider_reference=f"s-{request.attempt_id}", redirect_url="https://pay.example/x")


@pytest.mark.parametrize("amount, currency, units", [
    ("12.34", "EUR", 1234), ("12.345", "eur", 1235), ("1200", "JPY", 1200), ("1.234", "BHD", 1234), ("0.01", "USD", 1),
])
def test_minor_units(amount, currency, units):
    assert minor_units(Decimal(amount), currency) == units


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["EUR", "JPY", "BHD", "USD"]))
def test_minor_units_round_trip(units, currency):
    assert minor_units(from_minor_units(units, currency), currency) == units


def test_the_interface_defaults_refuse_what_a_gateway_did_not_implement():
    gateway = Minimal()
    request = WebhookRequest("POST", "https://crm.example/hooks", {"Content-Type": "application/json"}, {}, b"{}")
    with pytest.raises(InvalidWebhook):
        gateway.parse_webhook(request, {})
    with pytest.raises(PermanentFailure, match="refund by hand"):
        gateway.refund("pi_1", Decimal("1.00"), "EUR", "key", {})
    assert gateway.handle_return(None, {}) == []  # type: ignore[arg-type]


def test_webhook_headers_are_read_case_insensitively():
    request = WebhookRequest("POST", "u", {"Stripe-Signature": "t=1,v1=ab"}, {}, b"")
    assert request.header("stripe-signature") == "t=1,v1=ab" and request.header("missing") is None


class GatewayPlugin:
    pass


def test_a_gateway_is_offered_only_where_its_plugin_is_enabled(register_plugin, ctx, other_ctx):
    plugin = register_plugin(GatewayPlugin(), name="pay-minimal", info=PluginInfo(title="Minimal pay"), enable_for=ctx)
    register_driver(PAYMENT_GATEWAYS_GROUP, "minimal", Minimal, plugin)
    try:
        found = enabled_gateways(ctx)
        assert list(found) == ["minimal"] and isinstance(found["minimal"].gateway, Minimal)
        assert found["minimal"].plugin == plugin and found["minimal"].settings(ctx) == {}
        assert enabled_gateways(other_ctx) == {} and get_gateway(other_ctx, "minimal") is None
        assert get_gateway(ctx, "minimal").gateway is found["minimal"].gateway  # one instance per process
    finally:
        unregister_driver(PAYMENT_GATEWAYS_GROUP, "minimal")


def test_a_driver_that_is_not_a_gateway_is_ignored(register_plugin, ctx, caplog):
    plugin = register_plugin(GatewayPlugin(), name="pay-broken", info=PluginInfo(title="Broken"), enable_for=ctx)
    register_driver(PAYMENT_GATEWAYS_GROUP, "broken", object(), plugin)
    try:
        assert "broken" not in enabled_gateways(ctx)
        assert "not a PaymentGateway" in caplog.text
    finally:
        unregister_driver(PAYMENT_GATEWAYS_GROUP, "broken")
