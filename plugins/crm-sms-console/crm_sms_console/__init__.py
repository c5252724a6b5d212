"""A development SMS provider for crmcore: writes each SMS to the log and an in-memory list."""

__version__ = "0.1.0"

#: the plugin's id (entry point in ``crmcore.plugins``)
NAME = "sms-console"
#: the driver's name (entry point in ``crmcore.sms_providers``)
DRIVER = "console"
