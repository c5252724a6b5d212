"""A generic HTTP SMS gateway for crmcore: the many regional providers, configured by settings."""

__version__ = "0.1.0"

#: the plugin's id (entry point in ``crmcore.plugins``)
NAME = "sms-http"
#: the driver's name (entry point in ``crmcore.sms_providers``; the callback URL's provider part)
DRIVER = "http"
