"""Normalising names, emails, phone numbers and websites.

A contact mechanism keeps two forms: ``value`` (what the user reads: the address as typed with its
domain cleaned, a phone number in international format, a URL with a scheme) and ``normalized``
(what duplicates are matched on: lowercased email, E.164 phone, bare host + path). The functions
here are pure, so they are tested directly (with hypothesis) and reused by intake paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

#: ISO 3166-1 alpha-2 codes known to phonenumbers: every country with a telephone plan
COUNTRY_CODES = frozenset(phonenumbers.SUPPORTED_REGIONS)

PHONE_KINDS = frozenset({"phone", "mobile", "fax"})

_HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")
_LANGUAGE_RE = re.compile(r"^([a-zA-Z]{2,3})((?:-[a-zA-Z0-9]{2,8})*)$")


class NormalizeError(ValueError):
    """A value that cannot be normalised; the message says what to give instead."""


@dataclass(frozen=True)
class Normalized:
    value: str
    normalized: str


def clean_name(name: str | None) -> str:
    """Strip and collapse inner whitespace (tabs, double spaces, newlines)."""
    return " ".join((name or "").split())


def name_key(name: str | None) -> str:
    """The sort and prefix-search key of a name: cleaned and casefolded."""
    return clean_name(name).casefold()


def person_name(first_name: str | None, last_name: str | None) -> str:
    return clean_name(f"{first_name or ''} {last_name or ''}")


#: the plain ASCII address almost every import row holds; anything else (quoted local parts,
#: international domains, "--" labels that IDNA must judge) goes through email-validator
_SIMPLE_EMAIL_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z])?)")
_SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)
_ROLE_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def _simple_email(text: str) -> Normalized | None:
    """The result email-validator gives for a plain ASCII address, without its cost (it spends
    ~45 µs per address on Unicode checks an ASCII address cannot fail; a bulk import checks
    hundreds of thousands). None: not plain, ask email-validator. tests/test_parties_normalize.py
    checks with hypothesis that both agree on every address this accepts."""
    match = _SIMPLE_EMAIL_RE.fullmatch(text)
    if match is None or len(text) > 254 or text.index("@") > 64:
        return None
    domain = match.group(1).lower()
    if "--" in domain or len(domain) > 253 or any(
            domain == name or domain.endswith("." + name) for name in _SPECIAL_USE):
        return None
    local = text[:text.index("@")]
    if local.lower() in _ROLE_MAILBOXES:  # RFC 2142 role names: email-validator lowercases them
        local = local.lower()
    address = f"{local}@{domain}"
    return Normalized(address, address.lower())


def normalize_email(value: str) -> Normalized:
    simple = _simple_email(value.strip())
    if simple is not None:
        return simple
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise NormalizeError(f"not a valid email address: {exc}") from exc
    return Normalized(result.normalized, result.normalized.lower())


def normalize_phone(value: str, region: str | None = None) -> Normalized:
    """Parse a phone number to E.164. Without ``region`` (a country code) only international
    numbers (``+32 ...`` or ``0032 ...``) can be read."""
    text = value.strip()
    compact = re.sub(r"[\s().\-/]", "", text)
    if compact.startswith("00"):
        text = "+" + compact[2:]
    elif not compact.startswith("+") and not region:
        raise NormalizeError(
            "give the number in international form (+32 2 123 45 67 or 0032 ...), "
            "or give the party an address with a country")
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException as exc:
        raise NormalizeError(f"not a phone number: {exc}") from exc
    if not phonenumbers.is_possible_number(number):
        raise NormalizeError("not a possible phone number (check the number of digits)")
    return Normalized(
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
    )


def normalize_website(value: str) -> Normalized:
    """``Example.com/Shop/`` -> value ``https://example.com/Shop``, normalized ``example.com/Shop``
    (``www.`` and the scheme do not make a different site)."""
    text = value.strip()
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        text = "https://" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").rstrip(".")
        host = host.encode("idna").decode("ascii").lower() if host else ""
        port = parts.port
    except (ValueError, UnicodeError) as exc:
        raise NormalizeError(f"not a web address: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise NormalizeError("use an http or https address")
    if not _HOST_RE.match(host) or parts.username or parts.password:
        raise NormalizeError("not a web address (expected something like example.com)")
    netloc = f"{host}:{port}" if port else host
    path = parts.path.rstrip("/")
    tail = path + (f"?{parts.query}" if parts.query else "")
    shown = f"{parts.scheme.lower()}://{netloc}{tail}"
    bare = netloc.removeprefix("www.") + tail
    return Normalized(shown, bare)


def normalize_other(value: str) -> Normalized:
    text = clean_name(value)
    if not text:
        raise NormalizeError("give a value")
    return Normalized(text, text.casefold())


def normalize_mechanism(kind: str, value: str, region: str | None = None) -> Normalized:
    """Normalise ``value`` for a mechanism of ``kind`` (``region``: default country for phones)."""
    if kind == "email":
        return normalize_email(value)
    if kind in PHONE_KINDS:
        return normalize_phone(value, region)
    if kind == "website":
        return normalize_website(value)
    return normalize_other(value)


def normalize_language(value: str) -> str:
    """BCP 47-ish tag: ``EN`` -> ``en``, ``fr-be`` -> ``fr-BE``, ``zh-hant-tw`` -> ``zh-Hant-TW``."""
    match = _LANGUAGE_RE.match(value.strip())
    if not match:
        raise NormalizeError("use a language code such as en, fr or fr-BE")
    parts = [match.group(1).lower()]
    for sub in match.group(2).split("-")[1:]:
        if len(sub) == 2 and sub.isalpha():
            parts.append(sub.upper())
        elif len(sub) == 4 and sub.isalpha():
            parts.append(sub.title())
        else:
            parts.append(sub.lower())
    tag = "-".join(parts)
    if len(tag) > 10:
        raise NormalizeError("a language code has at most 10 characters")
    return tag


def normalize_country(value: str) -> str:
    code = value.strip().upper()
    if code not in COUNTRY_CODES:
        raise NormalizeError("use a two-letter ISO 3166 country code such as BE or FR")
    return code


def normalize_currency(value: str) -> str:
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise NormalizeError("use a three-letter ISO 4217 code such as EUR")
    return code
