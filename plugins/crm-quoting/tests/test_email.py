"""Sending a quote all the way: the PDF rendered by crmcore.documents and kept on the quote's
timeline, the email queued through the outbox and handed by the real ``crm-email-smtp``
transport to an aiosmtpd server on 127.0.0.1, with the PDF attached; the send is in the
message log and on the timeline, and the quote is sent."""

from __future__ import annotations

import io
from decimal import Decimal as D

import pytest
from crm_catalog import service as catalog
from crm_quoting import documents, expiry, service
from pypdf import PdfReader
from sqlalchemy import text

from crmcore.errors import Conflict, ValidationFailed
from crmcore.messaging.service import list_messages
from crmcore.plugins.service import enable_plugin
from crmcore.timeline.service import feed

from .conftest import line, new_contact, new_party, new_product  # noqa: TID252


def pdf_text(data: bytes) -> str:
    """The PDF's text, its whitespace collapsed (labels are printed in capitals by the stylesheet)."""
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


@pytest.fixture
def smtp(q, smtp_server):
    """crmcore.testing's SMTP server, with the SMTP transport of ``acme`` pointed at it."""
    enable_plugin(q, "email-smtp", {"host": smtp_server.host, "port": smtp_server.port, "security": "none",
                                    "from_address": "sales@acme.example", "from_name": "Acme Sales", "timeout": 5})
    return smtp_server


def test_a_quote_is_emailed_with_its_pdf_to_a_real_smtp_server(q, smtp):
    party = new_party(q, "Jürgen Müller Farms")
    contact = new_contact(q, party, "Ann Buyer", "ann@buyer.example")
    tractor = new_product(q, sku="TR-100", name="Tractor T100", unit_price=D("50000"), tax_rate=D(21))
    catalog.add_special_price(q, {"party_id": party.id, "product_id": tractor.id, "unit_price": "45000"})
    record = service.create_quote(q, {"party_id": party.id, "contact_id": contact.id, "terms": "Delivery in 4 weeks",
                                      "lines": [{"product_id": tractor.id}, line(description="Delivery")]})
    message = service.send_quote(q, record.id)
    assert message.status in ("queued", "sent")
    (arrived,) = smtp.messages
    assert smtp.envelopes[0].rcpt_tos == ["ann@buyer.example"]
    assert arrived["From"] == "Acme Sales <sales@acme.example>"
    assert arrived["Subject"] == f"Quote {record.reference} from Acme Equipment"
    body = arrived.get_body(("plain",)).get_content()
    assert "Dear Ann Buyer" in body and "EUR 54,571.00" in body
    (attachment,) = list(arrived.iter_attachments())
    assert attachment.get_filename() == f"{record.reference}.pdf"
    assert attachment.get_content_type() == "application/pdf"
    pdf = attachment.get_content()
    assert pdf.startswith(b"%PDF-")
    printed = pdf_text(pdf)
    for expected in (record.reference, "Jürgen Müller Farms", "Tractor T100", "Delivery", "€45,100.00",
                     "€54,571.00", "Delivery in 4 weeks", "VALID UNTIL"):
        assert expected in printed, expected
    # recorded: the quote is sent, the PDF and the email are on its timeline, the log has the email
    q.session.rollback()
    view = service.get_quote(q, record.id)
    assert view.status == "sent" and view.quote.sent_at is not None and view.quote.pdf_attachment_id is not None
    summaries = [e.summary for e in feed(q, record_id=record.id).items]
    assert any(s == f"Quote {record.reference} sent to ann@buyer.example" for s in summaries)
    assert any(s.startswith("Email to ann@buyer.example") for s in summaries)
    logged = list_messages(q, {"record_id": record.id}).items
    assert [(m.to_address, m.status, m.attachments[0]["filename"]) for m in logged] == \
        [("ann@buyer.example", "sent", f"{record.reference}.pdf")]
    # sent again (to a typed address): a second email, still one expiry job
    service.send_quote(q, record.id, {"to": "boss@buyer.example", "subject": "Our quote", "message": "See attached"})
    assert [e.rcpt_tos for e in smtp.envelopes] == [["ann@buyer.example"], ["boss@buyer.example"]]
    assert smtp.messages[1].get_body(("plain",)).get_content().strip() == "See attached"
    with q.crm.db.engine.connect() as conn:
        assert conn.execute(text("select count(*) from outbox where kind = :k"), {"k": expiry.KIND}).scalar() == 1


def test_what_cannot_be_sent(q, smtp):
    party = new_party(q)
    silent = new_contact(q, party, "No Mail", None)
    record = service.create_quote(q, {"party_id": party.id, "contact_id": silent.id, "lines": [line()]})
    with pytest.raises(ValidationFailed) as exc:
        service.send_quote(q, record.id)
    assert "no email address" in exc.value.errors["to"][0]
    for data, field in (({"to": "not an address"}, "to"), ({"contact_id": 10**9}, "contact_id"),
                        ({"subject": "x" * 301}, "subject")):
        with pytest.raises(ValidationFailed) as exc:
            service.send_quote(q, record.id, data)
        assert field in exc.value.errors, exc.value.errors
    empty = service.create_quote(q, {"party_id": party.id, "lines": []})
    with pytest.raises(Conflict, match="no lines"):
        service.send_quote(q, empty.id, {"to": "a@b.example"})
    service.refuse_quote(q, record.id, "No")
    with pytest.raises(Conflict):
        service.send_quote(q, record.id, {"to": "a@b.example"})
    assert smtp.messages == []
    assert service.get_quote(q, record.id).quote.pdf_attachment_id is None  # nothing kept either


def test_the_pdf_shows_the_version_addresses_and_escapes_values(q):
    party = new_party(q, "Ölmühle <GmbH>")
    first = service.create_quote(q, {
        "party_id": party.id, "intro": "Thank you for <asking>",
        "billing_address": {"line1": "Mühlweg 1", "postal_code": "1000", "city": "Brussels", "country": "BE"},
        "shipping_address": {"line1": "Depot 9", "city": "Antwerp", "country": "BE"},
        "lines": [line(description="Oil press <deluxe>", discount_percent="10")]})
    second = service.new_version(q, first.id)
    name, data = documents.render(q, second.id)
    printed = pdf_text(data)
    assert name == f"{second.reference}.pdf"
    for expected in ("Ölmühle <GmbH>", "Mühlweg 1", "Depot 9", "Antwerp", "Oil press <deluxe>",
                     "Thank you for <asking>", f"VERSION 2 (replaces {first.reference})", "€90.00", "€108.90"):
        assert expected in printed, expected


def test_a_pdf_rendered_before_a_change_is_rendered_again(q, smtp):
    from crmcore.timeline.service import open_attachment

    record = service.create_quote(q, {"party_id": new_party(q).id, "lines": [line(description="Old words")]})
    prepared = documents.prepare(q, record.id)  # outside the sending transaction
    assert "Old words" in pdf_text(prepared[1])
    (old,) = service.get_quote(q, record.id).lines
    service.update_line(q, old.id, {"description": "New words"})  # meanwhile, someone edits it
    documents.send(q, record.id, {"to": "ann@buyer.example"}, prepared)
    _attachment, path = open_attachment(q, service.get_quote(q, record.id).quote.pdf_attachment_id)
    stored = pdf_text(path.read_bytes())
    assert "New words" in stored and "Old words" not in stored
    assert "New words" in pdf_text(smtp.messages[0].get_payload()[1].get_content())
