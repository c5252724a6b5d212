"""The plugin object crmcore loads (entry point ``crmcore.plugins: payments-manual``). It owns the
``manual`` gateway (``crmcore.payment_gateways``); its settings are the payer instructions."""

from __future__ import annotations

from crm_payments_manual import __version__
from crm_payments_manual.schemas import ManualSettings
from crmcore import PluginInfo

PLUGIN = PluginInfo(
    title="Manual payments",
    version=__version__,
    core_api=">=1.1,<2",
    description="Bank transfer, cheque and cash: instructions on the payment page; staff record the payments.",
    settings_schema=ManualSettings,
)
