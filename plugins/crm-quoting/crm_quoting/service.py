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
stored line's amounts for :func:`crmcore.money.document_totals`; :func:`store_lines` writes priced
lines to the caller's own rows. :func:`address_snapshots` and :func:`contacts_of` give a party's
addresses as a document snapshots them and its contacts; :func:`party_or_error`,
:func:`deal_or_error` and :func:`check_contact` check the party, deal and contact a new document
names.

Shared by other plugins too, so that a document priced like a quote validates and edits like one:
the columns of a line table (:class:`LineColumns`), the marshmallow fields (:class:`Text`,
:class:`Id`, :class:`Number`, :class:`Currency`), the :class:`AddressInput` schema, :func:`load` and
:func:`flat_errors` (errors named by field); and the line editor's form (:func:`rows_to_send`,
:func:`service_line`, :func:`row_errors`, :func:`stored_rows`, :func:`kept_rows` and their parts,
from :mod:`crm_quoting.line_form`) with its Jinja macros in ``quoting/_line_editor.html``. A
document's own ``crm_before_record_save`` check keeps quoting's rules for a priced record:
:data:`WATCHED_FIELDS`, :func:`amount_errors`, :func:`locked_refusals`, :func:`refuse_open_change`,
:func:`listed_fields`. Test helpers for other plugins' tests are in :mod:`crm_quoting.testing`.

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
from crm_quoting.guard import WATCHED as WATCHED_FIELDS
from crm_quoting.guard import amount_errors, locked_refusals, refuse_open_change
from crm_quoting.guard import listed as listed_fields
from crm_quoting.lifecycle import (
    Acceptance,
    accept_quote,
    count_by_status,
    mark_sent,
    new_version,
    refuse_quote,
    send_quote,
)
from crm_quoting.line_form import (
    LINE_FIELDS,
    SPARE_ROWS,
    find_sku,
    form_rows,
    form_text,
    is_blank,
    kept_rows,
    resolve_sku,
    row_errors,
    rows_to_send,
    service_line,
    spare_rows,
    stored_rows,
)
from crm_quoting.lines import (
    MANUAL_PRICE,
    PricedLine,
    Pricing,
    StoredLine,
    as_input,
    price_lines,
    pricing_for,
    store_lines,
    stored_amounts,
)
from crm_quoting.models import LineColumns
from crm_quoting.quotes import (
    QuoteSummary,
    QuoteView,
    address_snapshots,
    check_contact,
    contacts_of,
    create_quote,
    create_quote_for_deal,
    deal_or_error,
    get_quote,
    party_or_error,
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
from crm_quoting.schemas import AddressInput, Currency, Id, Number, Text, flat_errors, load

__all__ = [
    "LINE_FIELDS", "LIVE", "MANUAL_PRICE", "REVISABLE", "SPARE_ROWS", "WATCHED_FIELDS", "Acceptance",
    "AddressInput", "Currency", "Id", "LineColumns", "Number", "PricedLine", "Pricing", "QuoteSummary",
    "QuoteView", "Settings", "StoredLine", "Text", "accept_quote", "add_line", "address_snapshots",
    "amount_errors", "as_input", "check_contact", "contacts_of", "count_by_status", "create_quote",
    "create_quote_for_deal", "deal_or_error", "deal_stages", "effective_status", "find_sku",
    "flat_errors", "form_rows", "form_text", "get_quote", "is_blank", "kept_rows", "listed_fields",
    "load", "locked_refusals", "mark_sent", "money_text", "move_line", "new_version", "party_or_error",
    "price_lines", "pricing_for", "quotes_for_deal", "quotes_for_party", "refuse_open_change",
    "refuse_quote", "remove_line", "resolve_sku", "row_errors", "rows_to_send", "save_draft",
    "save_settings", "send_quote", "service_line", "set_lines", "settings", "spare_rows", "store_lines",
    "stored_amounts", "stored_rows", "today", "update_line", "update_quote",
]
