"""store_pdf: a rendered document becomes an attachment on its record's timeline, with the
summary given, downloadable within its business only."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crmcore.documents import render_pdf, store_pdf
from crmcore.errors import NotFound, PermissionDenied, ValidationFailed
from crmcore.parties.service import create_party
from crmcore.records.service import create_record
from crmcore.testing import CrmClient
from crmcore.timeline import service as timeline
from crmcore.timeline.models import Attachment


@pytest.fixture
def deal(ctx):
    party = create_party(ctx, {"name": "Ørsted & Søn ApS"})
    return create_record(ctx, "deal", {"title": "Pumps for Ørsted", "party_id": party.id})


@pytest.fixture
def invoice_pdf(profile_ctx, helpers) -> bytes:
    return render_pdf(profile_ctx, "documents/standard.html", helpers.sample_context())


def attachment_files(ctx) -> list:
    folder = ctx.crm.config.attachments_path / str(ctx.business_id)
    return [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []


def test_the_pdf_is_kept_on_the_record_timeline(profile_ctx, deal, invoice_pdf, helpers):
    attachment = store_pdf(profile_ctx, record_id=deal.id, filename="INV-2026-0042", pdf=invoice_pdf,
                           summary="Invoice INV-2026-0042 issued")
    assert attachment.filename == "INV-2026-0042.pdf"
    assert attachment.content_type == "application/pdf"
    assert attachment.record_id == deal.id and attachment.party_id == deal.party_id
    row, path = timeline.open_attachment(profile_ctx, attachment.id)
    assert path.read_bytes() == invoice_pdf
    assert "INV-2026-0042" in helpers.pdf_text(path.read_bytes())
    events = timeline.feed(profile_ctx, record_id=deal.id).items
    line = next(e for e in events if e.ref_type == "attachment" and e.ref_id == attachment.id)
    assert line.summary == "Invoice INV-2026-0042 issued"
    # and on the party's feed, through its record
    party_events = timeline.feed(profile_ctx, party_id=deal.party_id).items
    assert any(e.ref_id == attachment.id for e in party_events)


def test_another_business_cannot_open_it(profile_ctx, other_ctx, deal, invoice_pdf):
    attachment = store_pdf(profile_ctx, record_id=deal.id, filename="quote.pdf", pdf=invoice_pdf,
                           summary="Quote Q-1 sent")
    with pytest.raises(NotFound):
        timeline.open_attachment(other_ctx, attachment.id)


def test_it_downloads_in_the_business_and_is_404_elsewhere(app, profile_ctx, deal, invoice_pdf, other_business):
    attachment = store_pdf(profile_ctx, record_id=deal.id, filename="Rechnung Müller.pdf", pdf=invoice_pdf,
                           summary="Invoice sent")
    mine = CrmClient(app.test_client())
    assert mine.login(f"owner@{profile_ctx.business.slug}.example").status_code == 302
    response = mine.get(f"/attachments/{attachment.id}")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf" and response.data == invoice_pdf
    assert "filename*=UTF-8''Rechnung%20M%C3%BCller.pdf" in response.headers["Content-Disposition"]
    theirs = CrmClient(app.test_client())
    assert theirs.login(f"owner@{other_business.slug}.example").status_code == 302
    assert theirs.get(f"/attachments/{attachment.id}").status_code == 404


def test_a_record_of_another_business_is_not_found_and_nothing_is_left(other_ctx, deal, invoice_pdf):
    with pytest.raises(NotFound):
        store_pdf(other_ctx, record_id=deal.id, filename="x.pdf", pdf=invoice_pdf, summary="x")
    assert other_ctx.session.scalar(select(func.count()).select_from(Attachment)) == 0
    assert attachment_files(other_ctx) == []


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"pdf": b"<html>not a pdf</html>"}, "pdf"),
    ({"pdf": "%PDF-1.7 as text"}, "pdf"),
    ({"summary": "   "}, "summary"),
])
def test_bad_input_is_refused_naming_the_field(profile_ctx, deal, invoice_pdf, kwargs, field):
    args = {"record_id": deal.id, "filename": "x.pdf", "pdf": invoice_pdf, "summary": "Invoice", **kwargs}
    with pytest.raises(ValidationFailed) as exc:
        store_pdf(profile_ctx, **args)
    assert field in exc.value.errors
    assert profile_ctx.session.scalar(select(func.count()).select_from(Attachment)) == 0
    assert attachment_files(profile_ctx) == []


def test_a_read_only_user_cannot_store(make_user, business, deal, invoice_pdf):
    reader = make_user(business, "read_only")
    with pytest.raises(PermissionDenied):
        store_pdf(reader, record_id=deal.id, filename="x.pdf", pdf=invoice_pdf, summary="Invoice")


def test_an_empty_name_becomes_document_pdf(profile_ctx, deal, invoice_pdf):
    attachment = store_pdf(profile_ctx, record_id=deal.id, filename="  ", pdf=invoice_pdf, summary="Order O-7")
    assert attachment.filename == "document.pdf"
