"""The plugin object (entry point ``crmcore.plugins: payments-paypal``); its driver is ``paypal``."""

from __future__ import annotations

from crm_payments_paypal import __version__
from crm_payments_paypal.schemas import PayPalSettings
from crmcore import PluginInfo

PLUGIN = PluginInfo(
    title="Payments: PayPal",
    version=__version__,
    core_api=">=1.1,<2",
    description="Takes payments through PayPal Checkout (Orders v2): captured when the payer returns, "
                "refunds through the API, events through signed webhooks.",
    settings_schema=PayPalSettings,
)
