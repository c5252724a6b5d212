"""The core's record features as a default plugin (registered like any other).

It supplies the core's own smart defaults through the same ``crm_record_defaults`` hook a
third-party plugin implements. Order: the core plugin is registered first, and pluggy calls
the plugin registered LAST first; :func:`crmcore.records.service.record_defaults` keeps the first
value given for each key, so any other plugin's value overrides the core's, and the core's
defaults are the fallback. Values the user typed win over all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore import hookimpl
from crmcore.plugins.info import PluginInfo

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.parties.models import Party
    from crmcore.records.models import Record

PLUGIN = PluginInfo(title="Records (core)", version="1.0", essential=True)

#: fields a next step copies from the record it is created from
COPIED_FROM_SOURCE = ("party_id", "contact_id", "amount", "currency", "owner_id")
FOLLOW_UP_PREFIX = "Follow-up: "
TITLE_MAX = 300


def follow_up_title(source_title: str) -> str:
    title = FOLLOW_UP_PREFIX + source_title
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…"


@hookimpl
def crm_record_defaults(ctx: Context, record_type: str, source: Record | None,
                        party: Party | None) -> dict[str, Any] | None:
    """A next step copies its source's party, contact, amount, currency and owner, and is titled
    "Follow-up: <source title>"; a record for a party takes the party's currency."""
    out: dict[str, Any] = {}
    if source is not None:
        for field in COPIED_FROM_SOURCE:
            value = getattr(source, field)
            if value is not None:
                out[field] = value
        out["title"] = follow_up_title(source.title)
    if party is not None:
        out.setdefault("party_id", party.id)
        if party.currency:
            out.setdefault("currency", party.currency)
    return out or None


@hookimpl
def crm_register_blueprints(app: Any) -> list[Any]:
    """The records pages: the deals board, record lists, the record page and its forms."""
    from crmcore.records.views import bp

    return [bp]


@hookimpl
def crm_admin_menu(ctx: Context) -> list[dict[str, Any]] | None:
    """Deals open on the board; leads and incidents on their lists. The URLs carry the record
    type, so they are built here, while a page renders; outside a request (no pages) there is
    no menu."""
    from flask import has_request_context, url_for

    if not has_request_context():
        return None
    return [
        {"label": "Deals", "url": url_for("records.board", record_type="deal"), "endpoint": "records.board",
         "order": 30, "section": "main"},
        {"label": "Leads", "url": url_for("records.list", record_type="lead"), "endpoint": "records.list",
         "order": 40, "section": "main"},
        {"label": "Incidents", "url": url_for("records.list", record_type="incident"),
         "endpoint": "records.list", "order": 50, "section": "main"},
    ]
