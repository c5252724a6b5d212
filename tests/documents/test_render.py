"""render_pdf: a document read back with pypdf has the business, the lines, the totals and
non-ASCII names; values are escaped; the logo is an image in the PDF; nothing outside the
document is fetched; paper size, locale and labels follow the business; plugin templates are
found with and without a request."""

from __future__ import annotations

import base64
import io
import logging

import pytest
from pypdf import PdfReader

from crmcore.documents import (
    business_profile,
    render_html,
    render_pdf,
    set_logo,
    update_profile,
)
from crmcore.documents import pdf as pdf_module
from crmcore.errors import ValidationFailed

STANDARD = "documents/standard.html"


def page_sizes(pdf: bytes) -> list[tuple[float, float]]:
    return [(round(float(p.mediabox.width), 1), round(float(p.mediabox.height), 1))
            for p in PdfReader(io.BytesIO(pdf)).pages]


def test_a_document_carries_the_business_lines_totals_and_non_ascii_names(profile_ctx, helpers):
    pdf = render_pdf(profile_ctx, STANDARD, helpers.sample_context())
    assert pdf.startswith(b"%PDF-")
    text = helpers.pdf_text(pdf)
    for expected in ("Acme Equipment GmbH", "Hauptstraße 5", "10115 Berlin", "DE136695976", "IBAN DE89 3704",
                     "Invoice", "INV-2026-0042", "Hydraulic pump HX-200", "Service visit", helpers.PARTY,
                     "Ørsted & Søn ApS", "København", "Warehouse Nord", "Payable within 14 days"):
        assert expected in text, expected
    assert "BILL TO" in text and "SHIP TO" in text  # the labels, upper-cased by the stylesheet
    # German money: 2 × 1.249,50 = 2.499,00; net 2.499,00 + 299,25 + 24,90 = 2.823,15
    assert "2.499,00 €" in text
    assert "2.823,15 €" in text
    # the tax summary by rate: 19 % on 2.798,25 = 531,67; 7 % on 24,90 = 1,74; total 3.356,56
    assert "19 % on 2.798,25 €" in text and "531,67 €" in text
    assert "7 % on 24,90 €" in text and "1,74 €" in text
    assert "3.356,56 €" in text
    assert "1 Mar 2026" in text  # English in Germany (en_DE): day first
    assert "Page 1 of 1" in text


def test_the_trading_name_stands_in_for_a_missing_legal_name(ctx, helpers):
    text = helpers.pdf_text(render_pdf(ctx, STANDARD, helpers.sample_context()))
    assert "Acme Equipment" in text and "GmbH" not in text


def test_values_are_escaped_not_markup(profile_ctx, helpers):
    context = helpers.sample_context(bill_to_name="<b>x</b>", notes="<script>alert(1)</script>")
    html = render_html(profile_ctx, STANDARD, context)
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "<script>" not in html
    text = helpers.pdf_text(render_pdf(profile_ctx, STANDARD, context))
    assert "<b>x</b>" in text  # shown as the text it is
    assert "<script>alert(1)</script>" in text


def test_labels_are_escaped_inside_the_page_counter(profile_ctx, helpers):
    labels = {"page": 'Seite "</style><p>x', "of": "von"}
    pdf = render_pdf(profile_ctx, STANDARD, helpers.sample_context(labels=labels))
    text = " ".join(helpers.pdf_text(pdf).split())
    assert 'Seite "</style><p>x 1 von 1' in text


def test_long_documents_number_their_pages_and_repeat_the_reference(profile_ctx, helpers):
    pdf = render_pdf(profile_ctx, STANDARD, helpers.sample_context(repeat=20))
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]
    assert len(pages) >= 2
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in text
        assert "Acme Equipment GmbH" in text  # the running footer
    assert "Invoice INV-2026-0042" in pages[1]


def test_the_logo_is_an_image_in_the_pdf(profile_ctx, helpers):
    assert helpers.pdf_images(render_pdf(profile_ctx, STANDARD, helpers.sample_context())) == 0
    set_logo(profile_ctx, io.BytesIO(helpers.image_bytes("PNG")))
    with_png = render_pdf(profile_ctx, STANDARD, helpers.sample_context())
    assert helpers.pdf_images(with_png) == 1
    set_logo(profile_ctx, io.BytesIO(helpers.image_bytes("JPEG", (300, 100))))
    assert helpers.pdf_images(render_pdf(profile_ctx, STANDARD, helpers.sample_context())) == 1


def test_an_altered_logo_file_is_left_out(profile_ctx, helpers):
    profile = set_logo(profile_ctx, io.BytesIO(helpers.image_bytes("PNG")))
    path = profile_ctx.crm.config.instance_path / "logos" / str(profile_ctx.business_id) / profile.logo_file
    path.write_bytes(helpers.image_bytes("PNG", (100, 100)))  # same name, other bytes
    pdf = render_pdf(profile_ctx, STANDARD, helpers.sample_context())
    assert helpers.pdf_images(pdf) == 0
    assert "Acme Equipment GmbH" in helpers.pdf_text(pdf)


def test_nothing_outside_the_document_is_fetched(profile_ctx, doc_plugin, recording_server, helpers, caplog):
    caplog.set_level(logging.INFO, logger="crmcore.documents")
    data_image = "data:image/png;base64," + base64.b64encode(helpers.image_bytes("PNG", (60, 60))).decode()
    context = helpers.sample_context(base=recording_server.url, data_image=data_image)
    pdf = render_pdf(profile_ctx, "testdocs/probe.html", context)
    assert recording_server.hits == []
    text = helpers.pdf_text(pdf)
    assert "Probe document for Ørsted & Søn ApS" in text  # it still rendered
    assert b"root:x:0:0" not in pdf and "root:" not in text
    reader = PdfReader(io.BytesIO(pdf))
    assert not reader.attachments  # no file was embedded through rel=attachment
    assert helpers.pdf_images(pdf) == 1  # the data: URI image, and only it
    refused = " ".join(r.getMessage() for r in caplog.records if "refused" in r.getMessage())
    for asked in ("/image.png", "/linked.css", "/imported.css", "/background.png", "file:///etc/passwd"):
        assert asked in refused, asked


def test_the_fetcher_serves_data_and_named_resources_only(recording_server):
    import urllib.request

    from crmcore.documents.fetcher import DocumentFetcher, RefusedURL

    fetcher = DocumentFetcher({"crm-document:logo": (b"\x89PNG...", "image/png")})
    assert fetcher("crm-document:logo").read() == b"\x89PNG..."
    assert fetcher("data:text/plain;base64,aMOpbGxv").read() == "héllo".encode()
    assert fetcher("data:,a%20b").read() == b"a b"
    for url in (recording_server.url + "/x.png", "file:///etc/passwd", "FILE:///etc/passwd", "ftp://127.0.0.1/x",
                "https://127.0.0.1/x", "crm-document:other", "data:no-comma"):
        with pytest.raises(RefusedURL):
            fetcher(url)
    with pytest.raises(RefusedURL):  # the opener interface goes through the same check
        fetcher.open(urllib.request.Request(recording_server.url + "/y.png"))
    assert recording_server.hits == []
    assert len(fetcher.refused) == 7


def test_the_local_server_does_record_a_real_request(recording_server):
    """The probe above would see a fetch: the server records what reaches it."""
    import urllib.request

    with urllib.request.urlopen(recording_server.url + "/seen.png", timeout=5) as response:
        assert response.status == 200
    assert recording_server.hits == ["/seen.png"]


def test_a_plugin_template_is_found_with_and_without_a_request(profile_ctx, doc_plugin, app, helpers):
    offline = helpers.pdf_text(render_pdf(profile_ctx, "testdocs/invoice.html", helpers.sample_context()))
    assert "Rendered by the testdocs plugin." in offline and "Test invoice" in offline
    with app.test_request_context("/"):
        online = helpers.pdf_text(render_pdf(profile_ctx, "testdocs/invoice.html", helpers.sample_context()))
    assert online == offline


def test_an_unknown_template_is_an_error_naming_it(profile_ctx, helpers):
    from jinja2 import TemplateNotFound

    with pytest.raises(TemplateNotFound, match="testdocs/missing.html"):
        render_pdf(profile_ctx, "testdocs/missing.html", helpers.sample_context())


@pytest.mark.parametrize(("country", "setting", "size"), [
    ("DE", None, (595.3, 841.9)),      # A4
    ("US", None, (612.0, 792.0)),      # Letter
    ("CA", None, (612.0, 792.0)),
    ("US", "a4", (595.3, 841.9)),      # the setting wins
    ("FR", "letter", (612.0, 792.0)),
])
def test_paper_size_follows_the_country_or_the_setting(ctx, helpers, country, setting, size):
    update_profile(ctx, {"country": country, "paper_size": setting})
    assert set(page_sizes(render_pdf(ctx, STANDARD, helpers.sample_context()))) == {size}


def test_a_german_business_prints_german_dates(profile_ctx, helpers):
    profile_ctx.session.get(type(profile_ctx.business), profile_ctx.business_id).language = "de"
    profile_ctx.session.commit()
    assert business_profile(profile_ctx).locale == "de_DE"
    text = helpers.pdf_text(render_pdf(profile_ctx, STANDARD, helpers.sample_context()))
    assert "01.03.2026" in text and "Deutschland" in text and "2.499,00 €" in text


def test_money_and_dates_follow_the_business_locale(ctx, helpers):
    update_profile(ctx, {"country": "US"})  # language "en" in the US: en_US
    assert business_profile(ctx).locale == "en_US"
    text = helpers.pdf_text(render_pdf(ctx, STANDARD, helpers.sample_context(currency="USD")))
    assert "$2,499.00" in text and "Mar 1, 2026" in text and "19% on $2,798.25" in text


def test_a_runaway_document_is_refused(profile_ctx, helpers, monkeypatch):
    monkeypatch.setattr(pdf_module, "MAX_PAGES", 1)
    with pytest.raises(ValidationFailed, match="pages"):
        render_pdf(profile_ctx, STANDARD, helpers.sample_context(repeat=20))
