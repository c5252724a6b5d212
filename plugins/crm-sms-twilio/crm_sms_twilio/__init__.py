"""Twilio SMS for crmcore: sends through the Messages REST API, reads signed status callbacks."""

__version__ = "0.1.0"

#: the plugin's id (entry point in ``crmcore.plugins``)
NAME = "sms-twilio"
#: the driver's name (entry point in ``crmcore.sms_providers``; the callback URL's provider part)
DRIVER = "twilio"
