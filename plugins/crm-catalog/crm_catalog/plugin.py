"""The plugin object crmcore loads (entry point ``crmcore.plugins: catalog``).

Pages are a blueprint under ``/catalog`` (404 where the plugin is not enabled); the party sheet
gets a "Catalog" panel (special prices, cross references, the price & availability inquiry); a
merge moves the duplicate's catalog rows to the kept party. The hooks the catalog raises for
other plugins are in :mod:`crm_catalog.hookspecs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crm_catalog import __version__, customers, hookspecs
from crm_catalog.models import CatalogBase
from crmcore import PluginInfo, hookimpl
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from flask import Flask

    from crmcore import Context

PLUGIN = PluginInfo(
    title="Catalog",
    version=__version__,
    core_api=">=1.2,<2",
    description="Products and services, price lists, per-customer special prices and part numbers, "
                "and a price & availability inquiry on the party's page.",
    migrations="crm_catalog.migrations",
    metadata=CatalogBase.metadata,
    model_base=CatalogBase,
    hookspecs=hookspecs,
)


@hookimpl
def crm_register_blueprints(app: Flask) -> list[Any]:
    from crm_catalog import party  # noqa: F401  (registers the party pages on the blueprint)
    from crm_catalog.views import bp

    return [bp]


@hookimpl
def crm_admin_menu(ctx: Context) -> list[dict[str, Any]]:
    """Everyone in the business reads the catalog; the pages offer writing to admins."""
    if ctx is None or not ctx.role.allows(Role.READ_ONLY):
        return []
    return [{"label": "Catalog", "endpoint": "catalog.products", "order": 40, "section": "main"}]


@hookimpl
def crm_party_panels(ctx: Context, party: Any) -> list[dict[str, Any]] | None:
    """The "Catalog" panel of the party sheet (rendered only inside a page request)."""
    from flask import has_request_context

    if not has_request_context():
        return None
    from crm_catalog.party import panel

    return [{"title": "Catalog", "html": panel(ctx, party), "order": 30}]


@hookimpl
def crm_before_party_merge(ctx: Context, kept: Any, duplicate: Any) -> None:
    """validate: in the merge's transaction, the duplicate's catalog rows move to the kept party."""
    customers.move_party_rows(ctx, duplicate.id, kept.id)


@hookimpl
def crm_seed_demo(ctx: Context) -> list[str]:
    """``crm demo``: the dealer's machines, attachments and services, a fleet price list, and a
    customer's special price and part number (:mod:`crm_catalog.demo`)."""
    from crm_catalog import demo

    return demo.seed(ctx)
