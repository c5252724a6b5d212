"""crmcore invoicing: invoices and credit notes as core records, their lines, and payments
recorded by staff or taken through any enabled payment gateway (docs/payments.md)."""

__version__ = "0.1.0"

#: the plugin's id: its entry-point name in ``crmcore.plugins``
NAME = "invoicing"
