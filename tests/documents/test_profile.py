"""The business profile: validated fields (tax id by country with python-stdnum, phone, email,
website, bank details), admins only, partial updates; the logo checked by its content, stored
under the instance folder and following the transaction; the schema migration."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmcore.documents import business_profile, default_paper_size, document_locale, set_logo, update_profile
from crmcore.documents import logo as logos
from crmcore.documents.profile import address_lines, check_tax_id, load_profile
from crmcore.errors import PermissionDenied, ValidationFailed

# -- fields -----------------------------------------------------------------------------------


def test_a_full_profile_is_stored_and_normalized(ctx, helpers):
    profile = update_profile(ctx, {**helpers.PROFILE, "tax_id": "de 136 695 976", "phone": "030 1234567",
                                   "website": "acme.example", "country": "de"})
    assert profile.tax_id == "DE136695976"
    assert profile.phone == "+49 30 1234567"
    assert profile.website == "https://acme.example"
    assert profile.country == "DE"
    assert profile.display_name == "Acme Equipment GmbH"
    assert profile.address == ["Hauptstraße 5", "10115 Berlin", "Germany"]
    assert profile.bank_lines == ["Berliner Bank", "IBAN DE89 3704 0044 0532 0130 00", "BIC COBADEFFXXX"]
    assert business_profile(ctx) == profile


def test_an_update_changes_only_the_fields_given_and_empty_clears(profile_ctx):
    update_profile(profile_ctx, {"city": "Potsdam", "email": ""})
    profile = business_profile(profile_ctx)
    assert profile.city == "Potsdam" and profile.email is None
    assert profile.legal_name == "Acme Equipment GmbH" and profile.tax_id == "DE136695976"


@pytest.mark.parametrize(("country", "tax_id", "stored"), [
    ("DE", "DE136695976", "DE136695976"),
    ("DE", "136695976", "DE136695976"),           # the prefix is added in an EU country
    ("FR", "FR40303265045", "FR40303265045"),
    ("GR", "EL094259216", "EL094259216"),          # Greece's VAT prefix is EL
    ("GB", "gb 980 7806 84", "GB 980 7806 84"),    # checked by stdnum, kept as written
    ("NO", "NO 995 525 828 MVA", "NO 995 525 828 MVA"),
    (None, "DE136695976", "DE136695976"),          # an EU VAT number is checked without a country
    ("KE", "P051234567A", "P051234567A"),          # no validator: free text
    (None, "12-3456789 (state)", "12-3456789 (state)"),
])
def test_tax_ids_valid_for_their_country(ctx, country, tax_id, stored):
    assert update_profile(ctx, {"country": country, "tax_id": tax_id}).tax_id == stored


@pytest.mark.parametrize(("country", "tax_id", "message"), [
    ("DE", "DE136695977", "checksum"),
    ("DE", "DE1366", "length"),
    ("DE", "FR40303265045", "business is in DE"),
    ("FR", "FR00000000000", "not a valid EU VAT"),
    ("GB", "GB980780685", "not a valid tax number for GB"),
    ("NO", "995 525 828", "not a valid tax number for NO"),
    ("US", "12-345", "not a valid tax number for US"),
    ("KE", "x" * 41, "at most 40"),
])
def test_bad_tax_ids_are_refused_naming_the_field(ctx, country, tax_id, message):
    with pytest.raises(ValidationFailed) as exc:
        update_profile(ctx, {"country": country, "tax_id": tax_id, "city": "Somewhere"})
    assert list(exc.value.errors) == ["tax_id"]
    assert message in " ".join(exc.value.errors["tax_id"])
    assert business_profile(ctx).city is None  # nothing of the form was written


def test_a_tax_id_alone_is_checked_against_the_stored_country(profile_ctx):
    with pytest.raises(ValidationFailed) as exc:
        update_profile(profile_ctx, {"tax_id": "FR40303265045"})
    assert "business is in DE" in exc.value.errors["tax_id"][0]
    assert update_profile(profile_ctx, {"tax_id": "136695976"}).tax_id == "DE136695976"
    assert business_profile(profile_ctx).country == "DE"


@pytest.mark.parametrize(("values", "field"), [
    ({"country": "XX"}, "country"),
    ({"country": "Germany"}, "country"),
    ({"email": "not-an-email"}, "email"),
    ({"website": "javascript:alert(1)"}, "website"),
    ({"website": "ftp://files.example"}, "website"),
    ({"phone": "call me"}, "phone"),
    ({"phone": "+49 1"}, "phone"),
    ({"paper_size": "A3"}, "paper_size"),
    ({"legal_name": "x" * 201}, "legal_name"),
    ({"postcode": "1" * 21}, "postcode"),
    ({"bank_details": "\n".join(["line"] * 9)}, "bank_details"),
    ({"bank_details": "x" * 1001}, "bank_details"),
    ({"bank_details": "IBAN\x07bell"}, "bank_details"),
    ({"city": "Ber\nlin"}, "city"),
])
def test_bad_fields_are_refused_naming_them(ctx, values, field):
    with pytest.raises(ValidationFailed) as exc:
        update_profile(ctx, values)
    assert field in exc.value.errors


def test_members_cannot_change_the_profile_but_may_read_it(make_user, business, ctx):
    member = make_user(business, "member")
    with pytest.raises(PermissionDenied):
        update_profile(member, {"city": "Berlin"})
    with pytest.raises(PermissionDenied):
        set_logo(member, io.BytesIO(b""))
    assert business_profile(member).name == "Acme Equipment"


def test_profiles_are_per_business(profile_ctx, other_ctx):
    assert business_profile(other_ctx).legal_name is None
    assert business_profile(other_ctx).tax_id is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60), country=st.sampled_from([None, "DE", "GB", "US", "KE", "JP", "BR"]))
def test_any_tax_id_text_is_stored_checked_or_refused(text, country):
    """Whatever is typed, the answer is a value that fits the column or a message for the field."""
    try:
        data = load_profile({"tax_id": text, "country": country})
    except ValidationFailed as exc:
        assert set(exc.errors) <= {"tax_id"} and exc.errors
        return
    stored = data["tax_id"]
    assert stored is None or (0 < len(stored) <= 40 and stored == stored.strip())


def test_paper_size_and_locale_defaults():
    assert default_paper_size("US") == "letter" and default_paper_size("mx") == "letter"
    assert default_paper_size("DE") == "a4" and default_paper_size("GB") == "a4"
    assert default_paper_size(None, "en") == "a4"
    assert default_paper_size(None, "en_US") == "letter"
    assert document_locale("de", "AT") == "de_AT"
    assert document_locale("de", "US") == "de"  # no such CLDR locale: the language alone
    assert document_locale("xx", None) == "en"
    assert document_locale(None, None) == "en"


def test_address_lines_follow_the_country():
    assert address_lines("1 Main St", None, "62701", "Springfield", "IL", "US") == \
        ["1 Main St", "Springfield, IL 62701", "United States"]
    assert address_lines("10 Downing St", None, "SW1A 2AA", "London", None, "GB", home_country="GB") == \
        ["10 Downing St", "London", "SW1A 2AA"]
    assert address_lines("Hauptstraße 5", "Hof", "10115", "Berlin", None, "DE", locale="de") == \
        ["Hauptstraße 5", "Hof", "10115 Berlin", "Deutschland"]
    assert address_lines() == []


def test_check_tax_id_directly():
    assert check_tax_id(" de136695976 ", "DE") == "DE136695976"
    with pytest.raises(ValueError, match="letters, digits"):
        check_tax_id("DE\x00136", "KE")


# -- logo -------------------------------------------------------------------------------------


def logo_files(ctx) -> list[str]:
    folder = logos.logo_folder(ctx)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_png_logo_is_stored_by_its_hash(ctx, helpers):
    data = helpers.image_bytes("PNG")
    profile = set_logo(ctx, io.BytesIO(data))
    assert profile.has_logo and profile.logo_file == f"{profile.logo_sha256}.png"
    assert logo_files(ctx) == [profile.logo_file]
    found = logos.read_logo(ctx, business_profile(ctx))
    assert found is not None and found.data == data and found.content_type == "image/png"


def test_replacing_and_removing_the_logo_removes_the_old_files(ctx, helpers):
    first = set_logo(ctx, io.BytesIO(helpers.image_bytes("PNG")))
    second = set_logo(ctx, io.BytesIO(helpers.image_bytes("JPEG")))
    assert second.logo_file.endswith(".jpg")
    assert logo_files(ctx) == [second.logo_file] != [first.logo_file]
    again = set_logo(ctx, io.BytesIO(helpers.image_bytes("JPEG")))  # the same image again
    assert again.logo_file == second.logo_file and logo_files(ctx) == [second.logo_file]
    removed = logos.remove_logo(ctx)
    assert not removed.has_logo and logo_files(ctx) == []
    assert logos.read_logo(ctx, business_profile(ctx)) is None


def test_logos_are_per_business(ctx, other_ctx, helpers):
    set_logo(ctx, io.BytesIO(helpers.image_bytes("PNG")))
    assert not business_profile(other_ctx).has_logo
    assert logo_files(other_ctx) == []


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.mark.parametrize(("data", "message"), [
    (SVG, "SVG"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
    (b"just some text, named logo.png", "not a PNG or JPEG"),
    (b"GIF89a\x01\x00\x01\x00", "not a PNG or JPEG"),
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "damaged"),
])
def test_what_is_not_a_png_or_jpeg_is_refused(ctx, data, message):
    with pytest.raises(ValidationFailed) as exc:
        set_logo(ctx, io.BytesIO(data))
    assert message in exc.value.errors["logo"][0]
    assert not business_profile(ctx).has_logo and logo_files(ctx) == []


def test_a_truncated_image_is_refused(ctx, helpers):
    data = helpers.image_bytes("PNG", (300, 300), noise=True)
    with pytest.raises(ValidationFailed, match="damaged"):
        set_logo(ctx, io.BytesIO(data[: len(data) // 2]))


def test_a_png_with_a_jpeg_inside_is_refused(ctx, helpers):
    forged = b"\x89PNG\r\n\x1a\n" + helpers.image_bytes("JPEG")
    with pytest.raises(ValidationFailed, match="damaged"):
        set_logo(ctx, io.BytesIO(forged))


def test_too_large_files_and_odd_sizes_are_refused(ctx, helpers):
    big = helpers.image_bytes("PNG", (700, 700), noise=True)
    assert len(big) > logos.MAX_BYTES
    with pytest.raises(ValidationFailed, match="larger than 1024 KB"):
        set_logo(ctx, io.BytesIO(big))
    with pytest.raises(ValidationFailed, match="at most 4000"):
        set_logo(ctx, io.BytesIO(helpers.image_bytes("PNG", (4200, 20))))
    with pytest.raises(ValidationFailed, match="at least 16"):
        set_logo(ctx, io.BytesIO(helpers.image_bytes("PNG", (200, 8))))
    assert logo_files(ctx) == []


def test_a_logo_saved_in_a_failing_transaction_leaves_no_file(ctx, helpers):
    from crmcore.context import use_case
    from crmcore.tenancy.models import Role

    @use_case(Role.ADMIN)
    def save_then_fail(context):
        set_logo(context, io.BytesIO(helpers.image_bytes("PNG")))
        raise ValidationFailed("later step failed")

    with pytest.raises(ValidationFailed, match="later step"):
        save_then_fail(ctx)
    assert logo_files(ctx) == [] and not business_profile(ctx).has_logo
