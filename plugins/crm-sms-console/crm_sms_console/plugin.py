"""The plugin object (entry point ``crmcore.plugins: sms-console``); its driver is ``console``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm_sms_console import NAME, __version__
from crm_sms_console.schemas import ConsoleSettings
from crmcore import PluginInfo, hookimpl

if TYPE_CHECKING:
    from crmcore import Context

PLUGIN = PluginInfo(
    title="SMS: console (development)",
    version=__version__,
    core_api=">=1.2,<2",
    description="Writes every SMS to the log (crm.sms.console) instead of sending it.",
    settings_schema=ConsoleSettings,
)


@hookimpl
def crm_seed_demo(ctx: Context) -> list[str]:
    """``crm demo``: a sender name, and delivered at once, so SMS in the demo look real (they
    go to the log)."""
    from crmcore.plugins.service import save_settings

    save_settings(ctx, NAME, {"sender": "DemoEquip", "report_delivered": True})
    return ["SMS from 'DemoEquip' are written to the log (logger crm.sms.console)"]
