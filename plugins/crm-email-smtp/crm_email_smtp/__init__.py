"""crmcore email over SMTP: the ``smtp`` transport of the ``email-smtp`` plugin."""

__version__ = "0.1.0"

#: the plugin's id: its entry-point name in ``crmcore.plugins``
NAME = "email-smtp"
