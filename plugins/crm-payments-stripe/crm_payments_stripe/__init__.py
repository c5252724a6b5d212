"""Stripe payments for crmcore: Checkout Sessions, signed webhooks and refunds."""

__version__ = "0.1.0"

#: the plugin's id (entry point in ``crmcore.plugins``; its settings configure the gateway)
NAME = "payments-stripe"
#: the gateway's driver name (entry point in ``crmcore.payment_gateways``; the webhook URL's part)
DRIVER = "stripe"
