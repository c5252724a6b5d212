"""The plugin object crmcore loads (entry point ``crmcore.plugins: payments-manual``). It owns the
``manual`` gateway (``crmcore.payment_gateways``); its settings are the payer instructions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm_payments_manual import NAME, __version__
from crm_payments_manual.schemas import ManualSettings
from crmcore import PluginInfo, hookimpl

if TYPE_CHECKING:
    from crmcore import Context

#: what ``crm demo`` tells payers (the IBAN is the standard Dutch example, valid but fictitious)
DEMO_SETTINGS = {
    "title": "Bank transfer",
    "account_holder": "Demo Equipment Ltd",
    "iban": "NL91 ABNA 0417 1643 00",
    "bic": "ABNANL2A",
    "bank_transfer_note": "Please quote the invoice number with your payment.",
    "cash_instructions": "Cash is welcome at our yard, Monday to Friday 8:00-17:00.",
}

PLUGIN = PluginInfo(
    title="Manual payments",
    version=__version__,
    core_api=">=1.2,<2",
    description="Bank transfer, cheque and cash: instructions on the payment page; staff record the payments.",
    settings_schema=ManualSettings,
)


@hookimpl
def crm_seed_demo(ctx: Context) -> list[str]:
    """``crm demo``: the demo dealer's bank transfer and cash instructions, shown on the payment
    page of every issued invoice."""
    from crmcore.plugins.service import save_settings

    save_settings(ctx, NAME, DEMO_SETTINGS)
    return ["bank transfer and cash instructions for the payment page"]
