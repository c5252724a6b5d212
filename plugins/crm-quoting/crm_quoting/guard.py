"""What the core's record service may change on a quote behind the plugin's back
(``crm_before_record_save``, contract 1.2): the core's generic Edit form, the JSON API and other
plugins write ``quote`` records through :func:`crmcore.records.service.update_record`, and the
plugin's own steps do too.

The rules (docs/quoting.md, "Edits through the core's forms"):

- the record's ``amount`` and ``currency`` are the quote's: its lines' net total (None while
  negative) and its currency. They may only be set to those values, which is what the plugin's
  own writes do as lines change, so no flag is needed to tell them apart; any other amount or
  currency is refused, draft or not;
- a quote with a party keeps it (its lines are priced and its addresses copied for it): a new
  party is refused; a bare quote made without one may be given one;
- a quote that is no longer a draft (sent, accepted, refused, expired, superseded) also keeps
  its title (printed on the PDF) and contact (whom it was made out to), as its editor does;
- everything else (description, owner, expected close date, custom fields) stays editable, and
  a new contact of a draft is copied to its details (the PDF's and the send form's contact).

A record made by the core's "New quote" form is allowed: it is a draft, whose details the plugin
makes the first time it is changed (:func:`crm_quoting.quotes.details`); until then no rule
applies (nothing to disagree with).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crm_quoting.models import Quote, Status
from crm_quoting.quotes import label
from crm_quoting.rules import effective_status, money_text, today
from crm_quoting.types import QUOTE
from crmcore.errors import Veto

if TYPE_CHECKING:
    from decimal import Decimal

    from crmcore.context import Context
    from crmcore.records.models import Record

#: the record fields a quote's meaning depends on, in the order messages name them
WATCHED = ("title", "party_id", "contact_id", "amount", "currency")
#: the ones a quote that is no longer a draft keeps whatever the value
LOCKED = ("title", "party_id", "contact_id")
WORDS = {"title": "title", "party_id": "party", "contact_id": "contact", "amount": "amount", "currency": "currency"}


def listed(fields: list[str]) -> str:
    """Record fields as a message names them: "party, contact and amount"."""
    words = [WORDS[f] for f in fields]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def amount_errors(record: Record, changes: dict[str, Any], net_amount: Decimal, currency: str,
                  document: str) -> dict[str, list[str]]:
    """The errors of a change of a priced document's record (a quote, an order) whose amount is
    not its lines' net total (None while negative) or whose currency is not its lines'."""
    errors: dict[str, list[str]] = {}
    if "amount" in changes and record.amount != (net_amount if net_amount >= 0 else None):
        shown = money_text(net_amount, currency)
        errors["amount"] = [f"its amount is the net total of its lines ({shown}): change the lines in the "
                            f"{document} editor"]
    if "currency" in changes and record.currency != currency:
        errors["currency"] = [f"its currency is that of its lines ({currency})"]
    return errors


def locked_refusals(changes: dict[str, Any], errors: dict[str, list[str]]) -> list[str]:
    """The fields a change of a document that is no longer editable may not touch: title, party
    and contact whatever the value, and a wrong amount or currency."""
    return [f for f in WATCHED if f in changes and (f in LOCKED or f in errors)]


def refuse_open_change(name: str, changes: dict[str, Any], errors: dict[str, list[str]], document: str) -> None:
    """Veto a change of an editable document's record: a new party (its lines are priced for
    the one it has) and the ``errors`` found, first message of each in :data:`WATCHED` order."""
    if "party_id" in changes and changes["party_id"][0] is not None:
        errors["party_id"] = [f"it keeps its party (its lines are priced for it): make a new {document} for "
                              "another party"]
    if errors:
        raise Veto(f"{name} was not saved: " + "; ".join(errors[f][0] for f in WATCHED if f in errors), errors)


def check_save(ctx: Context, record: Record, changes: dict[str, Any], created: bool) -> None:
    """Refuse a change of a quote's record that the quote does not say (see the module)."""
    if created or record.type != QUOTE.key or not changes.keys() & set(WATCHED):
        return
    with ctx.session.no_autoflush:  # the record's new values stay unwritten while we look
        quote = ctx.session.scalar(select(Quote).where(Quote.record_id == record.id))
    if quote is None:
        return
    name = label(record, quote)
    name = name[:1].upper() + name[1:]
    errors = amount_errors(record, changes, quote.net_amount, quote.currency, "quote")
    if quote.status != Status.DRAFT:
        status = effective_status(quote, today(ctx))
        refused = locked_refusals(changes, errors)
        if refused:
            then = "an accepted quote is final" if status == Status.ACCEPTED else "make a new version to change it"
            raise Veto(f"{name} is {status}: its {listed(refused)} can no longer change ({then})",
                       {f: [f"can no longer change: the quote is {status}"] for f in refused})
        return
    refuse_open_change(name, changes, errors, "quote")
    if "contact_id" in changes:
        quote.contact_id = record.contact_id  # the draft's details follow (its PDF and send form)
