"""The plugin object crmcore loads (entry point ``crmcore.plugins: example``).

``PLUGIN`` describes the plugin; the ``@hookimpl`` functions are its hook implementations. Every
hook here takes ``ctx`` and is only called for businesses that enabled the plugin. No state is
kept in module globals: everything per business lives in the database or in ``ctx``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crm_example_plugin import __version__, service
from crm_example_plugin.models import ExampleBase
from crm_example_plugin.schemas import ExampleSettings
from crmcore import PluginInfo, hookimpl

if TYPE_CHECKING:
    from crmcore import Context

PLUGIN = PluginInfo(
    title="Example plugin",
    version=__version__,
    core_api=">=1.0,<2",
    description="Welcomes new parties, requires an amount on won deals, adds a VIN field type.",
    settings_schema=ExampleSettings,
    migrations="crm_example_plugin.migrations",
    metadata=ExampleBase.metadata,
    model_base=ExampleBase,
)


@hookimpl
def crm_after_party_created(ctx: Context, party: Any) -> None:
    """react: runs after the party's transaction committed, from the outbox (retried on error)."""
    service.welcome_party(ctx, party.id)


@hookimpl
def crm_before_stage_change(ctx: Context, record: Any, from_stage: Any, to_stage: Any) -> None:
    """validate: inside the move's transaction; a Veto stops the move and is shown to the user."""
    service.check_stage_change(ctx, record, to_stage)


@hookimpl
def crm_before_party_merge(ctx: Context, kept: Any, duplicate: Any) -> None:
    """validate: move our rows of the duplicate onto the kept party, in the merge's transaction."""
    service.move_party_rows(ctx, duplicate.id, kept.id)


@hookimpl
def crm_after_plugin_enabled(ctx: Context, plugin: str) -> None:
    """react: seed the business's data; idempotent, as enabling twice calls it twice."""
    service.seed_welcome(ctx)


@hookimpl
def crm_admin_menu(ctx: Context) -> list[dict[str, Any]]:
    """page: one entry in the admin settings menu (gone at once when the plugin is disabled)."""
    return [{"label": "Example plugin", "url": "/admin/plugins/example", "section": "settings",
             "icon": "sparkles", "order": 900}]
