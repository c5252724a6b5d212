"""The plugin object (entry point ``crmcore.plugins: sms-twilio``); its driver is ``twilio``."""

from __future__ import annotations

from crm_sms_twilio import __version__
from crm_sms_twilio.schemas import TwilioSettings
from crmcore import PluginInfo

PLUGIN = PluginInfo(
    title="SMS: Twilio",
    version=__version__,
    core_api=">=1.0,<2",
    description="Sends SMS through Twilio's Messages API; delivery reports through signed status callbacks.",
    settings_schema=TwilioSettings,
)
