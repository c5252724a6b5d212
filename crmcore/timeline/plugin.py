"""The core's timeline features (notes, attachments, reminders, my actions) as a default plugin."""

from __future__ import annotations

from typing import Any

from crmcore import hookimpl
from crmcore.plugins.info import PluginInfo

PLUGIN = PluginInfo(title="Timeline (core)", version="1.0", essential=True)


@hookimpl
def crm_register_blueprints(app: Any) -> list[Any]:
    from crmcore.timeline.views import bp

    return [bp]


@hookimpl
def crm_admin_menu(ctx: Any) -> list[dict[str, Any]]:
    return [{"label": "My actions", "endpoint": "timeline.my_actions", "order": 60, "section": "main"}]
