"""The core's messaging as a default plugin (``core-messaging``, essential).

It brings the message pages (log, templates, rules, opt-outs), the business's messaging settings
(which transport sends when several are enabled, the default country of phone numbers, a
Reply-To) and, by importing :mod:`crmcore.messaging.delivery`, the outbox handlers of the
``email`` and ``sms`` kinds. Sending itself needs a transport plugin (``email-smtp``, an SMS
provider) enabled in the business. The notification rules are their own plugin,
``core-notifications`` (:mod:`crmcore.messaging.rules`), off until a rule is saved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore import hookimpl
from crmcore.messaging import delivery  # noqa: F401  (registers the email and sms outbox handlers)
from crmcore.plugins.info import PluginInfo
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from flask import Flask

    from crmcore.context import Context

PLUGIN = PluginInfo(title="Messaging (core)", version="1.0", essential=True,
                    description="Email and SMS from templates, the message log, opt-outs.")


@hookimpl
def crm_settings_schema() -> type:
    """The messaging settings; the transport choices are the drivers installed now."""
    from crmcore.messaging.providers import EMAIL_TRANSPORTS_GROUP, SMS_PROVIDERS_GROUP
    from crmcore.messaging.schemas import messaging_settings_schema
    from crmcore.plugins.drivers import load_group

    return messaging_settings_schema(sorted(load_group(EMAIL_TRANSPORTS_GROUP)),
                                     sorted(load_group(SMS_PROVIDERS_GROUP)))


@hookimpl
def crm_register_blueprints(app: Flask) -> list[Any]:
    """The message pages (the public unsubscribe page is registered by ``create_app``)."""
    from crmcore.messaging.views import bp

    return [bp]


@hookimpl
def crm_admin_menu(ctx: Context) -> list[dict[str, Any]]:
    """Members see the message log; admins also reach templates, rules and opt-outs from the
    settings."""
    if ctx is None or not ctx.role.allows(Role.MEMBER):
        return []
    entries = [{"label": "Messages", "endpoint": "messaging.log", "order": 70, "section": "main"}]
    if ctx.role.allows(Role.ADMIN):
        entries.append({"label": "Messaging: templates, rules, opt-outs", "endpoint": "messaging.templates",
                        "order": 50, "section": "settings"})
    return entries
