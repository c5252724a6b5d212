"""crmcore orders: sales orders and loaner orders as records, made from an accepted quote or
entered directly, priced by quoting's line rule, locked once fulfilled or invoiced, invoiced
through crm-invoicing where it is enabled."""

__version__ = "0.1.0"

#: the plugin's id: its entry-point name in ``crmcore.plugins``
NAME = "orders"
