"""The settings pages as a default plugin (registered like any other)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore import hookimpl
from crmcore.plugins.info import PluginInfo
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from flask import Flask

    from crmcore.context import Context

PLUGIN = PluginInfo(title="Settings (core)", version="1.0", essential=True)


@hookimpl
def crm_register_blueprints(app: Flask) -> list[Any]:
    # imported here: loading the plugin registry (CLI, worker) must not need the web layer
    from crmcore.web.settings.views import bp

    return [bp]


@hookimpl
def crm_admin_menu(ctx: Context) -> list[dict[str, Any]]:
    """One entry, for admins and owners only (the pages refuse everyone else); none without a
    context (a call outside a business)."""
    if ctx is None or not ctx.role.allows(Role.ADMIN):
        return []
    return [{"label": "Settings", "endpoint": "settings.index", "order": 10, "section": "settings"}]
