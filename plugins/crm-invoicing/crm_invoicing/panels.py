"""Panels on core pages (``crm_record_panels``, ``crm_party_panels``): an invoice's lines,
totals, status, payments, attempts and actions on its record page; a deal's invoices with
"Create invoice"; a party's invoices with "New invoice". Rendered by Jinja with autoescape,
so the HTML is safe to hand to the core as ``Markup``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import render_template
from markupsafe import Markup

from crm_invoicing import service
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.parties.models import Party
    from crmcore.records.models import Record

#: invoices a deal's or party's panel lists (the list page has them all)
PANEL_ROWS = 10


def invoice_panel(ctx: Context, record: Record) -> dict[str, Any]:
    view = service.get_invoice(ctx, record.id)
    html = render_template("invoicing/panel_invoice.html", view=view, can_write=ctx.role.allows(Role.MEMBER))
    title = "Credit note" if record.type == "credit_note" else "Invoice"
    return {"title": title, "html": Markup(html), "order": 10}


def deal_panel(ctx: Context, record: Record) -> dict[str, Any]:
    page = service.list_invoices(ctx, {"deal_id": record.id}, limit=PANEL_ROWS)
    html = render_template("invoicing/panel_list.html", page=page, today=service.today(ctx),
                           can_write=ctx.role.allows(Role.MEMBER) and record.archived_at is None,
                           create=("invoicing.from_deal", {"deal_id": record.id}, "Create invoice")
                           if record.party_id is not None else None,
                           hint=None if record.party_id is not None else "Give the deal a party to invoice it.",
                           more={"deal_id": record.id})
    return {"title": "Invoices", "html": Markup(html), "order": 40}


def party_panel(ctx: Context, party: Party) -> dict[str, Any]:
    page = service.list_invoices(ctx, {"party_id": party.id}, limit=PANEL_ROWS)
    html = render_template("invoicing/panel_list.html", page=page, today=service.today(ctx),
                           can_write=ctx.role.allows(Role.MEMBER) and party.archived_at is None,
                           create=("invoicing.for_party", {"party_id": party.id}, "New invoice"), hint=None,
                           more={"party_id": party.id})
    return {"title": "Invoices", "html": Markup(html), "order": 40}
