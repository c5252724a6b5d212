"""crmcore catalog: products and services, price lists, per-customer pricing, customer part
numbers, and the price & availability inquiry other plugins (quoting) build on."""

__version__ = "0.1.0"

#: the plugin's id: its entry-point name in ``crmcore.plugins``
NAME = "catalog"
