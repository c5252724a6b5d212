"""The demo's payer instructions (hook ``crm_seed_demo``): valid settings, shown by the gateway."""

from __future__ import annotations

from crm_payments_manual import NAME
from crm_payments_manual.plugin import DEMO_SETTINGS, crm_seed_demo

from crmcore.payments.gateways import enabled_gateways
from crmcore.plugins.service import enable_plugin, get_settings


def test_seed_demo_stores_instructions_the_payment_page_shows(ctx, other_ctx):
    enable_plugin(ctx, NAME)
    enable_plugin(other_ctx, NAME)
    assert crm_seed_demo(ctx) == ["bank transfer and cash instructions for the payment page"]
    stored = get_settings(ctx, NAME)
    assert stored["iban"] == DEMO_SETTINGS["iban"] and stored["bic"] == "ABNANL2A"
    found = enabled_gateways(ctx)["manual"]
    text = found.gateway.payer_instructions(found.settings(ctx))
    assert "Account holder: Demo Equipment Ltd" in text and "IBAN: NL91 ABNA 0417 1643 00" in text
    assert "Cash\nCash is welcome at our yard" in text
    assert get_settings(other_ctx, NAME)["iban"] is None  # another business is untouched
