"""Install-wide views of plugins: which businesses enabled what, and contract checks (CLI, admin)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmcore.plugins.models import PluginEnablement
from crmcore.tenancy.models import Business

if TYPE_CHECKING:
    from crmcore.plugins.manager import PluginRegistry
    from crmcore.runtime import Crm


def enablement_overview(crm: Crm) -> dict[str, Any]:
    """Every loaded plugin with version, source and the businesses that enabled it, plus load errors."""
    with crm.db.session(unscoped=True) as session:  # deliberately across businesses (an install-wide report)
        rows = session.execute(
            select(PluginEnablement.plugin, PluginEnablement.enabled, Business.slug)
            .join(Business, Business.id == PluginEnablement.business_id)
            .order_by(Business.slug)
        ).all()
        all_slugs = list(session.scalars(select(Business.slug).order_by(Business.slug)))
    explicit: dict[str, dict[str, bool]] = {}
    for plugin, enabled, slug in rows:
        explicit.setdefault(plugin, {})[slug] = enabled
    plugins = []
    for name, plugin in crm.registry.plugins.items():
        states = explicit.get(name, {})
        default = plugin.essential or plugin.info.enabled_by_default
        enabled_in = [s for s in all_slugs if plugin.essential or states.get(s, default)]
        plugins.append({
            "name": name, "title": plugin.info.title, "version": plugin.version, "source": plugin.source,
            "distribution": plugin.distribution, "essential": plugin.essential,
            "depends": list(plugin.info.depends), "enabled_in": enabled_in,
        })
    return {"plugins": plugins, "errors": dict(sorted(crm.registry.errors.items()))}


def contract_report(registry: PluginRegistry) -> dict[str, list[str]]:
    """Plugin name -> what keeps it from fitting this core (empty list: it fits)."""
    report: dict[str, list[str]] = {}
    for name, plugin in registry.plugins.items():
        report[name] = registry.contract_problems(name, plugin.obj, plugin.info)
    for name, error in registry.errors.items():
        report[name] = [error]
    return dict(sorted(report.items()))
