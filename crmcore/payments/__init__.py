"""Payment gateways: the interface a gateway plugin implements (:mod:`crmcore.payments.gateways`).

The core holds no invoices or payments; a plugin that takes money (crm-invoicing) owns those and
drives the gateways enabled for the business through this interface.
"""
