"""The object crmcore loads through the ``crmcore.plugins`` entry point: ``PLUGIN`` and hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crm_plugin_template import __version__, service
from crm_plugin_template.models import PluginTemplateBase
from crm_plugin_template.schemas import PluginTemplateSettings
from crmcore import PluginInfo, hookimpl

if TYPE_CHECKING:
    from crmcore import Context

PLUGIN = PluginInfo(
    title="Plugin template",
    version=__version__,
    core_api=">=1.0,<2",
    description="Remembers every deal won.",
    settings_schema=PluginTemplateSettings,
    migrations="crm_plugin_template.migrations",
    metadata=PluginTemplateBase.metadata,
    model_base=PluginTemplateBase,
)


@hookimpl
def crm_after_record_won(ctx: Context, record: Any) -> None:
    """react: after the win committed, from the outbox; retried if it raises."""
    service.remember_win(ctx, record)
