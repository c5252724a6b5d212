"""The ``email-smtp`` plugin: its settings and the ``smtp`` transport it owns.

Enabled per business, with that business's SMTP server; the transport (entry point
``crmcore.email_transports: smtp``) is usable only where the plugin is enabled. The core's
messaging sends through it (``crmcore.messaging.delivery``).
"""

from __future__ import annotations

from crm_email_smtp import __version__
from crm_email_smtp.schemas import SmtpSettings
from crmcore import PluginInfo

PLUGIN = PluginInfo(
    title="Email over SMTP",
    version=__version__,
    core_api=">=1.0,<2",
    description="Sends the business's emails through its SMTP server (TLS or STARTTLS, login).",
    settings_schema=SmtpSettings,
)
