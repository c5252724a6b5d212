"""Authorize.Net payments for crmcore: the Accept Hosted payment form, signed webhooks, refunds."""

__version__ = "0.1.0"

#: the plugin's id (entry point in ``crmcore.plugins``; its settings configure the gateway)
NAME = "payments-authorizenet"
#: the gateway's driver name (entry point in ``crmcore.payment_gateways``; the webhook URL's part)
DRIVER = "authorizenet"
