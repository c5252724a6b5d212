"""Money for documents with lines (quotes, orders, invoices): ``Decimal`` only, rounded per line.

The rule, the same in every plugin that prices lines, so a quote, its order and its invoice
agree to the cent:

- a line's net amount is ``quantity × unit_price × (1 − discount_percent / 100)``, rounded
  half-up to the currency's minor unit (2 decimals for EUR, 0 for JPY, 3 for BHD: Babel's data);
- its tax is ``net × tax_rate / 100``, rounded the same way, per line;
- its total is net + tax; a document's net, tax and total are the sums of its lines (no
  further rounding, so the lines always add up to the total shown).

Negative amounts (a trade-in credit line, a credit note) follow the same rule; rounding is
symmetric (half away from zero).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

HUNDRED = Decimal(100)
ZERO = Decimal(0)


@lru_cache(maxsize=256)
def quantum(currency: str) -> Decimal:
    """The currency's minor unit as a Decimal exponent: EUR -> 0.01, JPY -> 1."""
    from babel.numbers import get_currency_precision

    return Decimal(1).scaleb(-get_currency_precision(currency.upper()))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half away from zero to the currency's minor unit."""
    return Decimal(amount).quantize(quantum(currency), rounding=ROUND_HALF_UP)


def to_decimal(value: object) -> Decimal | None:
    """A finite Decimal from a Decimal, int or numeric string, else None (floats are refused:
    they are not exact)."""
    if isinstance(value, bool | float):
        return None
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str) else Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None


@dataclass(frozen=True)
class LineAmounts:
    net: Decimal
    tax: Decimal
    total: Decimal
    tax_rate: Decimal


def line_amounts(quantity: Decimal, unit_price: Decimal, currency: str, *,
                 discount_percent: Decimal = ZERO, tax_rate: Decimal = ZERO) -> LineAmounts:
    """The amounts of one line, by the rule of this module."""
    gross = Decimal(quantity) * Decimal(unit_price)
    net = round_money(gross * (HUNDRED - Decimal(discount_percent)) / HUNDRED, currency)
    tax = round_money(net * Decimal(tax_rate) / HUNDRED, currency)
    return LineAmounts(net=net, tax=tax, total=net + tax, tax_rate=Decimal(tax_rate))


@dataclass(frozen=True)
class Totals:
    net: Decimal
    tax: Decimal
    total: Decimal
    #: tax rate -> (net, tax) of the lines at that rate, for the tax summary of a document
    by_rate: dict[Decimal, tuple[Decimal, Decimal]] = field(default_factory=dict)


def document_totals(lines: Iterable[LineAmounts], currency: str) -> Totals:
    """The sums of ``lines`` (zero in ``currency``'s precision for an empty document)."""
    zero = round_money(ZERO, currency)
    net = tax = zero
    by_rate: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for line in lines:
        net += line.net
        tax += line.tax
        rate = line.tax_rate.normalize() if line.tax_rate else ZERO
        rate_net, rate_tax = by_rate.get(rate, (zero, zero))
        by_rate[rate] = (rate_net + line.net, rate_tax + line.tax)
    return Totals(net=net, tax=tax, total=net + tax, by_rate=dict(sorted(by_rate.items())))
