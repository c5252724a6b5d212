"""The business profile settings page: admins only; the profile form shows errors beside the
fields and keeps what was typed; the logo form takes PNG or JPEG by content and refuses SVG,
renamed text files and large files beside its field; replace, preview and remove."""

from __future__ import annotations

import io
import re

import pytest

from crmcore.documents import business_profile
from crmcore.testing import CrmClient

URL = "/settings/business"
GOOD = {
    "legal_name": "Acme Equipment GmbH", "address_line1": "Hauptstraße 5", "address_line2": "",
    "postcode": "10115", "city": "Berlin", "region": "", "country": "DE", "tax_id": "DE 136 695 976",
    "email": "billing@acme.example", "phone": "030 1234567", "website": "acme.example",
    "bank_details": "Berliner Bank\r\nIBAN DE89 3704 0044 0532 0130 00", "paper_size": "",
}


def image(fmt: str = "PNG", size: tuple[int, int] = (120, 40), noise: bool = False) -> bytes:
    from PIL import Image

    if noise:
        import random

        rng = random.Random(3)
        picture = Image.frombytes("RGB", size, bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * 3)))
    else:
        picture = Image.new("RGB", size, (30, 90, 200))
    out = io.BytesIO()
    picture.save(out, fmt)
    return out.getvalue()


def body(response) -> str:
    return response.get_data(as_text=True)


def field_error(html: str, form: str, name: str) -> str | None:
    """The error text shown beside a field, by the id the form macros give it."""
    match = re.search(rf'id="{form}-{name}-err"[^>]*>([^<]*)<', html)
    return match.group(1) if match else None


def upload(client: CrmClient, data: bytes, filename: str, content_type: str = "image/png"):
    return client.post(f"{URL}/logo", {"logo": (io.BytesIO(data), filename, content_type)},
                       content_type="multipart/form-data")


def test_the_page_is_in_the_settings_menu_for_admins_only(client, make_user, business, app):
    page = client.get("/settings/")
    assert 'href="/settings/business"' in body(page)
    assert client.get(URL).status_code == 200
    member = make_user(business, "member")
    c = CrmClient(app.test_client())
    assert c.login(member.user.email).status_code == 302
    assert c.get(URL).status_code == 403
    assert c.post(URL, GOOD).status_code == 403
    assert upload(c, image(), "logo.png").status_code == 403
    assert business_profile(member).legal_name is None


def test_a_valid_profile_is_saved_and_shown_again(client, ctx):
    response = client.post(URL, GOOD)
    assert response.status_code == 302 and response.headers["Location"].endswith("#business-profile")
    profile = business_profile(ctx)
    assert profile.legal_name == "Acme Equipment GmbH" and profile.tax_id == "DE136695976"
    assert profile.phone == "+49 30 1234567" and profile.website == "https://acme.example"
    assert profile.bank_details == "Berliner Bank\nIBAN DE89 3704 0044 0532 0130 00"
    page = body(client.get(URL))
    assert 'value="Acme Equipment GmbH"' in page and 'value="DE136695976"' in page
    assert '<option value="DE" selected>' in page
    assert "Berliner Bank\nIBAN DE89" in page


def test_a_bad_tax_id_is_shown_beside_its_field_and_the_input_is_kept(client, ctx):
    response = client.post(URL, {**GOOD, "tax_id": "DE136695977", "city": "Potsdam"})
    assert response.status_code == 422
    page = body(response)
    assert "checksum" in field_error(page, "business-profile", "tax_id")
    assert 'aria-invalid="true" aria-describedby="business-profile-tax_id-err"' in page
    assert 'value="DE136695977"' in page and 'value="Potsdam"' in page  # what was typed, kept
    assert field_error(page, "business-profile", "city") is None
    assert business_profile(ctx).city is None  # nothing saved


def test_a_vat_number_of_another_country_is_refused(client):
    response = client.post(URL, {**GOOD, "country": "DE", "tax_id": "FR40303265045"})
    assert response.status_code == 422
    assert "business is in DE" in field_error(body(response), "business-profile", "tax_id")


@pytest.mark.parametrize(("name", "value"), [
    ("email", "nobody"), ("website", "javascript:alert(1)"), ("country", "ZZ"), ("phone", "call me"),
    ("paper_size", "a3"), ("legal_name", "x" * 201),
])
def test_each_bad_field_is_named_beside_it(client, name, value):
    response = client.post(URL, {**GOOD, name: value})
    assert response.status_code == 422
    assert field_error(body(response), "business-profile", name)


def test_markup_typed_into_the_form_is_shown_as_text(client):
    response = client.post(URL, {**GOOD, "legal_name": "<script>alert(1)</script>", "email": "bad"})
    assert response.status_code == 422
    page = body(response)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_png_logo_is_uploaded_previewed_replaced_and_removed(client, ctx, other_ctx, app):
    assert client.get(f"{URL}/logo").status_code == 404
    png = image("PNG")
    response = upload(client, png, "logo.png")
    assert response.status_code == 302 and response.headers["Location"].endswith("#business-logo")
    preview = client.get(f"{URL}/logo")
    assert preview.status_code == 200 and preview.mimetype == "image/png" and preview.data == png
    assert preview.headers["X-Content-Type-Options"] == "nosniff"
    assert 'src="/settings/business/logo?v=' in body(client.get(URL))
    jpeg = image("JPEG")
    assert upload(client, jpeg, "photo.jpeg", "image/jpeg").status_code == 302
    assert client.get(f"{URL}/logo").data == jpeg
    assert not business_profile(other_ctx).has_logo
    other = CrmClient(app.test_client())
    assert other.login(f"owner@{other_ctx.business.slug}.example").status_code == 302
    assert other.get(f"{URL}/logo").status_code == 404  # the other business has none, sees none
    assert client.post(f"{URL}/logo/remove").status_code == 302
    assert client.get(f"{URL}/logo").status_code == 404
    assert not business_profile(ctx).has_logo


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>'


@pytest.mark.parametrize(("data", "filename", "content_type", "says"), [
    (SVG, "logo.svg", "image/svg+xml", "SVG"),
    (SVG, "logo.png", "image/png", "SVG"),                      # renamed: judged by content
    (b"plain text pretending to be an image\n", "logo.png", "image/png", "not a PNG or JPEG"),
    (b"%PDF-1.4 not an image", "logo.jpg", "image/jpeg", "not a PNG or JPEG"),
])
def test_what_is_not_a_png_or_jpeg_is_refused_beside_the_field(client, ctx, data, filename, content_type, says):
    response = upload(client, data, filename, content_type)
    assert response.status_code == 422
    assert says in field_error(body(response), "business-logo", "logo")
    assert not business_profile(ctx).has_logo


def test_a_too_large_logo_is_refused_beside_the_field(client, ctx):
    big = image("PNG", (700, 700), noise=True)
    assert len(big) > 1024 * 1024
    response = upload(client, big, "big.png")
    assert response.status_code == 422
    assert "larger than 1024 KB" in field_error(body(response), "business-logo", "logo")
    assert not business_profile(ctx).has_logo


def test_no_file_chosen_says_so(client):
    response = client.post(f"{URL}/logo", {}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "choose a PNG or JPEG" in field_error(body(response), "business-logo", "logo")


def test_a_member_cannot_see_the_logo_preview(client, make_user, business, app):
    assert upload(client, image(), "logo.png").status_code == 302
    member = make_user(business, "member")
    c = CrmClient(app.test_client())
    assert c.login(member.user.email).status_code == 302
    assert c.get(f"{URL}/logo").status_code == 403
