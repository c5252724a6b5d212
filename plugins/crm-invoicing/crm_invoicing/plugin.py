"""The plugin object crmcore loads (entry point ``crmcore.plugins: invoicing``).

Staff pages are a blueprint under ``/invoicing`` (404 where the plugin is off); the payment
pages and the gateways' webhooks are a public blueprint (``/pay/...``, ``/hooks/payments/...``)
that opens the business named by the URL. The invoice record's page, a deal's page and a
party's sheet get panels; ``crm_before_record_save`` (contract 1.2) keeps the core's record forms
from changing an issued document.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crm_invoicing import __version__, hookspecs
from crm_invoicing.models import InvoicingBase
from crm_invoicing.schemas import InvoicingSettings
from crmcore import PluginInfo, hookimpl
from crmcore.messaging.rules import NotificationEvent
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from flask import Flask

    from crmcore import Context
    from crmcore.parties.models import Party
    from crmcore.records.models import Record

_INVOICE_SAMPLE = {"number": "INV26-0007", "title": "Invoice for Initech", "currency": "EUR", "total": "121.00",
                   "paid": "0.00", "balance": "121.00", "issue_date": "2026-03-02", "due_date": "2026-03-16",
                   "pay_url": "https://crm.example/pay/acme/3hU8..."}

PLUGIN = PluginInfo(
    title="Invoicing",
    version=__version__,
    core_api=">=1.2,<2",
    description="Invoices and credit notes as records, with lines, payments recorded by hand or taken through "
                "any enabled payment gateway, and a public payment page per invoice.",
    settings_schema=InvoicingSettings,
    migrations="crm_invoicing.migrations",
    metadata=InvoicingBase.metadata,
    model_base=InvoicingBase,
    hookspecs=hookspecs,
    extra={"notification_events": [
        NotificationEvent("invoice.activated", "Invoice issued", ("party", "contact", "record"),
                          {"invoice": _INVOICE_SAMPLE},
                          "An invoice was issued (numbered); invoice.pay_url is its payment link, present only "
                          "in this event (the link is stored nowhere else)."),
        NotificationEvent("invoice.paid", "Invoice paid", ("party", "contact", "record"),
                          {"invoice": {**_INVOICE_SAMPLE, "paid": "121.00", "balance": "0.00", "pay_url": None}},
                          "An invoice was paid in full."),
    ]},
)


@hookimpl
def crm_register_blueprints(app: Flask) -> list[Any]:
    from crm_invoicing.public import bp as public_bp
    from crm_invoicing.views import bp

    return [bp, public_bp]


@hookimpl
def crm_admin_menu(ctx: Context) -> list[dict[str, Any]]:
    if ctx is None or not ctx.role.allows(Role.READ_ONLY):
        return []
    entries = [{"label": "Invoices", "endpoint": "invoicing.invoices", "order": 60, "section": "main"}]
    if ctx.role.allows(Role.ADMIN):
        entries.append({"label": "Invoicing", "endpoint": "invoicing.settings", "order": 60, "section": "settings"})
    return entries


@hookimpl
def crm_record_panels(ctx: Context, record: Record) -> list[dict[str, Any]] | None:
    """The invoice panel on an invoice's or credit note's page; the invoices of a deal on its page."""
    from crm_invoicing import panels

    if record.type in ("invoice", "credit_note"):
        return [panels.invoice_panel(ctx, record)]
    if record.type == "deal":
        return [panels.deal_panel(ctx, record)]
    return None


@hookimpl
def crm_party_panels(ctx: Context, party: Party) -> list[dict[str, Any]] | None:
    from crm_invoicing import panels

    return [panels.party_panel(ctx, party)]


@hookimpl
def crm_record_statuses(ctx: Context, record_type: str, records: list[Record]) -> dict[int, str] | None:
    """Invoices and credit notes show their own status (draft, issued, partly paid, paid,
    credited, cancelled) instead of the core's "open": one query for all the records of a page."""
    from crm_invoicing import service
    from crm_invoicing.types import TYPES

    if record_type not in TYPES:
        return None
    return service.record_statuses(ctx, [r for r in records if r.type == record_type])


@hookimpl
def crm_before_record_save(ctx: Context, record: Record, changes: dict[str, Any], created: bool) -> None:
    """The core's forms, API and other plugins may not change whom an issued invoice bills or
    what it is for, nor make a credit note without its invoice (:mod:`crm_invoicing.guard`;
    raises Veto). Drafts stay free."""
    from crm_invoicing.guard import check_save

    check_save(ctx, record, changes, created)


@hookimpl(trylast=True)
def crm_seed_demo(ctx: Context) -> list[str]:
    """``crm demo``: an invoice issued from the quote quoting's demo accepted, one partly paid by
    bank transfer, a draft (:mod:`crm_invoicing.demo`). ``trylast``: after quoting's demo."""
    from crm_invoicing import demo

    return demo.seed(ctx)
