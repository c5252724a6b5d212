"""The VIN rules and the ``vin`` field type, without a database."""

from __future__ import annotations

from types import SimpleNamespace

import marshmallow as ma
import pytest
from crm_example_plugin import vin
from crm_example_plugin.fields import VinField, VinOptions
from hypothesis import given
from hypothesis import strategies as st

VALID = ["1M8GDM9AXKP042788", "11111111111111111", "1HGCM82633A004352"]
body = st.text(alphabet=vin.ALPHABET, min_size=vin.LENGTH, max_size=vin.LENGTH)


def with_check_digit(chars: str) -> str:
    return chars[:8] + vin.check_digit(chars) + chars[9:]


def definition(**options):
    return SimpleNamespace(key="serial", label="Serial <VIN>", type="vin", options=options,
                           required=False, help_text=None)


@pytest.mark.parametrize("value", VALID)
def test_known_vins_are_valid(value):
    assert vin.problem(value) is None


def test_normalize_accepts_case_blanks_and_hyphens():
    assert vin.normalize("  1hgcm8-2633 a004352 ") == "1HGCM82633A004352"


@pytest.mark.parametrize(("value", "message"), [
    ("1HGCM82633A00435", "17 characters, this one has 16"),
    ("1HGCM82633A0043521", "this one has 18"),
    ("1HGCM82633AO04352", "never contains I, O or Q (found O)"),
    ("IHGCM82633A00435Q", "(found I, Q)"),
    ("1HGCM82633A00435!", "only letters and digits (found '!')"),
    ("1HGCM82643A004352", "check digit (9th character) is 4, expected 3"),
])
def test_invalid_vins_say_why(value, message):
    assert message in vin.problem(value)


def test_check_digit_can_be_skipped_for_markets_without_one():
    assert vin.problem("WVWZZZ1JZXW000001") is not None
    assert vin.problem("WVWZZZ1JZXW000001", verify_check_digit=False) is None


@given(body)
def test_a_computed_check_digit_validates(chars):
    assert vin.problem(with_check_digit(chars)) is None


@given(body, st.integers(min_value=0, max_value=16), st.sampled_from(vin.ALPHABET))
def test_any_single_substitution_that_changes_the_value_is_caught(chars, position, replacement):
    good = with_check_digit(chars)
    if position == vin.CHECK_POSITION:
        changed = good[:position] + replacement + good[position + 1:]
        assert (vin.problem(changed) is None) == (replacement == good[position])
        return
    changed = good[:position] + replacement + good[position + 1:]
    same_value = vin._VALUES[replacement] == vin._VALUES[good[position]]
    assert (vin.problem(changed) is None) == same_value


def test_field_loads_a_normalized_vin():
    field = VinField().marshmallow_field(definition())
    assert field.deserialize(" 1hgcm82633a004352") == "1HGCM82633A004352"


def test_field_error_names_the_problem():
    field = VinField().marshmallow_field(definition())
    with pytest.raises(ma.ValidationError) as exc:
        field.deserialize("1HGCM82643A004352")
    assert "expected 3" in exc.value.messages[0]
    with pytest.raises(ma.ValidationError):
        field.deserialize(12345)


def test_field_option_turns_the_check_digit_off():
    field = VinField().marshmallow_field(definition(check_digit=False))
    assert field.deserialize("wvwzzz1jzxw000001") == "WVWZZZ1JZXW000001"


def test_options_default_to_checking_and_refuse_unknown_keys():
    assert VinOptions().load({}) == {"check_digit": True}
    with pytest.raises(ma.ValidationError):
        VinOptions().load({"checkdigit": False})


def test_filter_operands():
    field_type = VinField()
    assert field_type.filter_field(definition(), "contains").deserialize(" 042-788 ") == "042788"
    for bad in ("  ", "%", "O42", "1" * 18):
        with pytest.raises(ma.ValidationError):
            field_type.filter_field(definition(), "contains").deserialize(bad)
    # looking a VIN up does not insist on its check digit
    assert field_type.filter_field(definition(), "eq").deserialize("WVWZZZ1JZXW000001") == "WVWZZZ1JZXW000001"


def test_storage_round_trip():
    field_type = VinField()
    assert field_type.from_storage(field_type.to_storage("1hgcm82633a004352")) == "1HGCM82633A004352"
    assert field_type.to_storage(None) is None and field_type.from_storage(None) is None


def test_rendering_escapes():
    field_type = VinField()
    html = field_type.render_input(definition(), '"><script>', name="custom.serial")
    assert "<script>" not in html and "&#34;&gt;&lt;script&gt;" in html
    assert 'name="custom.serial"' in html and "Serial &lt;VIN&gt;" in html
    assert field_type.render_value(definition(), "<b>") == '<code class="vin">&lt;b&gt;</code>'
    assert field_type.render_value(definition(), None) == ""


def test_sql_filters_run_in_the_database(crm):
    """eq, contains and isnull on a JSON ``custom`` column, on SQLite or PostgreSQL (JSONB)."""
    from sqlalchemy import Column, Integer, MetaData, Table, insert, select

    from crmcore.db import JsonDoc

    table = Table("example_vin_filter_probe", MetaData(), Column("id", Integer, primary_key=True),
                  Column("custom", JsonDoc, nullable=False))
    field_type, d = VinField(), definition()
    table.create(crm.db.engine)
    try:
        with crm.db.engine.begin() as conn:
            conn.execute(insert(table), [
                {"id": 1, "custom": {"serial": "1HGCM82633A004352"}},
                {"id": 2, "custom": {"serial": "1M8GDM9AXKP042788"}},
                {"id": 3, "custom": {}},
            ])

        def ids(op, raw):
            operand = raw if op == "isnull" else field_type.filter_field(d, op).deserialize(raw)
            with crm.db.engine.connect() as conn:
                return sorted(conn.execute(select(table.c.id).where(
                    field_type.sql_filter(table.c.custom, d, op, operand))).scalars())

        assert ids("eq", "1hgcm82633a004352") == [1]
        assert ids("contains", "kp-042") == [2]
        assert ids("isnull", True) == [3]
        assert ids("isnull", False) == [1, 2]
    finally:
        table.drop(crm.db.engine)
