"""Messaging: email and SMS sent through the outbox, from templates, by notification rules.

``models`` holds the message log, templates, opt-outs and notification rules; ``providers`` the
driver interfaces that transports implement (``crmcore.email_transports``,
``crmcore.sms_providers``). See docs/messaging.md.
"""
