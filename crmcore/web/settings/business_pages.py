"""The business profile page: who issues the business's documents (legal name, address, tax id,
contact, bank details, paper size) and its logo. Two forms: the profile, and the logo (a file
upload, replaced or removed)."""

from __future__ import annotations

from typing import Any

from flask import g, make_response, request

from crmcore.documents import logo as logos
from crmcore.documents import profile as profiles
from crmcore.errors import NotFound, ValidationFailed
from crmcore.web.settings.common import attempt, back, render
from crmcore.web.settings.views import bp

PROFILE_FORM = "business-profile"
LOGO_FORM = "business-logo"


@bp.get("/business", endpoint="business")
def business_index() -> Any:
    return business_page()


def business_page(status: int = 200, forms: dict[str, dict[str, Any]] | None = None) -> Any:
    profile = profiles.business_profile(g.ctx)
    countries = sorted(((code, name) for code, name in _country_names(profile.locale).items()),
                       key=lambda item: item[1])
    papers = [("", f"By the country ({profiles.PAPER_SIZES[profiles.default_paper_size(profile.country, profile.language)]})"),
              *((key, label) for key, label in profiles.PAPER_SIZES.items())]
    return render("settings/business.html", status, profile=profile, forms=forms or {}, countries=countries,
                  papers=papers, profile_form=PROFILE_FORM, logo_form=LOGO_FORM,
                  logo_max_kb=logos.MAX_BYTES // 1024, logo_sides=(logos.MIN_SIDE, logos.MAX_SIDE))


def _country_names(locale: str) -> dict[str, str]:
    from babel import Locale

    names = Locale.parse(locale).territories
    return {code: names.get(code, code) for code in profiles.COUNTRIES}


@bp.post("/business")
def save_business_profile() -> Any:
    values = {name: request.form[name] for name in profiles.FIELDS if name in request.form}
    return attempt(lambda: profiles.update_profile(g.ctx, values), business_page, PROFILE_FORM,
                   done="Business profile saved.", then=back("settings.business", PROFILE_FORM))


@bp.post("/business/logo")
def upload_logo() -> Any:
    upload = request.files.get("logo")

    def save() -> Any:
        if upload is None or not upload.filename:
            raise ValidationFailed("the logo was not saved: no file was chosen",
                                   {"logo": ["choose a PNG or JPEG image"]})
        return logos.set_logo(g.ctx, upload.stream)

    return attempt(save, business_page, LOGO_FORM,
                   done="Logo saved: documents show it from now on.", then=back("settings.business", LOGO_FORM))


@bp.post("/business/logo/remove")
def remove_logo() -> Any:
    return attempt(lambda: logos.remove_logo(g.ctx), business_page, LOGO_FORM,
                   done="Logo removed.", then=back("settings.business", LOGO_FORM))


@bp.get("/business/logo")
def logo_image() -> Any:
    """The stored logo, for the preview on this page (PNG or JPEG only, never run as a page)."""
    found = logos.read_logo(g.ctx, profiles.business_profile(g.ctx))
    if found is None:
        raise NotFound("this business has no logo")
    response = make_response(found.data)
    response.headers["Content-Type"] = found.content_type
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["ETag"] = f'"{found.sha256}"'
    return response
