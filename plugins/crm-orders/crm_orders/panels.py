"""The panels orders add to the core's pages: an order's own panel (details, unit lent, lines,
totals, invoice, the actions allowed now), the order of a quote ("Create order" on an accepted
one), and the orders of a deal and of a party (loaners out first, overdue ones marked).

Rendered inside the core's page request; every value is escaped by the templates.
"""

from __future__ import annotations

from typing import Any

from flask import render_template, url_for
from markupsafe import Markup

from crm_orders import service
from crmcore.tenancy.models import Role


def _css() -> str:
    return url_for("orders.static", filename="orders.css")


def _can_write(ctx: Any) -> bool:
    return ctx.role.allows(Role.MEMBER)


def order_panel(ctx: Any, record: Any) -> Markup:
    view = service.get_order(ctx, record.id)
    return Markup(render_template("orders/_order_panel.html", view=view, can_write=_can_write(ctx), css=_css(),
                                  invoicing=service.invoicing_available(ctx)))


def quote_panel(ctx: Any, record: Any) -> Markup:
    """The quote's order, or "Create order" when the quote is accepted and has none."""
    from crm_quoting import service as quoting

    order = service.order_for_quote(ctx, record.id)
    status = None if order is not None else quoting.get_quote(ctx, record.id).status
    return Markup(render_template("orders/_quote_panel.html", quote=record, order=order, quote_status=status,
                                  can_write=_can_write(ctx) and record.archived_at is None,
                                  on_accept=service.settings(ctx).order_on_accept, css=_css()))


def deal_panel(ctx: Any, deal: Any) -> Markup:
    return Markup(render_template("orders/_orders_panel.html", orders=service.orders_for_deal(ctx, deal.id),
                                  field="deal_id", value=deal.id, panel_id="deal-orders",
                                  all_url=url_for("orders.index", deal_id=deal.id),
                                  can_write=_can_write(ctx) and deal.archived_at is None and deal.party_id is not None,
                                  css=_css()))


def party_panel(ctx: Any, party: Any) -> Markup:
    return Markup(render_template("orders/_orders_panel.html", orders=service.orders_for_party(ctx, party.id),
                                  field="party_id", value=party.id, panel_id="party-orders",
                                  all_url=url_for("orders.index", party_id=party.id),
                                  can_write=_can_write(ctx) and party.archived_at is None, css=_css()))
