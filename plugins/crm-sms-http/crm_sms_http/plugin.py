"""The plugin object (entry point ``crmcore.plugins: sms-http``); its driver is ``http``."""

from __future__ import annotations

from crm_sms_http import __version__
from crm_sms_http.schemas import HttpGatewaySettings
from crmcore import PluginInfo

PLUGIN = PluginInfo(
    title="SMS: HTTP gateway",
    version=__version__,
    core_api=">=1.0,<2",
    description="Sends SMS through any HTTP gateway described by a URL template, field names and "
                "response rules; reads its delivery reports.",
    settings_schema=HttpGatewaySettings,
)
