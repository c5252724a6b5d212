"""The plugin object crmcore loads (entry point ``crmcore.plugins: mass-mail``).

Importing it registers the outbox handler of ``mass_mail.batch`` (so ``crm worker`` runs the
batches of every business that enabled the plugin); the pages are a blueprint under
``/mass-mail``, answering 404 where the plugin is not enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crm_mass_mail import __version__, service
from crm_mass_mail.models import MassMailBase
from crmcore import PluginInfo, hookimpl
from crmcore.outbox.service import register_handler
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from flask import Flask

    from crmcore import Context

PLUGIN = PluginInfo(
    title="Mass mail",
    version=__version__,
    core_api=">=1.2,<2",
    description="Email campaigns to a saved party filter, throttled, through the outbox, with per-recipient status.",
    migrations="crm_mass_mail.migrations",
    metadata=MassMailBase.metadata,
    model_base=MassMailBase,
    # declares the ``campaign`` variable (the campaign's name) to the template checker
    extra={"notification_events": [{
        "key": "mass_mail", "label": "Mass mail", "objects": ("party",), "variables": {"campaign": "Spring news"},
        "description": "The variables of a mass email (the campaign's name); sent by campaigns, not by rules.",
        "for_rules": False,
    }]},
)

register_handler(service.BATCH_KIND, service.run_batch, timeout=service.JOB_TIMEOUT, replace=True)

#: ``crm demo``'s newsletter template and its draft campaign to the parties tagged "newsletter"
DEMO_TEMPLATE = {
    "key": "newsletter", "name": "Newsletter",
    "subject": "{{ campaign }}: {{ business.name }}",
    "body_text": "Hello {{ party.name }},\n\nour spring service days are here: a free 30-point check of "
                 "every machine you bring to the yard in April, and 10 % off wear parts fitted that day.\n\n"
                 "{{ business.name }}\nUnsubscribe: {{ unsubscribe_url }}\n",
    "body_html": "<p>Hello {{ party.name }},</p><p>our spring service days are here: a free 30-point check of "
                 "every machine you bring to the yard in April, and 10 % off wear parts fitted that day.</p>"
                 "<p>{{ business.name }} · <a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>",
}
DEMO_CAMPAIGN = {"name": "Spring service days", "template_key": "newsletter", "throttle": 60,
                 "audience": {"tag": "newsletter"}}


@hookimpl
def crm_register_blueprints(app: Flask) -> list[Any]:
    from crm_mass_mail.views import bp

    return [bp]


@hookimpl
def crm_before_party_merge(ctx: Context, kept: Any, duplicate: Any) -> None:
    """validate: in the merge's transaction, the duplicate's recipient rows move to the kept party."""
    service.move_party_rows(ctx, duplicate.id, kept.id)


@hookimpl
def crm_admin_menu(ctx: Context) -> list[dict[str, Any]]:
    """Members see the campaigns (and their recipients); admins create and start them."""
    if ctx is None or not ctx.role.allows(Role.MEMBER):
        return []
    return [{"label": "Mass mail", "endpoint": "mass_mail.campaigns", "order": 72, "section": "main"}]


@hookimpl
def crm_seed_demo(ctx: Context) -> list[str]:
    """``crm demo``: a newsletter template and a draft campaign to the parties tagged
    "newsletter" (not started: the demo sends no email)."""
    from crmcore.messaging.service import create_template

    create_template(ctx, DEMO_TEMPLATE)
    campaign = service.create_campaign(ctx, DEMO_CAMPAIGN)
    return [f"draft campaign {campaign.name!r} to the parties tagged newsletter"]
