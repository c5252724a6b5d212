"""Invoices and credit notes as PDFs and by email, all the way: the PDF rendered by
crmcore.documents (read back with pypdf), kept on the timeline, the email queued through the
outbox and handed by the real ``crm-email-smtp`` transport to an aiosmtpd server on 127.0.0.1
with the PDF attached; a fresh payment link in both when asked; drafts watermarked and never
sent; bad input, roles and other businesses refused with nothing written."""

from __future__ import annotations

import io
import re

import pytest
from crm_invoicing import NAME, documents, service, tokens
from crm_invoicing.models import Invoice
from pypdf import PdfReader
from sqlalchemy import func, select

from crmcore.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crmcore.messaging.models import Message
from crmcore.messaging.service import list_messages
from crmcore.parties.contacts import create_contact
from crmcore.parties.service import create_party
from crmcore.plugins.service import enable_plugin
from crmcore.testing import CrmClient
from crmcore.timeline.models import Attachment, TimelineEvent
from crmcore.timeline.service import feed

from .conftest import line  # noqa: TID252


def pdf_text(data: bytes) -> str:
    """The PDF's text, its whitespace collapsed (labels are printed in capitals by the stylesheet)."""
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


@pytest.fixture
def smtp(inv, smtp_server):
    """crmcore.testing's SMTP server on 127.0.0.1, with the SMTP transport of ``acme`` pointed at it."""
    enable_plugin(inv, "email-smtp", {"host": smtp_server.host, "port": smtp_server.port, "security": "none",
                                      "from_address": "billing@acme.example", "from_name": "Acme Billing",
                                      "timeout": 5})
    return smtp_server


@pytest.fixture
def farm(inv):
    """A party with a non-ASCII name and a contact with an email; the party has none itself."""
    party = create_party(inv, {"kind": "organisation", "name": "Jürgen Müller Hof <GbR>", "currency": "EUR",
                               "addresses": [{"purpose": "billing", "line1": "Dorfstraße 7", "postal_code": "1010",
                                              "city": "Wien", "country": "AT", "is_default": True}]})
    contact = create_contact(inv, {"party_id": party.id, "first_name": "Zoë", "last_name": "Ångström",
                                   "mechanisms": [{"kind": "email", "value": "zoe@hof.example"}]})
    return party, contact


def issued(ctx, party, *lines, contact=None):
    record = service.create_invoice(ctx, {"party_id": party.id, "contact_id": contact.id if contact else None,
                                          "lines": list(lines) or [line()]})
    return service.activate_invoice(ctx, record.id)


def written(ctx) -> tuple[int, int, int, str]:
    """Attachments, messages, timeline events and the invoices' link hashes: what a refused
    send must leave as it was."""
    ctx.session.rollback()
    hashes = ",".join(sorted(h or "" for h in ctx.session.scalars(select(Invoice.token_hash))))
    return (ctx.session.scalar(select(func.count()).select_from(Attachment)),
            ctx.session.scalar(select(func.count()).select_from(Message)),
            ctx.session.scalar(select(func.count()).select_from(TimelineEvent)), hashes)


def test_an_open_invoice_is_emailed_with_its_pdf_and_a_new_payment_link(inv, farm, smtp):
    party, contact = farm
    done = issued(inv, party, line(description="Hufbeschlag für Pferde", quantity="3", unit_price="40.00"),
                  line(description="Futter", quantity="1", unit_price="100.00", tax_rate="9"), contact=contact)
    number = done.record.reference
    service.record_payment(inv, done.record.id, {"amount": "50.00", "method": "cash"})
    message = documents.send(inv, done.record.id)
    assert message.status in ("queued", "sent")
    (arrived,) = smtp.messages
    assert smtp.envelopes[0].rcpt_tos == ["zoe@hof.example"]
    assert arrived["Subject"] == f"Invoice {number} from Acme Equipment"
    body = arrived.get_body(("plain",)).get_content()
    # 3 x 40 = 120 + 21% = 145.20; 100 + 9% = 109.00; total 254.20, 50 paid: 204.20 left
    assert "Dear Zoë Ångström" in body and "204.20 EUR to pay" in body
    link = re.search(r"Pay online: (https://crm\.example\.test/pay/acme/(\S+))", body)
    assert link is not None
    (attachment,) = list(arrived.iter_attachments())
    assert attachment.get_filename() == f"{number}.pdf" and attachment.get_content_type() == "application/pdf"
    printed = pdf_text(attachment.get_content())
    for expected in ("Invoice", number, "Jürgen Müller Hof <GbR>", "Dorfstraße 7", "Zoë Ångström",
                     "Hufbeschlag für Pferde", "€254.20", "Tax 21% on €120.00", "Tax 9% on €100.00",
                     "Amount paid €50.00", "Balance due €204.20", "Payable within 14 days", link.group(1)):
        assert expected in printed, expected
    assert "DRAFT" not in printed
    # the new link is the invoice's link now; the one shown at issue no longer works
    inv.session.rollback()
    row = inv.session.scalar(select(Invoice).where(Invoice.record_id == done.record.id))
    assert tokens.matches(link.group(2), row.token_hash) and not tokens.matches(done.token, row.token_hash)
    # recorded: the PDF and the email on the timeline, the email in the message log
    summaries = [e.summary for e in feed(inv, record_id=done.record.id).items]
    assert f"Invoice {number} sent to zoe@hof.example" in summaries
    assert f"PDF of invoice {number}, sent to zoe@hof.example" in summaries
    assert f"New payment link for invoice {number} (sent to zoe@hof.example)" in summaries
    assert any(s.startswith("Email to zoe@hof.example") for s in summaries)
    logged = list_messages(inv, {"record_id": done.record.id}).items
    assert [(m.to_address, m.status, m.attachments[0]["filename"]) for m in logged] == \
        [("zoe@hof.example", "sent", f"{number}.pdf")]


def test_sent_without_a_link_to_a_typed_address_the_link_is_kept(inv, farm, smtp):
    party, contact = farm
    done = issued(inv, party, contact=contact)
    before = written(inv)[3]
    documents.send(inv, done.record.id, {"to": "Boss@Hof.example", "subject": "Your invoice",
                                         "message": "See attached", "include_link": False})
    (arrived,) = smtp.messages
    assert smtp.envelopes[0].rcpt_tos == ["Boss@hof.example"]  # the domain is normalised
    assert arrived["Subject"] == "Your invoice"
    assert arrived.get_body(("plain",)).get_content().strip() == "See attached"
    printed = pdf_text(next(arrived.iter_attachments()).get_content())
    assert "PAY ONLINE" not in printed.upper() and "/pay/" not in printed
    assert written(inv)[3] == before  # the link given at issue still works


def test_the_party_address_is_used_when_the_invoice_has_no_contact(inv, party, smtp):
    done = issued(inv, party)
    documents.send(inv, done.record.id)
    assert smtp.envelopes[0].rcpt_tos == ["billing@initech.example"]
    assert "Hello," in smtp.messages[0].get_body(("plain",)).get_content()


def test_a_draft_is_a_watermarked_preview_and_is_never_kept_or_sent(inv, farm, smtp):
    party, contact = farm
    record = service.create_invoice(inv, {"party_id": party.id, "contact_id": contact.id, "lines": [line()]})
    name, data = documents.render(inv, record.id)
    printed = pdf_text(data)
    assert name == f"draft-invoice-{record.id}.pdf"
    for expected in ("DRAFT", "Jürgen Müller Hof <GbR>", "Dorfstraße 7", "Consulting", "€121.00",
                     "Payable within 14 days of the invoice date"):
        assert expected in printed, expected
    assert "Balance due" not in printed and "DUE DATE" not in printed
    before = written(inv)
    for call in (lambda: documents.send(inv, record.id, {"to": "a@b.example"}),
                 lambda: documents.generate(inv, record.id)):
        with pytest.raises(Conflict, match="draft: only an issued invoice or credit note"):
            call()
    assert written(inv) == before
    service.cancel_invoice(inv, record.id)
    before = written(inv)
    assert "CANCELLED" in pdf_text(documents.render(inv, record.id)[1])
    with pytest.raises(Conflict, match="cancelled"):
        documents.send(inv, record.id, {"to": "a@b.example"})
    assert written(inv) == before and smtp.messages == []


def test_a_paid_invoice_and_its_credit_note(inv, party, smtp):
    done = issued(inv, party, line(quantity="1", unit_price="100.00"), line(description="Travel", unit_price="10",
                                                                             quantity="1"))
    service.record_payment(inv, done.record.id, {"amount": "133.10", "method": "bank_transfer"})
    documents.send(inv, done.record.id)  # paid: no link to make, even though include_link is true
    body = smtp.messages[0].get_body(("plain",)).get_content()
    assert "Pay online" not in body and "settled" in body
    printed = pdf_text(next(smtp.messages[0].iter_attachments()).get_content())
    assert "Balance due €0.00" in printed and "Settled in full" in printed and "/pay/" not in printed
    note = service.create_credit_note(inv, done.record.id, {"lines": [{"line_id": service.get_invoice(
        inv, done.record.id).lines[1].id, "quantity": "1"}], "reason": "Travel was free"})
    attachment = documents.generate(inv, note.id)
    from crmcore.timeline.service import open_attachment

    _row, path = open_attachment(inv, attachment.id)
    printed = pdf_text(path.read_bytes())
    for expected in ("Credit note", note.reference, f"CREDITS INVOICE {done.record.reference}", "Travel",
                     "-€12.10", "Travel was free"):
        assert expected in printed, expected
    assert "Balance due" not in printed and "Payable within" not in printed
    assert f"PDF of credit note {note.reference}" in [e.summary for e in feed(inv, record_id=note.id).items]
    documents.send(inv, note.id, {"to": "ap@initech.example"})
    assert smtp.messages[1]["Subject"] == f"Credit note {note.reference} from Acme Equipment"
    assert "credit note" in smtp.messages[1].get_body(("plain",)).get_content()


@pytest.mark.parametrize("data, field, words", [
    ({"to": "not an address"}, "to", ""),
    ({"to": "a@b.example", "subject": "x" * 301}, "subject", ""),
    ({"contact_id": 10**9}, "contact_id", "not an active contact"),
    ({"contact_id": "abc"}, "contact_id", ""),
    ({"to": "a@b.example", "bcc": "x@y.example"}, "bcc", ""),
    ({"include_link": "maybe"}, "include_link", ""),
])
def test_bad_input_names_the_field_and_writes_nothing(inv, farm, smtp, data, field, words):
    party, contact = farm
    done = issued(inv, party, contact=contact)
    before = written(inv)
    with pytest.raises(ValidationFailed) as exc:
        documents.send(inv, done.record.id, data)
    assert field in exc.value.errors and words in " ".join(exc.value.errors[field])
    assert written(inv) == before and smtp.messages == []


def test_no_address_anywhere_is_refused(inv, smtp):
    silent = create_party(inv, {"kind": "organisation", "name": "No Mail Ltd"})
    quiet = create_contact(inv, {"party_id": silent.id, "first_name": "Quiet"})
    done = issued(inv, silent, contact=quiet)
    before = written(inv)
    with pytest.raises(ValidationFailed) as exc:
        documents.send(inv, done.record.id)
    assert "choose a contact with an email address" in exc.value.errors["to"][0]
    with pytest.raises(ValidationFailed) as exc:
        documents.send(inv, done.record.id, {"contact_id": quiet.id})
    assert "no email address" in exc.value.errors["to"][0]
    assert written(inv) == before and smtp.messages == []


def test_a_refusal_inside_the_write_rolls_back_the_link_and_the_pdf(inv, farm, smtp):
    """The send's write transaction (new link, PDF kept, email queued) is all or nothing."""
    party, contact = farm
    done = issued(inv, party, contact=contact)
    before = written(inv)
    token = tokens.new_token()
    link = service.pay_url(inv, token[0])
    prepared = documents.prepare(inv, done.record.id, link=link, check="sent")
    values = documents.SendInput().load({"to": "bad address"})  # passes the schema, refused by the mailer
    with pytest.raises(ValidationFailed) as exc:
        documents._send(inv, done.record.id, values, token, link, prepared)
    assert "to" in exc.value.errors
    assert written(inv) == before and smtp.messages == []


def test_a_pdf_rendered_before_a_payment_is_rendered_again(inv, party, smtp):
    done = issued(inv, party)
    prepared = documents.prepare(inv, done.record.id, check="sent")  # outside the sending transaction
    assert "Amount paid €0.00" in pdf_text(prepared[1])
    service.record_payment(inv, done.record.id, {"amount": "21.00", "method": "cash"})  # meanwhile
    values = documents.SendInput().load({"to": "ap@initech.example", "include_link": False})
    documents._send(inv, done.record.id, values, None, None, prepared)
    printed = pdf_text(next(smtp.messages[0].iter_attachments()).get_content())
    assert "Amount paid €21.00" in printed and "Balance due €100.00" in printed


def test_roles_and_other_businesses(inv, party, make_user, business, other_ctx, smtp):
    done = issued(inv, party)
    reader = make_user(business, "read_only")
    name, data = documents.render(reader, done.record.id)  # reading is for everyone in the business
    assert data.startswith(b"%PDF-") and name == f"{done.record.reference}.pdf"
    before = written(inv)
    for call in (lambda: documents.send(reader, done.record.id, {"to": "a@b.example"}),
                 lambda: documents.generate(reader, done.record.id)):
        with pytest.raises(PermissionDenied):
            call()
    enable_plugin(other_ctx, NAME)
    for call in (lambda: documents.render(other_ctx, done.record.id),
                 lambda: documents.send(other_ctx, done.record.id, {"to": "a@b.example"}),
                 lambda: documents.generate(other_ctx, done.record.id)):
        with pytest.raises(NotFound):
            call()
    assert written(inv) == before and smtp.messages == []


# --------------------------------------------------------------------------------------------
# the pages


def body(response) -> str:
    return response.get_data(as_text=True)


def test_the_panel_the_download_and_the_send_page(inv, client, farm, smtp):
    party, contact = farm
    draft = service.create_invoice(inv, {"party_id": party.id, "contact_id": contact.id, "lines": [line()]})
    panel = body(client.get(f"/records/{draft.id}"))
    assert "draft preview" in panel and "Send by email" not in panel
    preview = client.get(f"/invoicing/{draft.id}/document.pdf")
    assert preview.status_code == 200 and preview.mimetype == "application/pdf"
    assert f'filename="draft-invoice-{draft.id}.pdf"' in preview.headers["Content-Disposition"]
    assert "DRAFT" in pdf_text(preview.data)
    refused = client.get(f"/invoicing/{draft.id}/send")
    assert refused.status_code == 303 and client.post(f"/invoicing/{draft.id}/send", {"to": "a@b.example"}).status_code == 303
    service.activate_invoice(inv, draft.id)
    number = service.get_invoice(inv, draft.id).record.reference
    panel = body(client.get(f"/records/{draft.id}"))
    assert "Send by email" in panel and "draft preview" not in panel
    page = body(client.get(f"/invoicing/{draft.id}/send"))
    assert f"Invoice {number} from Acme Equipment" in page and "Dear Zoë Ångström" in page
    assert "Include a new payment link" in page and f"{number}.pdf" in page
    bad = client.post(f"/invoicing/{draft.id}/send", {"to": "nope", "subject": "Kept <b>", "include_link": ["", "1"]})
    assert bad.status_code == 422
    assert "not an email address" in body(bad) and 'value="Kept &lt;b&gt;"' in body(bad)
    assert smtp.messages == []
    sent = client.post(f"/invoicing/{draft.id}/send", {"contact_id": str(contact.id), "subject": "", "message": "",
                                                        "include_link": ""})
    assert sent.status_code == 303
    (arrived,) = smtp.messages
    assert smtp.envelopes[0].rcpt_tos == ["zoe@hof.example"] and "Pay online" not in arrived.get_body(
        ("plain",)).get_content()
    kept = client.post(f"/invoicing/{draft.id}/pdf")
    assert kept.status_code == 303
    assert f"PDF of invoice {number}" in [e.summary for e in feed(inv, record_id=draft.id).items]


def test_pages_for_readers_and_other_businesses(inv, app, party, other_ctx, client):
    from crmcore.auth.service import create_user
    from crmcore.tenancy.service import add_member
    from crmcore.testing import TEST_PASSWORD

    done = issued(inv, party)
    create_user(inv.crm, "reader@acme.example", TEST_PASSWORD, name="Reader")
    add_member(inv, "reader@acme.example", "read_only")
    reader = CrmClient(app.test_client())
    assert reader.login("reader@acme.example").status_code == 302
    assert reader.get(f"/invoicing/{done.record.id}/document.pdf").status_code == 200
    panel = body(reader.get(f"/records/{done.record.id}"))
    assert "invoice-pdf" in panel and "Send by email" not in panel
    assert reader.get(f"/invoicing/{done.record.id}/send").status_code == 403
    assert reader.post(f"/invoicing/{done.record.id}/send", {"to": "a@b.example"}).status_code == 403
    assert reader.post(f"/invoicing/{done.record.id}/pdf").status_code == 403
    enable_plugin(other_ctx, NAME)
    theirs = issued(other_ctx, create_party(other_ctx, {"kind": "organisation", "name": "Theirs"}))
    for method, url in (("get", "document.pdf"), ("get", "send"), ("post", "send"), ("post", "pdf")):
        assert getattr(client, method)(f"/invoicing/{theirs.record.id}/{url}").status_code == 404, url
