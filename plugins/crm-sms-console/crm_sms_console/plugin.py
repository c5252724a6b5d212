"""The plugin object (entry point ``crmcore.plugins: sms-console``); its driver is ``console``."""

from __future__ import annotations

from crm_sms_console import __version__
from crm_sms_console.schemas import ConsoleSettings
from crmcore import PluginInfo

PLUGIN = PluginInfo(
    title="SMS: console (development)",
    version=__version__,
    core_api=">=1.0,<2",
    description="Writes every SMS to the log (crm.sms.console) instead of sending it.",
    settings_schema=ConsoleSettings,
)
