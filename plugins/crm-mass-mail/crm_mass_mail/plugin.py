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
    core_api=">=1.0,<2",
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
