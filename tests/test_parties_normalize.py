"""Normalising names, emails, phone numbers, websites, languages: pure functions, tested with
hypothesis (round trips: normalising a normalised value changes nothing; spellings that mean the
same thing meet in one normalised form)."""

from __future__ import annotations

import string

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crmcore.parties.normalize import (
    _SIMPLE_EMAIL_RE,
    NormalizeError,
    _simple_email,
    clean_name,
    name_key,
    normalize_country,
    normalize_email,
    normalize_language,
    normalize_phone,
    normalize_website,
    person_name,
)

# --- names -----------------------------------------------------------------------------------

whitespace = st.sampled_from([" ", "  ", "\t", "\n", " \u00a0 "])
words = st.lists(st.text(alphabet=st.characters(categories=("L", "N", "P")), min_size=1, max_size=8),
                 min_size=1, max_size=5)


@given(words, st.lists(whitespace, min_size=6, max_size=6))
def test_clean_name_collapses_any_whitespace(parts, gaps):
    messy = gaps[0] + "".join(p + gaps[(i + 1) % 6] for i, p in enumerate(parts))
    assert clean_name(messy) == " ".join(parts)
    assert clean_name(clean_name(messy)) == clean_name(messy)


@given(st.text(max_size=60))
def test_name_key_is_idempotent_and_casefolded(name):
    key = name_key(name)
    assert name_key(key) == key
    assert key == key.casefold()
    assert key == key.strip()
    assert "  " not in key


@given(words)
def test_name_key_ignores_case(parts):
    name = " ".join(parts)
    # a few letters change length or meaning between cases (e.g. Turkish dotted I): leave them out
    assume(name.upper().casefold() == name.lower().casefold() == name.swapcase().casefold())
    assert name_key(name.upper()) == name_key(name.lower()) == name_key(name.swapcase())


@given(st.one_of(st.none(), words.map(" ".join)), st.one_of(st.none(), words.map(" ".join)))
def test_person_name_joins_what_is_there(first, last):
    name = person_name(first, last)
    assert name == clean_name(f"{first or ''} {last or ''}")
    assert not name.startswith(" ") and not name.endswith(" ")


# --- emails ----------------------------------------------------------------------------------

local_parts = st.text(alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
labels = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12)
domains = st.tuples(st.lists(labels, min_size=1, max_size=3), st.sampled_from(["com", "be", "org", "shop"])).map(
    lambda t: ".".join([*t[0], t[1]]))


@given(local_parts, domains)
def test_email_round_trip(local, domain):
    email = f"{local}@{domain}"
    first = normalize_email(f"  {local}@{domain.upper()} ")
    assert first.normalized == email.lower()
    again = normalize_email(first.value)
    assert again == first
    # any case of the same address meets in one normalised form
    assert normalize_email(email.swapcase()).normalized == first.normalized


def _validator_says(text: str):
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.normalized


@settings(max_examples=400)
@given(st.one_of(st.from_regex(_SIMPLE_EMAIL_RE, fullmatch=True),
                 st.builds(lambda name, swap, domain: f"{name.swapcase() if swap else name}@{domain}",
                           st.sampled_from(sorted(CASE_INSENSITIVE_MAILBOX_NAMES)), st.booleans(), domains),
                 st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains),
                 st.text(alphabet=string.ascii_letters + "@.-_+", max_size=30)))
def test_the_fast_path_agrees_with_email_validator(text):
    """The plain-ASCII shortcut never accepts what email-validator refuses, and when it accepts,
    it gives the same normalised address."""
    fast = _simple_email(text)
    if fast is not None:
        assert fast.value == _validator_says(text)
        assert fast.normalized == fast.value.lower()


@pytest.mark.parametrize("text", ["a@b.test", "a@x.localhost", "a@b.invalid", "a@xn--bcher-kva.de",
                                  "a@b--c.com", "\"quoted local\"@b.com", "a@bücher.de", "a@b.123"])
def test_addresses_the_fast_path_leaves_to_email_validator(text):
    assert _simple_email(text) is None
    expected = _validator_says(text)
    if expected is None:
        with pytest.raises(NormalizeError):
            normalize_email(text)
    else:
        assert normalize_email(text).value == expected


@pytest.mark.parametrize("bad", ["", "plain", "a@", "@b.com", "a b@c.com", "a@b..com", "a@localhost",
                                 "a@b.test", "a@b.c0", f"a@{'b' * 64}.com"])
def test_bad_emails_are_refused(bad):
    with pytest.raises(NormalizeError):
        normalize_email(bad)


# --- phones ----------------------------------------------------------------------------------

REGIONS = ["BE", "FR", "DE", "NL", "GB", "US", "ES", "IT", "CH"]


@st.composite
def example_numbers(draw):
    region = draw(st.sampled_from(REGIONS))
    kind = draw(st.sampled_from([phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE]))
    number = phonenumbers.example_number_for_type(region, kind)
    assume(number is not None)
    return region, number


@given(example_numbers(), st.sampled_from(["national", "international", "e164", "zero-zero"]))
def test_phone_spellings_meet_in_e164(sample, spelling):
    region, number = sample
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if spelling == "national":
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        result = normalize_phone(text, region)
    elif spelling == "international":
        result = normalize_phone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
    elif spelling == "e164":
        result = normalize_phone(e164)
    else:
        result = normalize_phone("00" + e164[1:])
    assert result.normalized == e164
    # the shown value reads back to the same number, with or without a region
    assert normalize_phone(result.value) == result
    assert normalize_phone(result.value, "US").normalized == e164


def test_national_number_without_a_country_is_refused_clearly():
    with pytest.raises(NormalizeError, match="international form"):
        normalize_phone("02 123 45 67")


@pytest.mark.parametrize("bad", ["+32", "+32 12", "hello", "+999 123 456 789"])
def test_impossible_numbers_are_refused(bad):
    with pytest.raises(NormalizeError):
        normalize_phone(bad)


# --- websites --------------------------------------------------------------------------------

paths = st.lists(st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=8), max_size=3)


@given(domains, paths, st.sampled_from(["", "http://", "https://", "HTTPS://"]), st.booleans(), st.booleans())
def test_website_round_trip(domain, path_parts, scheme, www, slash):
    path = "".join("/" + p for p in path_parts)
    host = ("www." if www else "") + domain
    first = normalize_website(f"{scheme}{host.upper()}{path}{'/' if slash else ''}")
    assert first.normalized == domain + path
    assert first.value.startswith(("http://", "https://"))
    again = normalize_website(first.value)
    assert again == first


@pytest.mark.parametrize("bad", ["", "not a site", "ftp://example.com", "localhost", "http://user:pw@example.com"])
def test_bad_websites_are_refused(bad):
    with pytest.raises(NormalizeError):
        normalize_website(bad)


# --- language, country -----------------------------------------------------------------------

@pytest.mark.parametrize(("given_tag", "expected"), [
    ("EN", "en"), ("fr-be", "fr-BE"), (" nl-BE ", "nl-BE"), ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419"),
])
def test_language_tags(given_tag, expected):
    assert normalize_language(given_tag) == expected
    assert normalize_language(expected) == expected


@pytest.mark.parametrize("bad", ["e", "english language", "fr_BE", "123", "en-abcdefghi"])
def test_bad_language_tags(bad):
    with pytest.raises(NormalizeError):
        normalize_language(bad)


def test_countries():
    assert normalize_country(" be ") == "BE"
    with pytest.raises(NormalizeError):
        normalize_country("XX")
