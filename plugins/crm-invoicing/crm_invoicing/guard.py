"""What the core's record service may change on an invoice or a credit note behind the plugin's
back (``crm_before_record_save``, contract 1.2): the core's generic New and Edit forms, the JSON
API and other plugins write ``invoice`` / ``credit_note`` records through
:mod:`crmcore.records.service`, and the plugin's own steps do too.

The rules (docs/payments.md, "Edits through the core's forms"):

- a **draft** invoice is the user's to change: party, contact, title, amount and currency may
  all be edited (issuing it takes the party's name and address then, and sets the record's
  amount and currency from its lines);
- an **issued** document (anything but a draft; a credit note always) keeps its ``party_id``
  and ``contact_id`` (whom it bills, whom it is sent to), and its ``amount`` and ``currency``
  stay what its lines say (an invoice's total; none on a credit note, whose amounts are below
  zero). Issuing writes exactly those values, so the plugin's own write passes without a flag.
  Its title (a name in the CRM, not printed on the PDF), description, owner, expected close date
  and custom fields stay editable;
- a **credit note** is only made from an issued invoice (:func:`crm_invoicing.service.create_credit_note`,
  which marks its own create with :func:`own_write`); the core's "New credit note" form is
  refused. A record made by the core's "New invoice" form is allowed: it is a draft, whose
  details the plugin makes the first time it is changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crm_invoicing.models import Invoice, Kind, Status
from crm_invoicing.types import CREDIT_NOTE, TYPES
from crmcore.errors import Veto

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.records.models import Record

#: the record fields an issued document's meaning depends on, in the order messages name them
WATCHED = ("party_id", "contact_id", "amount", "currency")
WORDS = {"party_id": "party", "contact_id": "contact", "amount": "amount", "currency": "currency"}
STATUS_WORDS = {Status.ACTIVE.value: "issued", Status.PARTLY_PAID.value: "partly paid"}

_own: ContextVar[bool] = ContextVar("crm_invoicing_own_write", default=False)


@contextmanager
def own_write() -> Iterator[None]:
    """Mark the record writes inside the block as the plugin's own (its credit notes)."""
    token = _own.set(True)
    try:
        yield
    finally:
        _own.reset(token)


def _listed(fields: list[str]) -> str:
    words = [WORDS[f] for f in fields]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _record_amount(invoice: Invoice) -> Decimal | None:
    """The record's amount of an issued document: an invoice's total (a credit note: none)."""
    return invoice.total_amount if invoice.kind == Kind.INVOICE and invoice.total_amount >= 0 else None


def check_save(ctx: Context, record: Record, changes: dict[str, Any], created: bool) -> None:
    """Refuse a save of an invoice's or credit note's record that the document does not allow
    (see the module); raises Veto."""
    if record.type not in TYPES:
        return
    if created:
        if record.type == CREDIT_NOTE.key and not _own.get():
            raise Veto("A credit note is made from an issued invoice: open the invoice and choose "
                       "Credit note")
        return
    if not changes.keys() & set(WATCHED):
        return
    with ctx.session.no_autoflush:  # the record's new values stay unwritten while we look
        invoice = ctx.session.scalar(select(Invoice).where(Invoice.record_id == record.id))
    if invoice is None or (invoice.status == Status.DRAFT and invoice.kind == Kind.INVOICE):
        return
    expected = {"amount": _record_amount(invoice), "currency": invoice.currency}
    refused = [f for f in WATCHED if f in changes and (f not in expected or getattr(record, f) != expected[f])]
    if not refused:
        return
    kind = "Credit note" if record.type == CREDIT_NOTE.key else "Invoice"
    name = f"{kind} {record.reference or '#' + str(record.id)}"
    status = STATUS_WORDS.get(invoice.status, invoice.status)
    hint = "" if record.type == CREDIT_NOTE.key else \
        " (a credit note and a new invoice correct an issued invoice)"
    raise Veto(f"{name} is {status}: its {_listed(refused)} can no longer change{hint}",
               {f: [f"can no longer change: the {kind.lower()} is {status}"] for f in refused})
