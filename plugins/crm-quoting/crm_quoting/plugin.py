"""The plugin object crmcore loads (entry point ``crmcore.plugins: quoting``).

Quotes are core records of type ``quote`` (entry point ``crmcore.record_types: quote``); the
plugin adds their details, lines and actions as a panel on the quote's page, a "Quotes" panel
on deals and parties, the line editor and send pages under ``/quotes`` (404 where the plugin
is off), and the ``quoting.expire`` outbox job. It raises ``crm_after_quote_accepted``
(:mod:`crm_quoting.hookspecs`) and keeps the core's record forms from changing what a quote
says (``crm_before_record_save``, contract 1.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crm_quoting import __version__, expiry, hookspecs
from crm_quoting.models import QuotingBase
from crm_quoting.schemas import QuotingSettings
from crm_quoting.types import QUOTE
from crmcore import PluginInfo, hookimpl
from crmcore.outbox.service import register_handler
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from flask import Flask

    from crmcore import Context

PLUGIN = PluginInfo(
    title="Quoting",
    version=__version__,
    core_api=">=1.2,<2",
    depends=("catalog",),
    description="Quotes on a deal or for a party: catalog lines at the party's price, versions, a PDF sent "
                "by email, acceptance that makes a customer, moves the deal and drafts the invoice.",
    settings_schema=QuotingSettings,
    migrations="crm_quoting.migrations",
    metadata=QuotingBase.metadata,
    model_base=QuotingBase,
    hookspecs=hookspecs,
)

register_handler(expiry.KIND, expiry.run, timeout=60.0, replace=True)


@hookimpl
def crm_register_blueprints(app: Flask) -> list[Any]:
    from crm_quoting.views import bp

    return [bp]


@hookimpl
def crm_admin_menu(ctx: Context) -> list[dict[str, Any]] | None:
    """Quotes are records: their list is the core's record list of type ``quote`` (its URL is
    built while a page renders; outside a request there is no menu)."""
    from flask import has_request_context, url_for

    if ctx is None or not has_request_context() or not ctx.role.allows(Role.READ_ONLY):
        return None
    return [{"label": "Quotes", "url": url_for("records.list", record_type="quote"), "order": 35,
             "section": "main"}]


@hookimpl
def crm_record_panels(ctx: Context, record: Any) -> list[dict[str, Any]] | None:
    """A deal's quotes (with "New quote"); a quote's lines, totals and actions. Rendered only
    inside a page request."""
    from flask import has_request_context

    if not has_request_context() or record.type not in ("deal", "quote"):
        return None
    from crm_quoting import views

    if record.type == "deal":
        return [{"title": "Quotes", "html": views.deal_panel(ctx, record), "order": 20}]
    return [{"title": "Quote", "html": views.quote_panel(ctx, record), "order": 5}]


@hookimpl
def crm_party_panels(ctx: Context, party: Any) -> list[dict[str, Any]] | None:
    """The party's quotes, with "New quote" (a quote without a deal)."""
    from flask import has_request_context

    if not has_request_context():
        return None
    from crm_quoting import views

    return [{"title": "Quotes", "html": views.party_panel(ctx, party), "order": 35}]


@hookimpl
def crm_record_statuses(ctx: Context, record_type: str, records: list[Any]) -> dict[int, str] | None:
    """A quote shows its own status instead of the core's "open": draft, sent, accepted,
    refused, expired (a sent quote past its valid-until day, before the expiry job stored it)
    or superseded. One query for all the records of a page; another business's are never
    answered, and a quote record without details yet is a draft."""
    if record_type != QUOTE.key:
        return None
    from sqlalchemy import select

    from crm_quoting.models import Quote, Status
    from crm_quoting.rules import effective_status, today

    mine = sorted({r.id for r in records if r.type == QUOTE.key and r.business_id == ctx.business_id})
    if not mine:
        return {}
    found = {q.record_id: q for q in ctx.session.scalars(select(Quote).where(Quote.record_id.in_(mine)))}
    day = today(ctx)
    return {record_id: effective_status(found[record_id], day) if record_id in found else Status.DRAFT.value
            for record_id in mine}


@hookimpl
def crm_before_record_save(ctx: Context, record: Any, changes: dict[str, Any], created: bool) -> None:
    """The core's forms, API and other plugins may not change what a quote says behind its
    back: its amount and currency follow its lines, its party stays, a quote past its draft
    keeps its title and contact too (:mod:`crm_quoting.guard`; raises Veto)."""
    from crm_quoting.guard import check_save

    check_save(ctx, record, changes, created)


@hookimpl
def crm_seed_demo(ctx: Context) -> list[str]:
    """``crm demo``: quotes on open demo deals, accepted, sent and draft (:mod:`crm_quoting.demo`)."""
    from crm_quoting import demo

    return demo.seed(ctx)
