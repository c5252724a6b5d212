"""crmcore quoting: quotes (commercial proposals) on a deal or for a party, priced from the
catalog by crmcore.money's rule, sent as a PDF, accepted or refused."""

__version__ = "0.1.0"

#: the plugin's id: its entry-point name in ``crmcore.plugins``
NAME = "quoting"
