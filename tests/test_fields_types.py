"""The built-in field types on their own: validation, storage round trips, rendering, options."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmcore.errors import ValidationFailed
from crmcore.fields import types
from crmcore.fields.base import ALL_OPS, FieldEnv, using_env
from crmcore.fields.models import FieldDefinition
from crmcore.fields.service import check_value

CHOICES = [{"value": "red", "label": "Red"}, {"value": "green", "label": "Green"}, {"value": "blue", "label": "Blue"}]

DEFINITIONS = {
    "text": ({"max_length": 20}, types.TextField()),
    "long_text": ({}, types.LongTextField()),
    "integer": ({"min": -1000, "max": 1000}, types.IntegerField()),
    "decimal": ({"min": "-500", "max": "500"}, types.DecimalField()),
    "amount": ({"currency": "EUR", "min": "0"}, types.AmountField()),
    "date": ({}, types.DateField()),
    "datetime": ({}, types.DateTimeField()),
    "checkbox": ({}, types.CheckboxField()),
    "choice": ({"choices": CHOICES}, types.ChoiceField()),
    "multi_choice": ({"choices": CHOICES}, types.MultiChoiceField()),
    "party_ref": ({}, types.PartyReferenceField()),
}


def definition(type_key: str, **overrides) -> FieldDefinition:
    options, _driver = DEFINITIONS[type_key]
    values = {"target": "party", "key": f"f_{type_key}", "label": type_key.title(), "type": type_key,
              "options": options, "required": False, "position": 0, "help_text": None, **overrides}
    return FieldDefinition(**values)


def driver(type_key: str):
    return DEFINITIONS[type_key][1]


def roundtrip(type_key: str, raw):
    """Validate ``raw``, store it, read it back; checks the stored form is JSON and canonical."""
    defn, drv = definition(type_key), driver(type_key)
    stored = check_value(defn, drv, raw)
    assert json.loads(json.dumps(stored)) == stored
    assert check_value(defn, drv, stored) == stored  # the stored form is accepted and stable
    return drv.from_storage(stored)


def error_of(type_key: str, raw, **overrides) -> list[str]:
    defn = definition(type_key, **overrides)
    with pytest.raises(ValidationFailed) as info:
        check_value(defn, driver(type_key), raw)
    assert list(info.value.errors["custom"]) == [defn.key]
    messages = info.value.errors["custom"][defn.key]
    assert messages and all(isinstance(m, str) for m in messages)
    return messages


def test_every_builtin_type_is_listed_with_known_ops():
    assert {t.key for t in types.BUILTIN_TYPES} == set(DEFINITIONS)
    for cls in types.BUILTIN_TYPES:
        assert set(cls.ops) <= set(ALL_OPS)
        assert "eq" in cls.ops and "isnull" in cls.ops


# --------------------------------------------------------------------------------------------
# valid values round-trip


text_values = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() and "\x00" not in s)


@settings(deadline=None)
@given(text_values)
def test_text_roundtrip(value):
    assert roundtrip("text", value) == value.strip()


@settings(deadline=None)
@given(st.text(min_size=1, max_size=300).filter(lambda s: s.strip() and "\x00" not in s))
def test_long_text_roundtrip(value):
    assert roundtrip("long_text", value) == value.strip()


@settings(deadline=None)
@given(st.integers(-1000, 1000), st.sampled_from([int, str, float, Decimal]))
def test_integer_roundtrip(value, form):
    assert roundtrip("integer", form(value)) == value


decimals = st.decimals(min_value=-500, max_value=500, allow_nan=False, allow_infinity=False, places=6)


@settings(deadline=None)
@given(decimals, st.booleans())
def test_decimal_roundtrip(value, as_text):
    back = roundtrip("decimal", str(value) if as_text else value)
    assert isinstance(back, Decimal) and back == value


@settings(deadline=None)
@given(st.decimals(min_value=0, max_value=10**9, allow_nan=False, allow_infinity=False, places=2))
def test_amount_roundtrip(value):
    assert roundtrip("amount", str(value)) == value


@settings(deadline=None)
@given(st.dates(), st.booleans())
def test_date_roundtrip(value, as_text):
    assert roundtrip("date", value.isoformat() if as_text else value) == value


@settings(deadline=None)
@given(st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2200, 1, 1),
                    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                                               dt.timezone(dt.timedelta(hours=-8))])),
       st.booleans())
def test_datetime_roundtrip_is_utc_to_the_second(value, as_text):
    back = roundtrip("datetime", value.isoformat() if as_text else value)
    assert back == value.replace(microsecond=0)
    assert back.utcoffset() == dt.timedelta(0)


def test_datetime_without_zone_is_read_in_the_business_time_zone():
    with using_env(FieldEnv(timezone="Europe/Berlin")):
        back = roundtrip("datetime", "2024-07-01T12:00")
    assert back == dt.datetime(2024, 7, 1, 10, 0, tzinfo=dt.UTC)


@settings(deadline=None)
@given(st.sampled_from([True, False, "yes", "no", "1", "0", "on", "off", 1, 0]))
def test_checkbox_roundtrip(value):
    expected = value in (True, "yes", "1", "on", 1)
    assert roundtrip("checkbox", value) is expected


@settings(deadline=None)
@given(st.sampled_from(["red", "green", "blue", " blue "]))
def test_choice_roundtrip(value):
    assert roundtrip("choice", value) == value.strip()


@settings(deadline=None)
@given(st.lists(st.sampled_from(["red", "green", "blue"]), min_size=1, max_size=6))
def test_multi_choice_roundtrip_dedupes_in_choice_order(values):
    expected = [c["value"] for c in CHOICES if c["value"] in values]
    assert roundtrip("multi_choice", values) == expected


def test_multi_choice_takes_a_single_string():
    assert roundtrip("multi_choice", "green") == ["green"]


@settings(deadline=None)
@given(st.integers(1, 2**53 - 1))
def test_party_ref_roundtrip(value):
    assert roundtrip("party_ref", value) == value


def test_canonical_decimal_has_no_exponent_or_trailing_zeros():
    assert types.canonical_decimal(Decimal("12.50")) == "12.5"
    assert types.canonical_decimal(Decimal("1E+3")) == "1000"
    assert types.canonical_decimal(Decimal("-0.000")) == "0"
    assert types.canonical_decimal(Decimal("0.0001")) == "0.0001"


# --------------------------------------------------------------------------------------------
# invalid values name the key


@settings(deadline=None)
@given(st.text(min_size=21, max_size=60).filter(lambda s: len(s.strip()) > 20 and "\x00" not in s))
def test_text_too_long(value):
    assert "Use at most 20 characters." in error_of("text", value)


@pytest.mark.parametrize("value", [5, 1.5, ["a"], {"a": 1}, True, "a\x00b"])
def test_text_refuses_non_strings_and_nul(value):
    error_of("text", value)


not_integer_text = st.text(min_size=1).filter(lambda s: not re.fullmatch(r"\s*[-+]?[0-9_]+\s*", s))


@settings(deadline=None)
@given(st.one_of(
    not_integer_text,
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not f.is_integer()),
    st.integers().filter(lambda i: not -1000 <= i <= 1000),
    st.booleans(),
    st.decimals(allow_nan=False).filter(lambda d: not d.is_finite() or d != d.to_integral_value()),
))
def test_integer_invalid(value):
    try:
        int(str(value).strip())
        parses = not isinstance(value, bool | float)
    except ValueError:
        parses = False
    if parses and -1000 <= int(str(value).strip()) <= 1000:
        return  # a unicode digit string: a valid integer after all
    error_of("integer", value)


def test_integer_range_message_names_the_bounds():
    assert error_of("integer", 1001) == ["Use a number from -1000 to 1000."]
    assert error_of("integer", "2", options={"min": 5}) == ["Use a number of at least 5."]
    assert error_of("integer", 2**53, options={}) == [
        f"Use a whole number between -{2**53 - 1} and {2**53 - 1}."]


@settings(deadline=None)
@given(st.one_of(
    st.sampled_from(["abc", "NaN", "Infinity", "-inf", "1e400", "", "1,5", True, False, [], {}]),
    st.decimals(allow_nan=False, allow_infinity=False).filter(lambda d: abs(d) > 500),
))
def test_decimal_invalid(value):
    if value == "":
        return  # empty input clears a value; the service handles it before the type
    error_of("decimal", value)


@pytest.mark.parametrize("value, message", [
    ("1.234", "Use at most 2 decimal places."),
    ("-1", "Use a number of at least 0."),
    ("abc", "Not a valid number."),
])
def test_amount_invalid(value, message):
    assert message in error_of("amount", value)


def test_amount_places_follow_the_currency():
    assert roundtrip("amount", "1.50") == Decimal("1.5")
    assert error_of("amount", "1.5", options={"currency": "JPY"}) == ["Use at most 0 decimal places."]


@pytest.mark.parametrize("value", ["2024-13-01", "2024-02-30", "yesterday", 20240101, "2024-01-01T10:00",
                                   dt.datetime(2024, 1, 1, 10, 0), True])
def test_date_invalid(value):
    error_of("date", value)


@pytest.mark.parametrize("value", ["not a date", "2024-01-01T25:00", 5, True, dt.date(2024, 1, 1), ["x"]])
def test_datetime_invalid(value):
    error_of("datetime", value)


@pytest.mark.parametrize("value", ["maybe", 2, [], {}, "2"])
def test_checkbox_invalid(value):
    error_of("checkbox", value)


@pytest.mark.parametrize("value", ["purple", "Red", 5, ["red"]])
def test_choice_invalid(value):
    assert error_of("choice", value)


@pytest.mark.parametrize("value", [["red", "purple"], "purple", [5], {"red": True}])
def test_multi_choice_invalid(value):
    assert error_of("multi_choice", value)


@pytest.mark.parametrize("value", [0, -1, "x", True, 1.5])
def test_party_ref_invalid(value):
    error_of("party_ref", value)


# --------------------------------------------------------------------------------------------
# option schemas


@pytest.mark.parametrize("type_key, options", [
    ("text", {"max_length": 0}),
    ("text", {"max_length": 5000}),
    ("text", {"colour": "red"}),
    ("integer", {"min": 5, "max": 1}),
    ("integer", {"min": 1.5}),
    ("decimal", {"min": "abc"}),
    ("amount", {"currency": "euro"}),
    ("choice", {}),
    ("choice", {"choices": []}),
    ("choice", {"choices": [{"value": "a"}, {"value": "a"}]}),
    ("multi_choice", {"choices": [{"label": "no value"}]}),
    ("multi_choice", {"choices": "a,b"}),
])
def test_bad_options_are_refused(type_key, options):
    import marshmallow as ma

    with pytest.raises(ma.ValidationError):
        driver(type_key).options_schema().load(options)


def test_choice_label_defaults_to_value_and_amount_currency_is_upper_cased():
    loaded = types.ChoiceField.options_schema().load({"choices": [{"value": " a "}, {"value": "b", "label": "B"}]})
    assert loaded == {"choices": [{"value": "a", "label": "a"}, {"value": "b", "label": "B"}]}
    assert types.AmountField.options_schema().load({"currency": "usd"}) == {"currency": "USD"}
    assert types.AmountField().prepare_options({}, env=FieldEnv(currency="CHF")) == {"currency": "CHF"}


# --------------------------------------------------------------------------------------------
# rendering


XSS = "<script>alert(1)</script>"
XSS_CHOICES = [{"value": XSS, "label": XSS}, {"value": "b", "label": f"b{XSS}"}]


def xss_definition(type_key: str) -> FieldDefinition:
    options = dict(DEFINITIONS[type_key][0])
    if "choices" in options:
        options["choices"] = XSS_CHOICES
    return definition(type_key, label=XSS, help_text=XSS, options=options, key="evil")


def assert_escaped(html: str) -> None:
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize("type_key", sorted(DEFINITIONS))
def test_render_input_escapes_label_help_choices_and_value(type_key):
    defn = xss_definition(type_key)
    value = [XSS] if type_key == "multi_choice" else XSS
    html = str(driver(type_key).render_input(defn, value, name='custom.evil"><script>'))
    assert_escaped(html)
    assert 'id="cf-evil"' in html
    assert '<label for="cf-evil">' in html
    assert 'aria-describedby="cf-evil-help"' in html


@pytest.mark.parametrize("type_key", ["text", "long_text", "choice", "multi_choice"])
def test_render_value_escapes(type_key):
    defn = xss_definition(type_key)
    value = [XSS, "b"] if type_key == "multi_choice" else XSS
    html = str(driver(type_key).render_value(defn, value))
    assert_escaped(html)


def test_choice_value_shows_its_label_and_an_unknown_value_as_stored():
    defn = definition("choice")
    assert str(driver("choice").render_value(defn, "red")) == "Red"
    assert str(driver("choice").render_value(defn, "retired<b>")) == "retired&lt;b&gt;"
    assert str(driver("multi_choice").render_value(definition("multi_choice"), ["red", "blue"])) == "Red, Blue"


def test_required_attribute_and_marker():
    html = str(driver("text").render_input(definition("text", required=True), "x", name="custom.t"))
    assert " required" in html and 'class="required"' in html
    html = str(driver("text").render_input(definition("text"), "x", name="custom.t"))
    assert " required" not in html
    checkbox = str(driver("checkbox").render_input(definition("checkbox", required=True), True, name="c"))
    assert " required" not in checkbox.replace('class="required"', "")
    assert " checked" in checkbox and 'type="hidden" name="c" value="0"' in checkbox


def test_selected_options():
    html = str(driver("choice").render_input(definition("choice"), "green", name="c"))
    assert '<option value="green" selected>Green</option>' in html
    html = str(driver("multi_choice").render_input(definition("multi_choice"), ["red", "blue"], name="m"))
    assert '<option value="red" selected>' in html and '<option value="green">' in html
    assert " multiple" in html


def test_values_render_with_babel_in_the_business_locale():
    amount, day = definition("amount"), definition("date")
    with using_env(FieldEnv(locale="de")):
        assert str(driver("amount").render_value(amount, Decimal("1234.5"))) == "1.234,50\xa0€"
        assert str(driver("date").render_value(day, dt.date(2024, 3, 5))) == "05.03.2024"
        assert str(driver("integer").render_value(definition("integer"), 12345)) == "12.345"
    with using_env(FieldEnv(locale="en")):
        assert str(driver("amount").render_value(amount, Decimal("1234.5"))) == "€1,234.50"
        assert str(driver("decimal").render_value(definition("decimal"), Decimal("0.125"))) == "0.125"
    with using_env(FieldEnv(locale="en", timezone="Europe/Berlin")):
        shown = str(driver("datetime").render_value(definition("datetime"),
                                                    dt.datetime(2024, 7, 1, 10, 0, tzinfo=dt.UTC)))
        assert "12:00:00" in shown
        control = str(driver("datetime").render_input(definition("datetime"),
                                                      dt.datetime(2024, 7, 1, 10, 0, tzinfo=dt.UTC), name="x"))
        assert 'value="2024-07-01T12:00"' in control


def test_unknown_locale_falls_back_to_english():
    with using_env(FieldEnv(locale="xx-nowhere")):
        assert str(driver("integer").render_value(definition("integer"), 1000)) == "1,000"


def test_long_text_keeps_line_breaks_escaped():
    html = str(driver("long_text").render_value(definition("long_text"), "a<b>\nc"))
    assert html == "a&lt;b&gt;<br>c"


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=30))
def test_any_text_renders_escaped(value):
    """Whatever the text, it adds no markup: the control has the tags and quotes of a plain one."""

    def html(text: str) -> str:
        defn = definition("text", label=text, help_text="h" + text)
        return str(driver("text").render_input(defn, text, name="n" + text))

    plain = html("x")
    for char in "<>\"":
        assert html(value).count(char) == plain.count(char)
