"""The plugin object (entry point ``crmcore.plugins: payments-stripe``); its driver is ``stripe``."""

from __future__ import annotations

from crm_payments_stripe import __version__
from crm_payments_stripe.schemas import StripeSettings
from crmcore import PluginInfo

PLUGIN = PluginInfo(
    title="Payments: Stripe",
    version=__version__,
    core_api=">=1.1,<2",
    description="Takes card and other payments through Stripe Checkout; signed webhooks; refunds.",
    settings_schema=StripeSettings,
)
