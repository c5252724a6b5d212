"""SMS rules without a provider: E.164 numbers and segment counting (GSM 03.38 / UCS-2)."""

from __future__ import annotations

import math

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from crmcore.messaging.sms import (
    GSM7,
    GSM7_BASIC,
    GSM7_EXTENSION,
    UCS2,
    SmsParts,
    is_gsm7,
    normalize_number,
    sms_parts,
)

basic = st.sampled_from(sorted(GSM7_BASIC))
extension = st.sampled_from(sorted(GSM7_EXTENSION))
gsm_text = st.text(alphabet=st.one_of(basic, extension), max_size=600)
non_gsm = st.characters(codec="utf-8", exclude_categories=("Cs",)).filter(
    lambda ch: ch not in GSM7_BASIC and ch not in GSM7_EXTENSION)
any_text = st.text(alphabet=st.one_of(basic, extension, non_gsm), max_size=400)


# --- segments -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "encoding", "segments", "units"), [
    ("", GSM7, 0, 0),
    ("a", GSM7, 1, 1),
    ("a" * 160, GSM7, 1, 160),
    ("a" * 161, GSM7, 2, 161),
    ("a" * 306, GSM7, 2, 306),
    ("a" * 307, GSM7, 3, 307),
    ("€" * 80, GSM7, 1, 160),       # extension: 2 septets each
    ("€" * 81, GSM7, 2, 162),
    ("[]{}" * 20, GSM7, 1, 160),
    ("éèùìòÇØøÅåÆæßÉÄÖÑÜäöñüà¿¡§£¥¤ΔΦΓΛΩΠΨΣΘΞ", GSM7, 1, 39),
    ("ę", UCS2, 1, 1),              # Polish ogonek: not in GSM 03.38
    ("ç", UCS2, 1, 1),              # only capital Ç is in the basic set
    ("ę" * 70, UCS2, 1, 70),
    ("ę" * 71, UCS2, 2, 71),
    ("ę" * 134, UCS2, 2, 134),
    ("ę" * 135, UCS2, 3, 135),
    ("😀" * 35, UCS2, 1, 70),       # outside the BMP: a surrogate pair, 2 code units
    ("😀" * 36, UCS2, 2, 72),
    ("€" * 10 + "ę", UCS2, 1, 11),  # one non-GSM character: everything is UCS-2, € costs 1
])
def test_known_counts(body, encoding, segments, units):
    parts = sms_parts(body)
    assert (parts.encoding, parts.segments, parts.units) == (encoding, segments, units)
    assert parts.characters == len(body)


def test_escape_pair_never_split_across_parts():
    # 152 septets then '€' (2): a naive count says 154 -> 2 parts of 153, but the pair cannot
    # straddle the border, so the first part holds 152 and the '€' starts the second
    body = "a" * 152 + "€" + "a" * 152
    parts = sms_parts(body)
    assert parts.units == 306
    assert parts.segments == 3
    # and a surrogate pair likewise
    assert sms_parts("ę" * 66 + "😀" + "ę" * 66).segments == 3


def test_parts_are_frozen():
    parts = sms_parts("hello")
    assert isinstance(parts, SmsParts)
    with pytest.raises(AttributeError):
        parts.segments = 9  # type: ignore[misc]


@given(gsm_text)
def test_gsm_text_stays_gsm(body):
    parts = sms_parts(body)
    assert parts.encoding == GSM7
    assert parts.units == len(body) + sum(ch in GSM7_EXTENSION for ch in body)


@given(any_text)
def test_one_foreign_character_makes_ucs2(body):
    assert (sms_parts(body).encoding == GSM7) == is_gsm7(body)


@given(gsm_text)
def test_gsm_limits(body):
    parts = sms_parts(body)
    if parts.units == 0:
        assert parts.segments == 0
    elif parts.units <= 160:
        assert parts.segments == 1
    else:
        # at least the ideal count; at most one extra part per escape pair pushed over a border
        ideal = math.ceil(parts.units / 153)
        assert ideal <= parts.segments <= math.ceil(parts.units / 152)


@given(st.text(alphabet=non_gsm, min_size=1, max_size=300))
def test_ucs2_limits(body):
    parts = sms_parts(body)
    assert parts.encoding == UCS2
    assert parts.units == len(body.encode("utf-16-le")) // 2
    if parts.units <= 70:
        assert parts.segments == 1
    else:
        assert math.ceil(parts.units / 67) <= parts.segments <= math.ceil(parts.units / 66)


@given(any_text, st.one_of(basic, extension, non_gsm))
def test_segments_monotone_in_length(body, extra):
    """Appending a character never lowers the count, within one encoding."""
    longer = body + extra
    assume(is_gsm7(body) == is_gsm7(longer))
    assert sms_parts(longer).segments >= sms_parts(body).segments


@given(gsm_text, gsm_text)
def test_concatenation_never_saves_parts(a, b):
    """Two texts joined cost at most what they cost apart, plus one (a shared border)."""
    joined = sms_parts(a + b).segments
    assert joined >= max(sms_parts(a).segments, sms_parts(b).segments)
    assert joined <= sms_parts(a).segments + sms_parts(b).segments + 1


@given(st.integers(min_value=0, max_value=2000))
def test_plain_ascii_formula(n):
    parts = sms_parts("x" * n)
    expected = 0 if n == 0 else 1 if n <= 160 else math.ceil(n / 153)
    assert parts.segments == expected


@given(st.integers(min_value=1, max_value=500))
def test_extension_only_formula(n):
    # every unit pair is one escape pair: a 153-septet part holds 76 of them
    parts = sms_parts("€" * n)
    expected = 1 if 2 * n <= 160 else math.ceil(n / 76)
    assert parts.segments == expected


# --- numbers ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("+32 470 12 34 56", None, "+32470123456"),
    ("+32 (470) 12-34-56", None, "+32470123456"),
    ("0032 470 12 34 56", None, "+32470123456"),
    ("0470 12 34 56", "BE", "+32470123456"),
    ("0470/12.34.56", "be", "+32470123456"),
    ("+32470123456", "FR", "+32470123456"),   # international form wins over the region
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("(202) 555-0123", "US", "+12025550123"),
    ("+44 7911 123456", None, "+447911123456"),
])
def test_normalize_valid(raw, region, expected):
    assert normalize_number(raw, region) == expected


@pytest.mark.parametrize(("raw", "region", "message"), [
    ("", "BE", "no phone number"),
    ("   ", None, "no phone number"),
    ("0470 12 34 56", None, "international form"),
    ("hello", "BE", "not a phone number"),
    ("+999 1234567", None, "unknown country code"),
    ("+32 1", None, "not a phone number"),
    ("+32 470 12 34 56 78 90 12", None, "not a"),
    ("+32 000 00 00 00", None, "not a valid phone number for BE"),
    ("0470 12 34 56", "XX", "unknown country code 'XX'"),
])
def test_normalize_invalid(raw, region, message):
    with pytest.raises(ValueError, match=message):
        normalize_number(raw, region)


@given(st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)))
def test_example_numbers_round_trip(region):
    """Each country's example mobile number normalises, in national and international form, to
    the same E.164 string, and normalising that again changes nothing."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assume(example is not None)
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    assert normalize_number(national, region) == e164
    assert normalize_number(e164, None) == e164
    assert normalize_number(normalize_number(e164, None), region) == e164


@given(st.text(max_size=30), st.one_of(st.none(), st.sampled_from(["BE", "US", "fr", "ZZ", ""])))
def test_normalize_only_raises_value_error(raw, region):
    try:
        result = normalize_number(raw, region)
    except ValueError as exc:
        assert str(exc)
    else:
        assert result.startswith("+") and result[1:].isdigit()
