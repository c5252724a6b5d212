"""crmcore mass emailing: campaigns sent to a saved party filter, throttled, through the outbox."""

__version__ = "0.1.0"

#: the plugin's id: its entry-point name in ``crmcore.plugins``
NAME = "mass-mail"
