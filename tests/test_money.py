"""The line rounding rule every document plugin uses (crmcore.money)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore.money import document_totals, line_amounts, quantum, round_money, to_decimal

CURRENCIES = ["EUR", "USD", "JPY", "BHD", "CHF"]

quantities = st.decimals(min_value=Decimal("-1000"), max_value=Decimal("100000"), places=3)
prices = st.decimals(min_value=Decimal("-100000"), max_value=Decimal("100000"), places=4)
percents = st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=2)


def test_the_minor_unit_comes_from_the_currency():
    assert quantum("EUR") == Decimal("0.01") and quantum("jpy") == Decimal("1") and quantum("BHD") == Decimal("0.001")


@pytest.mark.parametrize("amount, currency, expected", [
    ("2.345", "EUR", "2.35"), ("-2.345", "EUR", "-2.35"), ("2.344", "EUR", "2.34"),
    ("1000.5", "JPY", "1001"), ("0.0005", "BHD", "0.001"),
])
def test_rounding_is_half_away_from_zero(amount, currency, expected):
    assert round_money(Decimal(amount), currency) == Decimal(expected)


def test_a_worked_example():
    line = line_amounts(Decimal(3), Decimal("19.99"), "EUR", discount_percent=Decimal(10), tax_rate=Decimal(21))
    # 3 x 19.99 = 59.97, less 10 % = 53.973 -> 53.97; 21 % tax of 53.97 = 11.3337 -> 11.33
    assert (line.net, line.tax, line.total) == (Decimal("53.97"), Decimal("11.33"), Decimal("65.30"))


@given(st.lists(st.tuples(quantities, prices, percents, st.sampled_from([Decimal(0), Decimal(9), Decimal("21")])),
                max_size=12), st.sampled_from(CURRENCIES))
def test_lines_always_add_up_to_the_document(raw_lines, currency):
    lines = [line_amounts(q, p, currency, discount_percent=d, tax_rate=t) for q, p, d, t in raw_lines]
    totals = document_totals(lines, currency)
    step = quantum(currency)
    for line in lines:
        assert line.net == line.net.quantize(step) and line.tax == line.tax.quantize(step)
        assert line.total == line.net + line.tax
    assert totals.net == sum((line.net for line in lines), Decimal(0))
    assert totals.tax == sum((line.tax for line in lines), Decimal(0))
    assert totals.total == totals.net + totals.tax
    assert sum(n for n, _ in totals.by_rate.values()) == totals.net
    assert sum(t for _, t in totals.by_rate.values()) == totals.tax


@given(quantities, prices, percents, percents, st.sampled_from(CURRENCIES))
def test_a_credit_line_is_the_exact_mirror_of_its_line(quantity, price, discount, tax, currency):
    line = line_amounts(quantity, price, currency, discount_percent=discount, tax_rate=tax)
    mirror = line_amounts(-quantity, price, currency, discount_percent=discount, tax_rate=tax)
    assert (mirror.net, mirror.tax, mirror.total) == (-line.net, -line.tax, -line.total)


def test_an_empty_document_is_zero_in_the_currency_precision():
    assert str(document_totals([], "EUR").total) == "0.00" and str(document_totals([], "JPY").total) == "0"


@pytest.mark.parametrize("value, expected", [
    ("12.50", Decimal("12.50")), (" 3 ", Decimal(3)), (7, Decimal(7)), (Decimal("1.1"), Decimal("1.1")),
    (1.1, None), (True, None), ("NaN", None), ("Infinity", None), ("12,50", None), (None, None), ("", None),
])
def test_to_decimal_takes_exact_numbers_only(value, expected):
    assert to_decimal(value) == expected
