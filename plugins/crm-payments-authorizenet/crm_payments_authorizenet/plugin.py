"""The plugin object (entry point ``crmcore.plugins: payments-authorizenet``); its driver is
``authorizenet``. It has no tables and no hooks: the plugin that takes payments drives the gateway."""

from __future__ import annotations

from crm_payments_authorizenet import __version__
from crm_payments_authorizenet.schemas import AuthorizeNetSettings
from crmcore import PluginInfo

PLUGIN = PluginInfo(
    title="Payments: Authorize.Net",
    version=__version__,
    core_api=">=1.1,<2",
    description="Takes card payments on Authorize.Net's hosted payment form (Accept Hosted); "
                "signed webhooks; refunds.",
    settings_schema=AuthorizeNetSettings,
)
