"""The business profile: who issues the business's documents (legal name, address, tax id,
contact, bank details, paper size, logo).

The values live on the ``businesses`` row; :func:`business_profile` gives documents an
immutable snapshot of them with everything derived once (the address as lines, the country's
name, the locale money is formatted in, the effective paper size), so a template never reads
the ORM row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import phonenumbers
from babel import Locale, UnknownLocaleError
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from crmcore.audit import service as audit
from crmcore.context import Context, use_case
from crmcore.errors import ValidationFailed
from crmcore.tenancy.models import Business, Role

PAPER_SIZES: dict[str, str] = {"a4": "A4", "letter": "Letter"}
#: countries that print on US Letter; everyone else uses A4
LETTER_COUNTRIES = frozenset(["US", "CA", "MX", "PH", "CL", "CO", "VE", "GT", "CR", "PA", "DO", "SV", "NI", "HN", "PR", "BZ"])
#: Babel's ISO 3166-1 alpha-2 codes (its territory list also holds UN regions such as "150")
COUNTRIES = frozenset(code for code in Locale("en").territories if re.fullmatch(r"[A-Z]{2}", code)
                      and code not in ("ZZ", "XA", "XB", "QO", "EU", "EZ", "UN"))
TAX_ID_MAX = 40
BANK_DETAILS_MAX = 1000
BANK_DETAILS_LINES = 8

#: the profile's form fields, in form order (the logo has its own form)
FIELDS: tuple[str, ...] = ("legal_name", "address_line1", "address_line2", "postcode", "city", "region",
                           "country", "tax_id", "email", "phone", "website", "bank_details", "paper_size")


# --------------------------------------------------------------------------------------------
# derived values


def document_locale(language: str | None, country: str | None) -> str:
    """The Babel locale documents are formatted in: the business's language in its country
    when CLDR knows that pair (``de_AT``), else the language alone, else English."""
    language = (language or "en").replace("-", "_")
    candidates = [f"{language.split('_')[0]}_{country}"] if country else []
    candidates += [language, language.split("_")[0], "en"]
    for candidate in candidates:
        try:
            return str(Locale.parse(candidate))
        except (UnknownLocaleError, ValueError):
            continue
    return "en"


def default_paper_size(country: str | None, language: str | None = None) -> str:
    """Letter in the countries that use it, A4 elsewhere; without a country, the language's
    locale decides (``en_US`` prints on Letter)."""
    if country:
        return "letter" if country.upper() in LETTER_COUNTRIES else "a4"
    try:
        territory = Locale.parse((language or "en").replace("-", "_")).territory
    except (UnknownLocaleError, ValueError):
        territory = None
    return "letter" if territory in LETTER_COUNTRIES else "a4"


def country_name(country: str | None, locale: str = "en") -> str | None:
    if not country:
        return None
    try:
        return Locale.parse(locale).territories.get(country.upper(), country.upper())
    except (UnknownLocaleError, ValueError):
        return country.upper()


def address_lines(line1: str | None = None, line2: str | None = None, postcode: str | None = None,
                  city: str | None = None, region: str | None = None, country: str | None = None,
                  *, locale: str = "en", home_country: str | None = None) -> list[str]:
    """An address as the lines printed on an envelope, in the order the country writes them
    (``10115 Berlin`` in Germany, ``Springfield, IL 62701`` in the US, the postcode on its own
    line in the UK). The country's name is left out when it is ``home_country`` (a domestic
    address)."""
    country = (country or "").upper() or None
    lines = [line for line in (line1, line2) if line]
    if country in ("US", "CA", "AU"):
        place = ", ".join(p for p in (city, " ".join(p for p in (region, postcode) if p)) if p)
        lines.append(place)
    elif country in ("GB", "IE"):
        lines += [p for p in (city, region, postcode) if p]
    else:
        lines.append(" ".join(p for p in (postcode, city) if p))
        if region:
            lines.append(region)
    if country and country != (home_country or "").upper():
        lines.append(country_name(country, locale) or country)
    return [line.strip() for line in lines if line and line.strip()]


@dataclass(frozen=True)
class BusinessProfile:
    """What documents show of the business that issues them (an immutable snapshot)."""

    business_id: int
    name: str
    legal_name: str | None
    address_line1: str | None
    address_line2: str | None
    postcode: str | None
    city: str | None
    region: str | None
    country: str | None
    tax_id: str | None
    email: str | None
    phone: str | None
    website: str | None
    bank_details: str | None
    #: the stored choice: "a4", "letter" or None (by the country)
    paper_size_setting: str | None
    language: str
    currency: str
    timezone: str
    logo_file: str | None
    logo_sha256: str | None

    @property
    def display_name(self) -> str:
        """The name documents carry: the legal name when one is set."""
        return self.legal_name or self.name

    @property
    def locale(self) -> str:
        return document_locale(self.language, self.country)

    @property
    def paper_size(self) -> str:
        """The effective paper size, "a4" or "letter"."""
        return self.paper_size_setting or default_paper_size(self.country, self.language)

    @property
    def page_size(self) -> str:
        """The CSS ``@page`` size: ``A4`` or ``Letter``."""
        return PAPER_SIZES[self.paper_size]

    @property
    def country_name(self) -> str | None:
        return country_name(self.country, self.locale)

    @property
    def address(self) -> list[str]:
        """The address as printed lines, the country's name included."""
        return address_lines(self.address_line1, self.address_line2, self.postcode, self.city, self.region,
                             self.country, locale=self.locale)

    @property
    def bank_lines(self) -> list[str]:
        return [line for line in (self.bank_details or "").splitlines() if line.strip()]

    @property
    def has_logo(self) -> bool:
        return bool(self.logo_file and self.logo_sha256)


def snapshot(business: Business) -> BusinessProfile:
    return BusinessProfile(
        business_id=business.id, name=business.name, legal_name=business.legal_name,
        address_line1=business.address_line1, address_line2=business.address_line2, postcode=business.postcode,
        city=business.city, region=business.region, country=business.country, tax_id=business.tax_id,
        email=business.email, phone=business.phone, website=business.website, bank_details=business.bank_details,
        paper_size_setting=business.paper_size, language=business.language or "en",
        currency=business.currency or "EUR", timezone=business.timezone or "UTC",
        logo_file=business.logo_file, logo_sha256=business.logo_sha256,
    )


def current_business(ctx: Context) -> Business:
    """The business row as it is in this transaction (``ctx.business`` is the copy read when the
    context opened)."""
    business = ctx.session.get(Business, ctx.business_id)
    if business is None:  # deleted under an open context
        raise ValidationFailed("this business no longer exists")
    return business


@use_case(Role.READ_ONLY, write=False)
def business_profile(ctx: Context) -> BusinessProfile:
    """The business's profile as documents show it."""
    return snapshot(current_business(ctx))


# --------------------------------------------------------------------------------------------
# validation


def check_tax_id(value: str, country: str | None) -> str:
    """The tax id to store, checked with python-stdnum where it knows the number.

    An EU VAT number (``DE136695976``, any member state's prefix) is checked as such and must
    belong to the business's country when that is an EU country; in an EU country a number
    without the prefix gets it. Elsewhere the country's VAT (or else TIN) format is checked when
    stdnum has one (``GB``, ``CH``, ``NO``, ``AU``, ``US`` ...) and the number is kept as written.
    Other countries take free text.
    Raises ``ValueError`` with the message for the user.
    """
    from stdnum import get_cc_module
    from stdnum.eu import vat as eu_vat
    from stdnum.exceptions import ValidationError as NumberError

    text = " ".join(value.split())
    if len(text) > TAX_ID_MAX:
        raise ValueError(f"at most {TAX_ID_MAX} characters")
    if not all(ch.isprintable() for ch in text):
        raise ValueError("use letters, digits and punctuation only")
    country = (country or "").upper()
    members = {("EL" if cc == "gr" else cc.upper()) for cc in eu_vat.MEMBER_STATES if cc != "el"} | {"EL"}
    compact = re.sub(r"[\s.\-/:]", "", text).upper()
    prefix = compact[:2]
    home_prefix = "EL" if country == "GR" else country
    if prefix in members or home_prefix in members:
        number = compact if prefix in members else home_prefix + compact
        try:
            number = eu_vat.validate(number)
        except NumberError as exc:
            raise ValueError(f"not a valid EU VAT number: {exc.message[:1].lower()}{exc.message[1:]}") from exc
        issuer = number[:2].upper()
        if home_prefix in members and issuer != home_prefix:
            raise ValueError(f"a VAT number of {issuer}, but the business is in {country}: use the {home_prefix} number")
        return number
    if country:
        module = get_cc_module(country.lower(), "vat") or get_cc_module(country.lower(), "tin")
        if module is not None:
            try:
                module.validate(text)
            except NumberError as exc:
                raise ValueError(f"not a valid tax number for {country}: {exc.message[:1].lower()}{exc.message[1:]}") from exc
            return text.upper()  # as the business writes it (GB 980 7806 84), checked
    return text


def _text(max_length: int, **kwargs: Any) -> fields.String:
    return fields.String(allow_none=True, load_default=None, validate=validate.Length(max=max_length), **kwargs)


class BusinessProfileSchema(Schema):
    """What an admin may set on the profile. Text is trimmed; an empty value clears the field."""

    class Meta:
        unknown = EXCLUDE

    legal_name = _text(200)
    address_line1 = _text(200)
    address_line2 = _text(200)
    postcode = _text(20)
    city = _text(100)
    region = _text(100)
    country = fields.String(allow_none=True, load_default=None)
    tax_id = fields.String(allow_none=True, load_default=None)
    email = fields.Email(allow_none=True, load_default=None, validate=validate.Length(max=254))
    phone = _text(40)
    website = fields.Url(allow_none=True, load_default=None, schemes={"http", "https"}, require_tld=True,
                         validate=validate.Length(max=200))
    bank_details = _text(BANK_DETAILS_MAX)
    paper_size = fields.String(allow_none=True, load_default=None,
                               validate=validate.OneOf(tuple(PAPER_SIZES), error="choose A4 or Letter"))

    @pre_load
    def _clean(self, data: Any, **_kwargs: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = value.replace("\r\n", "\n").strip()
                if key != "bank_details":
                    value = " ".join(value.split()) if "\n" not in value else value
                value = value or None
            out[key] = value
        if isinstance(out.get("country"), str):
            out["country"] = out["country"].upper()
        if isinstance(out.get("paper_size"), str):
            out["paper_size"] = out["paper_size"].lower()
        website = out.get("website")
        if isinstance(website, str) and "://" not in website:
            out["website"] = "https://" + website
        return out

    @validates_schema
    def _check(self, data: dict[str, Any], **_kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        for key, value in data.items():
            if isinstance(value, str) and key != "bank_details" and "\n" in value:
                errors.setdefault(key, []).append("one line only")
        country = data.get("country")
        if country is not None and country not in COUNTRIES:
            errors.setdefault("country", []).append("use a two-letter ISO 3166 country code such as DE or US")
            country = None
        bank = data.get("bank_details")
        if bank is not None:
            if len(bank.splitlines()) > BANK_DETAILS_LINES:
                errors.setdefault("bank_details", []).append(f"at most {BANK_DETAILS_LINES} lines")
            if any(not ch.isprintable() and ch not in "\n\t" for ch in bank):
                errors.setdefault("bank_details", []).append("control characters are not allowed")
        if data.get("tax_id") and "tax_id" not in errors:
            try:
                data["tax_id"] = check_tax_id(data["tax_id"], country)
            except ValueError as exc:
                errors.setdefault("tax_id", []).append(str(exc))
        if data.get("phone"):
            try:
                data["phone"] = _phone(data["phone"], country)
            except ValueError as exc:
                errors.setdefault("phone", []).append(str(exc))
        if errors:
            raise ValidationError(errors)


def _phone(value: str, country: str | None) -> str:
    try:
        number = phonenumbers.parse(value, country or None)
    except phonenumbers.NumberParseException as exc:
        hint = "" if country else " (or set the country first)"
        raise ValueError(f"not a phone number: give it with its country code, such as +49 30 123456{hint}") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValueError("this phone number has the wrong length for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def load_profile(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` validated; only the keys given are returned (the others stay as they are)."""
    try:
        data = BusinessProfileSchema(partial=True).load(values)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        names = ", ".join(sorted(k for k in messages if k != "_schema"))
        raise ValidationFailed("the business profile was not saved" + (f": check {names}" if names else ""),
                               messages) from exc
    given = {k for k in values if k in FIELDS}
    return {k: v for k, v in data.items() if k in given}


@use_case(Role.ADMIN)
def update_profile(ctx: Context, values: dict[str, Any]) -> BusinessProfile:
    """Set the profile fields given in ``values`` (admins). A tax id is checked against the
    country given with it, or the stored one."""
    business = current_business(ctx)
    if "tax_id" in values and "country" not in values and business.country:
        values = {**values, "country": business.country}
        data = load_profile(values)
        data.pop("country", None)
    else:
        data = load_profile(values)
    changes = {k: [getattr(business, k), v] for k, v in data.items() if getattr(business, k) != v}
    for key, (_old, new) in changes.items():
        setattr(business, key, new)
    if changes:
        ctx.session.flush()
        audit.record(ctx, "business.profile_updated", business, changes=changes)
    return snapshot(business)
