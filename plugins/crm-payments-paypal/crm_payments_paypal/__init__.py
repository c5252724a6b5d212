"""PayPal for crmcore: Orders v2 checkout captured on the payer's return, refunds, and webhooks
verified with PayPal's certificate (no SDK)."""

__version__ = "0.1.0"

#: the plugin's id (entry point in ``crmcore.plugins``)
NAME = "payments-paypal"
#: the driver's name (entry point in ``crmcore.payment_gateways``; the webhook URL's provider part)
DRIVER = "paypal"
