"""The quote as a PDF (crmcore.documents: the business profile, its logo, the standard lines and
totals) and sending it by email (crmcore.messaging: through the outbox, in the message log and
on the timeline, the PDF attached from the quote's timeline)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from crm_quoting.models import Status
from crm_quoting.schemas import SendInput, load
from crmcore.context import use_case
from crmcore.errors import ValidationFailed
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crm_quoting.quotes import QuoteView
    from crmcore.context import Context
    from crmcore.timeline.models import Attachment

TEMPLATE = "quoting/document.html"


def filename(view: QuoteView) -> str:
    """``QT26-0007.pdf``: the quote's number, kept to characters safe in any file name."""
    ref = re.sub(r"[^A-Za-z0-9._-]+", "-", view.record.reference or "").strip("-.") or f"quote-{view.record.id}"
    return f"{ref}.pdf"


def document_context(ctx: Context, view: QuoteView) -> dict[str, Any]:
    """What ``quoting/document.html`` prints: the standard document context of
    crmcore.documents plus the quote's texts and version."""
    from crmcore.parties import service as parties

    record, quote = view.record, view.quote
    party = parties.party_details(ctx, record.party_id) if record.party_id is not None else None
    contact = None
    if party is not None and quote.contact_id is not None:
        contact = next((c["contact"].name for c in party["contacts"] if c["contact"].id == quote.contact_id), None)
    bill_to = ship_to = None
    if party is not None:
        p = party["party"]
        bill_to = {"name": p.name, "address": quote.billing_address, "contact": contact, "tax_id": p.tax_id}
        if quote.shipping_address and quote.shipping_address != quote.billing_address:
            ship_to = {"name": p.name, "address": quote.shipping_address}
    dates: list[tuple[str, Any]] = [("Date", quote.quote_date), ("Valid until", quote.valid_until)]
    if view.revises is not None:  # text is printed as given
        dates.append(("Version", f"{quote.version} (replaces {view.revises.reference or view.revises.id})"))
    return {
        "document": {"title": "Quote", "number": record.reference, "intro": quote.intro, "dates": dates},
        "bill_to": bill_to, "ship_to": ship_to, "currency": quote.currency,
        "lines": [{"description": line.description, "detail": line.sku if line.product_id else None,
                   "quantity": line.quantity, "unit": line.unit, "unit_price": line.unit_price,
                   "discount_percent": line.discount_percent, "tax_rate": line.tax_rate, "net": line.net_amount}
                  for line in view.lines],
        "totals": view.totals, "notes": quote.terms, "labels": {"notes": "Terms"}, "title": record.title,
    }


@use_case(Role.READ_ONLY, write=False)
def render(ctx: Context, record_id: int) -> tuple[str, bytes]:
    """The quote's PDF as it is now: ``(filename, bytes)`` (nothing is stored)."""
    from crm_quoting.quotes import get_quote
    from crmcore.documents import render_pdf

    view = get_quote(ctx, record_id)
    return filename(view), render_pdf(ctx, TEMPLATE, document_context(ctx, view))


@use_case(Role.READ_ONLY, write=False)
def prepare(ctx: Context, record_id: int, *, check: str | None = None) -> tuple[dict[str, Any], bytes]:
    """The quote's document context and PDF, rendered outside any write transaction (a render
    takes about a second; on SQLite a write use case holds the database's write lock).
    ``check="send"``: first make sure the quote may be sent (no PDF is rendered for nothing)."""
    from crm_quoting.lifecycle import check_offerable
    from crm_quoting.quotes import get_quote
    from crmcore.documents import render_pdf

    view = get_quote(ctx, record_id)
    if check is not None:
        check_offerable(ctx, view.record, view.quote, check)
    context = document_context(ctx, view)
    return context, render_pdf(ctx, TEMPLATE, context)


def _store(ctx: Context, view: QuoteView, summary: str, prepared: tuple[dict[str, Any], bytes] | None) -> Attachment:
    """Keep the PDF on the quote's timeline: the one prepared if what it prints is still what
    the quote says (compared in this transaction), else rendered again here."""
    from crmcore.documents import render_pdf, store_pdf

    context = document_context(ctx, view)
    if prepared is not None and prepared[0] == context:
        pdf = prepared[1]
    else:
        pdf = render_pdf(ctx, TEMPLATE, context)
    attachment = store_pdf(ctx, record_id=view.record.id, filename=filename(view), pdf=pdf, summary=summary)
    view.quote.pdf_attachment_id = attachment.id
    ctx.session.flush()
    return attachment


def generate(ctx: Context, record_id: int) -> Attachment:
    """Render the quote's PDF and keep it on its timeline (the quote's last PDF)."""
    ctx.require(Role.MEMBER)
    return _generate(ctx, record_id, prepare(ctx, record_id))


@use_case(Role.MEMBER)
def _generate(ctx: Context, record_id: int, prepared: tuple[dict[str, Any], bytes]) -> Attachment:
    from crm_quoting.quotes import get_quote, writable

    writable(ctx, record_id)
    view = get_quote(ctx, record_id)
    return _store(ctx, view, f"PDF of quote {view.record.reference or view.record.id}", prepared)


def default_subject(ctx: Context, view: QuoteView) -> str:
    return f"Quote {view.record.reference or view.record.id} from {ctx.business.name}"[:300]


def default_message(ctx: Context, view: QuoteView, contact_name: str | None) -> str:
    from crm_quoting.rules import money_text

    quote = view.quote
    until = f", valid until {quote.valid_until:%Y-%m-%d}" if quote.valid_until else ""
    greeting = f"Dear {contact_name}," if contact_name else "Hello,"
    return (f"{greeting}\n\nPlease find attached our quote {view.record.reference or view.record.id} "
            f"({money_text(quote.total_amount, quote.currency)} including tax{until}).\n\n"
            f"We look forward to hearing from you.\n\n{ctx.business.name}\n")


def recipients(ctx: Context, view: QuoteView) -> dict[int, dict[str, Any]]:
    """The party's contacts one may send the quote to: id -> {name, email}."""
    from crm_quoting.quotes import contacts_of

    return contacts_of(ctx, view.record.party_id) if view.record.party_id is not None else {}


@use_case(Role.MEMBER)
def send(ctx: Context, record_id: int, data: dict[str, Any], prepared: tuple[dict[str, Any], bytes] | None) -> Any:
    """See :func:`crm_quoting.service.send_quote`; ``prepared`` is :func:`prepare`'s result."""
    from crm_quoting.lifecycle import check_offerable, record_sent
    from crm_quoting.quotes import get_quote, writable
    from crmcore.messaging.service import send_email

    values = load(SendInput, data, "email")
    record, quote = writable(ctx, record_id)
    check_offerable(ctx, record, quote, "send")
    view = get_quote(ctx, record.id)
    contacts = recipients(ctx, view)
    contact_id = values["contact_id"] if values["contact_id"] is not None else quote.contact_id
    if values["contact_id"] is not None and values["contact_id"] not in contacts:
        raise ValidationFailed("invalid email: check contact_id",
                               {"contact_id": [f"contact {values['contact_id']} is not a contact of the quote's party"]})
    contact = contacts.get(contact_id) if contact_id is not None else None
    to = values["to"] or (contact["email"] if contact else None)
    if not to:
        message = ("the contact has no email address: type one" if contact
                   else "choose a contact with an email address or type one")
        raise ValidationFailed(f"invalid email: {message}", {"to": [message]})
    name = contact["name"] if contact and not values["to"] else None
    attachment = _store(ctx, view, f"Quote {record.reference or record.id} sent to {to}", prepared)
    message = send_email(ctx, to=to, subject=values["subject"] or default_subject(ctx, view),
                         text=values["message"] or default_message(ctx, view, name), party=record.party_id,
                         contact=contact_id if contact else None, record=record.id, attachments=[attachment.id],
                         to_name=name)
    was = quote.status
    record_sent(ctx, record, quote, f"Quote sent to {to}" if was == Status.DRAFT.value else f"Quote sent again to {to}")
    return message
