"""Quoting use cases, the plugin's public API: create a quote (for a deal or a party), edit its
header and lines while it is a draft, make a new version, send it, accept or refuse it.

A quote is a core record of type ``quote`` (:mod:`crm_quoting.types`) with a
:class:`~crm_quoting.models.Quote` row of details beside it and its
:class:`~crm_quoting.models.QuoteLine` rows. Every function is one transaction (``use_case``):
members write, read-only users read, admins change the settings. Bad input raises
ValidationFailed naming each field (``lines.1.tax_rate``) and writes nothing; a state that
forbids the step (accepting a refused quote) raises Conflict; another business's quote is
NotFound.

Statuses: ``draft`` -> ``sent`` (emailed or marked sent) -> ``accepted`` | ``refused``; a sent
quote past its valid-until day is ``expired`` (shown at once, stored by the expiry job); a
quote replaced by a new version is ``superseded``. Accepted, refused and superseded are final.

Line pricing for other plugins (an order keeps its quote's lines and prices new ones by the
same rule): :func:`pricing_for` gives the :class:`Pricing` of a document for a party, currency
and day with the business's quoting tax rates; :func:`price_lines` validates and prices lines
(errors named ``lines.<index>.<field>``) against the document's stored lines (any rows with the
attributes of :class:`StoredLine`), returning :class:`PricedLine` values the caller stores in its
own rows; :func:`as_input` turns a stored line back into input; :func:`stored_amounts` gives a
stored line's amounts for :func:`crmcore.money.document_totals`. :func:`address_snapshots` and
:func:`contacts_of` give a party's addresses as a document snapshots them and its contacts.

The modules behind it (rules, quotes, editing, lifecycle, lines, documents, acceptance,
expiry) are internal; import from here. docs/quoting.md describes the whole.
"""

from __future__ import annotations

from crm_quoting.editing import (
    add_line,
    move_line,
    remove_line,
    save_draft,
    set_lines,
    update_line,
    update_quote,
)
from crm_quoting.lifecycle import (
    Acceptance,
    accept_quote,
    count_by_status,
    mark_sent,
    new_version,
    refuse_quote,
    send_quote,
)
from crm_quoting.lines import (
    MANUAL_PRICE,
    PricedLine,
    Pricing,
    StoredLine,
    as_input,
    price_lines,
    pricing_for,
    stored_amounts,
)
from crm_quoting.quotes import (
    QuoteSummary,
    QuoteView,
    address_snapshots,
    contacts_of,
    create_quote,
    create_quote_for_deal,
    get_quote,
    quotes_for_deal,
    quotes_for_party,
)
from crm_quoting.rules import (
    LIVE,
    REVISABLE,
    Settings,
    deal_stages,
    effective_status,
    money_text,
    save_settings,
    settings,
    today,
)

__all__ = [
    "LIVE", "MANUAL_PRICE", "REVISABLE", "Acceptance", "PricedLine", "Pricing", "QuoteSummary", "QuoteView",
    "Settings", "StoredLine", "accept_quote", "add_line", "address_snapshots", "as_input", "contacts_of",
    "count_by_status", "create_quote", "create_quote_for_deal", "deal_stages", "effective_status", "get_quote",
    "mark_sent", "money_text", "move_line", "new_version", "price_lines", "pricing_for", "quotes_for_deal",
    "quotes_for_party", "refuse_quote", "remove_line", "save_draft", "save_settings", "send_quote", "set_lines",
    "settings", "stored_amounts", "today", "update_line", "update_quote",
]
