"""The core's party features as a default plugin (registered like any other): its pages and
menu entries come through the same hooks a third-party plugin implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore import hookimpl
from crmcore.plugins.info import PluginInfo

if TYPE_CHECKING:
    from flask import Flask

    from crmcore.context import Context

PLUGIN = PluginInfo(title="Parties (core)", version="1.0", essential=True)


@hookimpl
def crm_register_blueprints(app: Flask) -> list[Any]:
    """The party and contact pages."""
    from crmcore.parties.views import bp, contacts_bp

    return [bp, contacts_bp]


@hookimpl
def crm_admin_menu(ctx: Context) -> list[dict[str, Any]]:
    return [
        {"label": "Parties", "endpoint": "parties.list_page", "order": 10, "section": "main"},
        {"label": "Contacts", "endpoint": "contacts.list_page", "order": 20, "section": "main"},
    ]
