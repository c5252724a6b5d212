"""The plugin object crmcore loads (entry point ``crmcore.plugins: orders``).

Orders are core records of types ``sales_order`` and ``loaner_order`` (entry points
``crmcore.record_types``); the plugin adds their details, lines and actions as a panel on the
order's page, an "Order" panel on quotes (the order of an accepted quote, or "Create order"),
"Orders" panels on deals and parties, the lookup and forms under ``/orders`` (404 where the
plugin is off), the status the core shows for its records (``crm_record_statuses``, contract
1.2), keeps the core's record forms from changing what an order says (``crm_before_record_save``,
contract 1.2), and makes the order of an accepted quote (``crm_after_quote_accepted``, raised by
quoting, hence ``depends=("quoting",)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crm_orders import __version__
from crm_orders.models import OrdersBase
from crm_orders.notifications import EVENTS
from crm_orders.schemas import OrdersSettings
from crm_orders.types import TYPES
from crmcore import PluginInfo, hookimpl
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from flask import Flask

    from crmcore import Context
    from crmcore.parties.models import Party
    from crmcore.records.models import Record

PLUGIN = PluginInfo(
    title="Orders",
    version=__version__,
    core_api=">=1.2,<2",
    depends=("quoting",),
    description="Sales orders and loaner orders: from an accepted quote or entered directly, editable while "
                "open and locked once fulfilled or invoiced, invoiced through the invoicing plugin, loaned "
                "units with their due-back day, and a lookup by party, status, date and item.",
    settings_schema=OrdersSettings,
    migrations="crm_orders.migrations",
    metadata=OrdersBase.metadata,
    model_base=OrdersBase,
    extra={"notification_events": list(EVENTS)},
)


@hookimpl
def crm_register_blueprints(app: Flask) -> list[Any]:
    from crm_orders.views import bp

    return [bp]


@hookimpl
def crm_admin_menu(ctx: Context) -> list[dict[str, Any]] | None:
    if ctx is None or not ctx.role.allows(Role.READ_ONLY):
        return None
    return [{"label": "Orders", "endpoint": "orders.index", "order": 37, "section": "main"}]


@hookimpl
def crm_record_panels(ctx: Context, record: Record) -> list[dict[str, Any]] | None:
    """An order's own panel; the order of a quote; a deal's orders. Rendered only inside a page
    request."""
    from flask import has_request_context

    if not has_request_context() or record.type not in (*TYPES, "deal", "quote"):
        return None
    from crm_orders import panels

    if record.type in TYPES:
        title = "Loaner order" if record.type == "loaner_order" else "Sales order"
        return [{"title": title, "html": panels.order_panel(ctx, record), "order": 5}]
    if record.type == "quote":
        return [{"title": "Order", "html": panels.quote_panel(ctx, record), "order": 6}]
    return [{"title": "Orders", "html": panels.deal_panel(ctx, record), "order": 25}]


@hookimpl
def crm_party_panels(ctx: Context, party: Party) -> list[dict[str, Any]] | None:
    """The party's orders (loaners out first, overdue ones marked), with "New order"."""
    from flask import has_request_context

    if not has_request_context():
        return None
    from crm_orders import panels

    return [{"title": "Orders", "html": panels.party_panel(ctx, party), "order": 36}]


@hookimpl
def crm_record_statuses(ctx: Context, record_type: str, records: Sequence[Record]) -> dict[int, str] | None:
    """The order's own status (open, fulfilled, invoiced, out, overdue, returned, cancelled)
    for every order record a page shows, in one query."""
    from crm_orders.lookup import record_statuses

    return record_statuses(ctx, record_type, records)


@hookimpl
def crm_before_record_save(ctx: Context, record: Record, changes: dict[str, Any], created: bool) -> None:
    """The core's forms, API and other plugins may not change what an order says behind its
    back: its amount and currency follow its lines, its party stays, a locked order keeps its
    title and contact too (:mod:`crm_orders.guard`; raises Veto)."""
    from crm_orders.guard import check_save

    check_save(ctx, record, changes, created)


@hookimpl
def crm_after_quote_accepted(ctx: Context, quote: Record) -> None:
    """An accepted quote becomes a sales order (with the ``order_on_accept`` setting). From the
    outbox, perhaps twice: a quote has at most one order."""
    from crm_orders.creating import order_on_accept

    order_on_accept(ctx, quote)


@hookimpl
def crm_seed_demo(ctx: Context) -> list[str]:
    """``crm demo``: the orders of quoting's accepted demo quotes (the first fulfilled and
    invoiced where invoicing is on) and an overdue loaner (:mod:`crm_orders.demo`)."""
    from crm_orders import demo

    return demo.seed(ctx)
