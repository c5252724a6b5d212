"""The invoice or credit note as a PDF (crmcore.documents: the business profile, its logo, the
standard lines and totals) and sending it by email (crmcore.messaging: through the outbox, in
the message log and on the timeline, the PDF attached from the invoice's timeline).

Two decisions follow from the payment link being shown once and stored only as a hash:

- a PDF downloaded or kept on the timeline carries no payment link (there is none to print);
- sending an open invoice by email makes a NEW link by default (``include_link``), printed in
  the PDF and added to the message; the link given before stops working, as with "New payment
  link". Unticked, the invoice's link is left alone and neither the PDF nor the email has one.

A draft may be downloaded as a preview, watermarked "DRAFT" (and a cancelled invoice
"CANCELLED"); a draft or a cancelled invoice is never kept on the timeline nor sent.

A PDF is rendered outside the write transaction (a render takes about a second; on SQLite a
write use case holds the database's write lock); the write compares what it would print with
what was rendered and renders again only when the invoice changed in between.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from crm_invoicing import rules, service, tokens
from crm_invoicing.models import Invoice, Kind, Status
from crm_invoicing.schemas import load
from crmcore.context import use_case
from crmcore.errors import Conflict, ValidationFailed
from crmcore.lists.schemas import Text, WholeNumber
from crmcore.money import LineAmounts, document_totals
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.messaging.models import Message
    from crmcore.timeline.models import Attachment

TEMPLATE = "invoicing/document.html"
#: what may be kept on the timeline and sent: issued documents (a credit note is "active")
SENDABLE = (Status.ACTIVE.value, Status.PARTLY_PAID.value, Status.PAID.value, Status.CREDITED.value)
#: a preview of these carries the word across every page
WATERMARKS = {Status.DRAFT.value: "DRAFT", Status.CANCELLED.value: "CANCELLED"}
MESSAGE_MAX = 20_000


class SendInput(Schema):
    """An email with the invoice: to a contact of the party, else a typed address, else the
    invoice's contact (or the party's own address)."""

    class Meta:
        unknown = RAISE

    contact_id = WholeNumber(load_default=None, allow_none=True, validate=validate.Range(min=1))
    to = Text(320, load_default=None)
    subject = Text(300, load_default=None)
    message = Text(MESSAGE_MAX, load_default=None)
    include_link = fields.Boolean(load_default=True)


def filename(view: service.InvoiceView) -> str:
    """``INV26-0007.pdf``: the number, kept to characters safe in any file name (a draft has none)."""
    record = view.record
    ref = re.sub(r"[^A-Za-z0-9._-]+", "-", record.reference or "").strip("-.")
    kind = "credit-note" if view.invoice.kind == Kind.CREDIT_NOTE else "invoice"
    return f"{ref or f'draft-{kind}-{record.id}'}.pdf"


def _title(view: service.InvoiceView) -> str:
    return "Credit note" if view.invoice.kind == Kind.CREDIT_NOTE else "Invoice"


def _bill_to(ctx: Context, view: service.InvoiceView) -> dict[str, Any] | None:
    """The billing snapshot taken at issue; a draft shows the party as it is now."""
    from crmcore.parties import service as parties

    record, invoice = view.record, view.invoice
    if record.party_id is None:
        return None
    party = parties.party_details(ctx, record.party_id)
    contact = next((c["contact"].name for c in party["contacts"] if c["contact"].id == record.contact_id), None)
    name, address = invoice.billing_name, invoice.billing_address
    if invoice.status == Status.DRAFT or not name:
        name, address = party["party"].name, service._billing_address(ctx, record.party_id)
    return {"name": name, "address": address, "contact": contact, "tax_id": party["party"].tax_id}


def document_context(ctx: Context, view: service.InvoiceView, link: str | None = None) -> dict[str, Any]:
    """What ``invoicing/document.html`` prints: the standard context of crmcore.documents plus
    the amounts paid and due, the watermark and the payment link (when one is given)."""
    record, invoice = view.record, view.invoice
    credit_note = invoice.kind == Kind.CREDIT_NOTE
    amounts = [LineAmounts(net=line.net_amount, tax=line.tax_amount, total=line.total_amount, tax_rate=line.tax_rate)
               for line in view.lines]
    dates: list[tuple[str, Any]] = [("Credit note date" if credit_note else "Invoice date", invoice.issue_date)]
    if not credit_note:
        dates.append(("Due date", invoice.due_date))
    days = invoice.payment_terms_days if invoice.payment_terms_days is not None \
        else service.settings(ctx).payment_terms_days
    issued = invoice.status != Status.DRAFT
    status = invoice.status
    settlement = None
    if not credit_note and status not in WATERMARKS:
        settlement = {"credited": invoice.credited_amount, "paid": invoice.paid_amount,
                      "balance": max(view.balance, rules.ZERO)}
    return {
        "document": {"title": _title(view), "number": record.reference, "dates": dates,
                     "reference": view.credited_invoice[0].reference if view.credited_invoice else None},
        "bill_to": _bill_to(ctx, view), "ship_to": None, "currency": invoice.currency,
        "lines": [{"description": line.description, "quantity": line.quantity, "unit": line.unit,
                   "unit_price": line.unit_price, "discount_percent": line.discount_percent,
                   "tax_rate": line.tax_rate, "net": line.net_amount} for line in view.lines],
        "totals": document_totals(amounts, invoice.currency),
        "settlement": settlement,
        "payment_terms": None if credit_note else (
            f"Payable within {days} days" + ("" if issued else " of the invoice date") + " without deduction."),
        "due_date": None if credit_note else invoice.due_date,
        "paid_in_full": status in (Status.PAID.value, Status.CREDITED.value),
        "pay_link": link,
        "notes": invoice.customer_note,
        "labels": {"notes": "Reason" if credit_note else "Notes", "reference": "Credits invoice"},
        "watermark": WATERMARKS.get(status),
    }


@use_case(Role.READ_ONLY, write=False)
def render(ctx: Context, record_id: int) -> tuple[str, bytes]:
    """The PDF as the document is now: ``(filename, bytes)``; nothing is stored. A draft is
    a watermarked preview."""
    from crmcore.documents import render_pdf

    view = service.get_invoice(ctx, record_id)
    return filename(view), render_pdf(ctx, TEMPLATE, document_context(ctx, view))


def check_sendable(view: service.InvoiceView, what: str = "sent") -> None:
    """Only issued documents leave the business: a draft or a cancelled invoice is refused."""
    if view.invoice.status not in SENDABLE:
        label = f"{_title(view).lower()} {view.record.reference or view.record.id}"
        status = view.invoice.status.replace("_", " ")
        raise Conflict(f"{label} is {status}: only an issued invoice or credit note can be {what}"
                       + (" (issue it first)" if view.invoice.status == Status.DRAFT else ""))


@use_case(Role.READ_ONLY, write=False)
def prepare(ctx: Context, record_id: int, *, link: str | None = None,
            check: str = "kept") -> tuple[dict[str, Any], bytes]:
    """The document's context and PDF, rendered outside any write transaction, once the
    document is known to be sendable (no PDF is rendered for nothing)."""
    from crmcore.documents import render_pdf

    view = service.get_invoice(ctx, record_id)
    check_sendable(view, check)
    context = document_context(ctx, view, link)
    return context, render_pdf(ctx, TEMPLATE, context)


def _lock(ctx: Context, record_id: int, what: str) -> service.InvoiceView:
    """The document with its row locked for this transaction (as every invoice change does)."""
    view = service.get_invoice(ctx, record_id)
    if view.record.archived_at is not None:
        raise Conflict(f"{_title(view).lower()} {view.record.reference} is archived; restore it first")
    ctx.session.scalar(select(Invoice.id).where(Invoice.record_id == record_id).with_for_update())
    view = service.get_invoice(ctx, record_id)
    check_sendable(view, what)
    return view


def _store(ctx: Context, view: service.InvoiceView, summary: str, link: str | None,
           prepared: tuple[dict[str, Any], bytes] | None) -> Attachment:
    """Keep the PDF on the timeline: the one prepared when what it prints is still what the
    document says (compared in this transaction), else rendered again here."""
    from crmcore.documents import render_pdf, store_pdf

    context = document_context(ctx, view, link)
    pdf = prepared[1] if prepared is not None and prepared[0] == context else render_pdf(ctx, TEMPLATE, context)
    return store_pdf(ctx, record_id=view.record.id, filename=filename(view), pdf=pdf, summary=summary)


def generate(ctx: Context, record_id: int) -> Attachment:
    """Render the PDF (no payment link) and keep it on the document's timeline."""
    ctx.require(Role.MEMBER)
    return _generate(ctx, record_id, prepare(ctx, record_id))


@use_case(Role.MEMBER)
def _generate(ctx: Context, record_id: int, prepared: tuple[dict[str, Any], bytes]) -> Attachment:
    view = _lock(ctx, record_id, "kept")
    return _store(ctx, view, f"PDF of {_title(view).lower()} {view.record.reference}", None, prepared)


# --------------------------------------------------------------------------------------------
# sending


def recipients(ctx: Context, view: service.InvoiceView) -> dict[int, dict[str, Any]]:
    """The party's active contacts one may send to: id -> {name, email (primary first)}."""
    from crmcore.parties import service as parties

    if view.record.party_id is None:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for item in parties.party_details(ctx, view.record.party_id)["contacts"]:
        emails = sorted((m for m in item["mechanisms"] if m.kind == "email"), key=lambda m: (not m.is_primary, m.position))
        out[item["contact"].id] = {"name": item["contact"].name, "email": emails[0].value if emails else None}
    return out


def _recipient(ctx: Context, view: service.InvoiceView, values: Mapping[str, Any]) -> tuple[str, int | None, str | None]:
    """(address, contact id, name to greet): the chosen contact, else the typed address, else
    the invoice's contact, else the party's own email. ValidationFailed names the field."""
    from crmcore.messaging.service import normalize_address

    contacts = recipients(ctx, view)
    chosen = values.get("contact_id")
    if chosen is not None and chosen not in contacts:
        message = f"contact {chosen} is not an active contact of the invoice's party"
        raise ValidationFailed("invalid email: check contact_id", {"contact_id": [message]})
    contact_id = chosen if chosen is not None else (view.record.contact_id if view.record.contact_id in contacts else None)
    contact = contacts.get(contact_id) if contact_id is not None else None
    if values.get("to"):
        return normalize_address(ctx, "email", values["to"]), contact_id, None
    if chosen is not None and not (contact and contact["email"]):
        message = "the contact has no email address: type one"
        raise ValidationFailed(f"invalid email: {message}", {"to": [message]})
    address = contact["email"] if contact and contact["email"] else service.customer_email(ctx, view.record)
    if not address:
        message = "choose a contact with an email address or type one"
        raise ValidationFailed(f"invalid email: {message}", {"to": [message]})
    return address, contact_id, contact["name"] if contact and contact["email"] == address else None


def default_subject(ctx: Context, view: service.InvoiceView) -> str:
    return f"{_title(view)} {view.record.reference} from {ctx.business.name}"[:300]


def default_message(ctx: Context, view: service.InvoiceView, contact_name: str | None) -> str:
    invoice = view.invoice
    greeting = f"Dear {contact_name}," if contact_name else "Hello,"
    number = view.record.reference
    if invoice.kind == Kind.CREDIT_NOTE:
        about = (f"our credit note {number} ({service.money_text(-invoice.total_amount, invoice.currency)})"
                 + (f" for invoice {view.credited_invoice[0].reference}" if view.credited_invoice else ""))
    elif invoice.status in service.OPEN:
        due = f", due on {invoice.due_date:%Y-%m-%d}" if invoice.due_date else ""
        about = (f"our invoice {number}: {service.money_text(view.balance, invoice.currency)} to pay{due}")
    else:
        about = f"our invoice {number} ({service.money_text(invoice.total_amount, invoice.currency)}, settled)"
    return f"{greeting}\n\nPlease find attached {about}.\n\nThank you for your business.\n\n{ctx.business.name}\n"


def offers_link(view: service.InvoiceView) -> bool:
    """Whether a send may carry a (new) payment link: an invoice with a balance to pay."""
    return view.invoice.kind == Kind.INVOICE and view.invoice.status in service.OPEN


def send(ctx: Context, record_id: int, data: Mapping[str, Any] | None = None) -> Message:
    """Email the invoice or credit note with its PDF attached: ``contact_id`` (a contact of
    the party), ``to`` (a typed address, used instead), ``subject``, ``message`` and
    ``include_link`` (default true: an open invoice gets a new payment link, printed in the
    PDF and added to the message; the old link stops working). Only issued documents; the PDF
    is kept on the timeline, the email goes through the outbox and is in the message log.
    Refused input (ValidationFailed naming the field, Conflict for a draft) writes nothing."""
    ctx.require(Role.MEMBER)
    values = load(SendInput, data or {}, "email")
    view = service.get_invoice(ctx, record_id)
    check_sendable(view)
    _recipient(ctx, view, values)  # before rendering: refused input renders nothing
    token = link = None
    if values["include_link"] and offers_link(view):
        token = tokens.new_token()
        link = service.pay_url(ctx, token[0])
        token = token if link else None
    prepared = prepare(ctx, record_id, link=link, check="sent")
    return _send(ctx, record_id, values, token, link, prepared)


@use_case(Role.MEMBER)
def _send(ctx: Context, record_id: int, values: dict[str, Any], token: tuple[str, str, str] | None,
          link: str | None, prepared: tuple[dict[str, Any], bytes]) -> Message:
    from crmcore.messaging.service import send_email
    from crmcore.timeline.service import log_event

    view = _lock(ctx, record_id, "sent")
    record, invoice = view.record, view.invoice
    to, contact_id, name = _recipient(ctx, view, values)
    if token is not None and not offers_link(view):  # paid in the meantime: nothing to pay
        token = link = None
    number = record.reference
    if token is not None:
        invoice.token_prefix, invoice.token_hash = token[1], token[2]
        log_event(ctx, "invoice_link_renewed", f"New payment link for invoice {number} (sent to {to})",
                  record_id=record.id, party_id=record.party_id, ref_type="record", ref_id=record.id)
    attachment = _store(ctx, view, f"PDF of {_title(view).lower()} {number}, sent to {to}", link, prepared)
    text = values["message"] or default_message(ctx, view, name)
    if link:
        text = f"{text.rstrip()}\n\nPay online: {link}\n"
    message = send_email(ctx, to=to, subject=values["subject"] or default_subject(ctx, view), text=text,
                         party=record.party_id, contact=contact_id, record=record.id, attachments=[attachment.id],
                         to_name=name)
    log_event(ctx, "invoice_sent", f"{_title(view)} {number} sent to {to}", record_id=record.id,
              party_id=record.party_id, ref_type="record", ref_id=record.id)
    return message
