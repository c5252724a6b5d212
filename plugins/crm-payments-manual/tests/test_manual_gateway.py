"""The manual gateway: discovered and owned by its plugin, usable only where that is enabled,
settings validated (IBAN check digits, BIC), instructions built from the settings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from crm_payments_manual import NAME
from crm_payments_manual.gateway import ManualGateway
from crm_payments_manual.schemas import iban_ok
from hypothesis import given
from hypothesis import strategies as st

from crmcore.errors import ValidationFailed
from crmcore.payments.gateways import (
    PAYMENT_GATEWAYS_GROUP,
    InvalidWebhook,
    PaymentRequest,
    PermanentFailure,
    WebhookRequest,
    enabled_gateways,
)
from crmcore.plugins.drivers import load_group
from crmcore.plugins.service import disable_plugin, enable_plugin, get_settings

SETTINGS = {"account_holder": "Acme <Equipment> BV", "iban": "nl91abna0417164300", "bic": "abna nl 2a",
            "cheque_payable_to": "Acme BV", "cheque_address": "Postbus 1\n1000 AA Amsterdam"}


def test_the_gateway_is_discovered_and_owned_by_the_plugin(crm):
    driver = load_group(PAYMENT_GATEWAYS_GROUP)["manual"]
    assert driver.plugin == NAME and driver.obj is ManualGateway
    assert NAME in crm.registry.plugins


def test_usable_only_where_enabled(ctx, other_ctx):
    assert "manual" not in enabled_gateways(ctx)
    enable_plugin(ctx, NAME, SETTINGS)
    found = enabled_gateways(ctx)["manual"]
    assert found.gateway.offline and "manual" not in enabled_gateways(other_ctx)
    settings = found.settings(ctx)
    assert (settings["iban"], settings["bic"]) == ("NL91 ABNA 0417 1643 00", "ABNANL2A")
    disable_plugin(ctx, NAME)
    assert "manual" not in enabled_gateways(ctx)
    enable_plugin(ctx, NAME)
    assert get_settings(ctx, NAME)["iban"] == "NL91 ABNA 0417 1643 00"  # kept while disabled


@pytest.mark.parametrize("field, value, message", [
    ("iban", "NL91ABNA0417164301", "not a valid IBAN"),
    ("iban", "NL91", "not a valid IBAN"),
    ("iban", "91NLABNA0417164300", "not a valid IBAN"),
    ("bic", "ABNA", "8 or 11"),
    ("account_holder", "x" * 201, "at most 200"),
    ("cash_instructions", "a\x00b", "NUL"),
    ("colour", "red", "Unknown"),
])
def test_bad_settings_are_refused_naming_the_field(ctx, field, value, message):
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, {**SETTINGS, field: value})
    assert message in " ".join(exc.value.errors[field])
    assert "manual" not in enabled_gateways(ctx)


def test_the_instructions_name_each_configured_method():
    gateway = ManualGateway()
    text = gateway.payer_instructions({"account_holder": "Acme BV", "iban": "NL91 ABNA 0417 1643 00",
                                       "cash_instructions": "At the front desk, 9-17h"})
    assert text == ("Bank transfer\nAccount holder: Acme BV\nIBAN: NL91 ABNA 0417 1643 00\n\n"
                    "Cash\nAt the front desk, 9-17h")
    assert gateway.payer_instructions({}) is None
    session = gateway.create_session(PaymentRequest(
        attempt_id=7, idempotency_key="k", amount=Decimal("10.00"), currency="EUR", reference="INV26-0007",
        description="d", return_url="https://x/r", cancel_url="https://x/c"), {"iban": "NL91 ABNA 0417 1643 00"})
    assert session.provider_reference == "manual-7" and session.redirect_url is None
    assert session.instructions.endswith("Please mention INV26-0007.")


def test_it_takes_no_webhooks_and_refunds_nothing():
    gateway = ManualGateway()
    with pytest.raises(InvalidWebhook):
        gateway.parse_webhook(WebhookRequest("POST", "u", {}, {}, b"{}"), {})
    with pytest.raises(PermanentFailure, match="refund by hand"):
        gateway.refund("p", Decimal("1"), "EUR", "k", {})


@given(st.from_regex(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{12,20}", fullmatch=True))
def test_exactly_one_pair_of_check_digits_passes(iban):
    """IBAN check digits are 02 to 98: 97 values, one per remainder, so exactly one passes."""
    body = iban[:2] + "00" + iban[4:]
    passing = [d for d in range(2, 99) if iban_ok(f"{body[:2]}{d:02d}{body[4:]}")]
    assert len(passing) == 1
