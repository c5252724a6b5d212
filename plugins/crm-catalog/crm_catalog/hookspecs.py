"""Hooks the catalog raises for other plugins (``PluginInfo(hookspecs=...)``).

A plugin implementing one lists ``catalog`` in its ``PluginInfo.depends`` and is called, like
every tenant-scoped hook, only in businesses that enabled it. Both are page-like "collect" hooks:
each implementation is called in turn, a failing one is logged against its plugin and skipped.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crmcore import hookspec

if TYPE_CHECKING:
    from crm_catalog.models import Product
    from crmcore.context import Context


@hookspec
def crm_catalog_availability(ctx: Context, product: Product, quantity: Decimal) -> list[dict[str, Any]] | None:
    """Where ``quantity`` units of ``product`` could come from (an inventory or supplier plugin).

    Called by ``crm_catalog.service.availability`` (the inquiry on a party's page, and any
    plugin asking). Return a list of dicts, one per source:
    ``{"source": "Main warehouse", "available": Decimal("12"), "location": "Antwerp",
    "lead_time_days": 2}`` (``available`` a Decimal, int or numeric string >= 0; ``location`` and
    ``lead_time_days`` optional), or None when you know nothing of the product. Read only: what
    you write in ``ctx.session`` is rolled back. Keep it quick; do not call out over the network
    without a short deadline. A malformed dict is logged and left out. Added in catalog 0.1.
    """


@hookspec
def crm_catalog_product_in_use(ctx: Context, product: Product) -> str | None:
    """Whether your plugin still refers to ``product`` (quote lines, orders ...).

    Called when an admin deletes a product: any answer that is not None (a short reason such as
    "on 3 quotes") keeps the product, which is deactivated instead. Added in catalog 0.1.
    """
