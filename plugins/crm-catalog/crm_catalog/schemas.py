"""Validation of what users and callers give the catalog (marshmallow 4: unknown keys are errors).

Forms send strings: an empty optional field is None, numbers arrive as text. Money and
quantities are ``Decimal`` (floats are refused: they are not exact), with at most 4 decimals and
10 integer digits, so SQLite (NUMERIC stored as REAL) returns exactly what was written.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from babel.numbers import list_currencies
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from crm_catalog.models import PRODUCT_KINDS
from crmcore.lists.schemas import Text as _Text
from crmcore.money import to_decimal

#: digits allowed before the decimal point of a price or a quantity
INTEGER_DIGITS = 10
PLACES = 4
RATE_PLACES = 3


class Text(_Text):
    """Stripped text of at most ``max_length`` characters, never holding a NUL (no database
    stores one); blank is None where allowed."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text is not None and "\x00" in text:
            raise ValidationError("must not contain NUL characters")
        return text


def _check_digits(value: Decimal, places: int, integer_digits: int) -> None:
    _sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    decimals = max(0, -exponent)
    if decimals > places:
        raise ValidationError(f"use at most {places} decimals")
    whole = len(digits) - decimals if exponent <= 0 else len(digits) + exponent
    if value != 0 and whole > integer_digits:
        raise ValidationError(f"at most {integer_digits} digits before the decimal point")


class Number(fields.Field):
    """A finite Decimal from a Decimal, an int or a numeric string ("12.50"); "" is None where
    allowed. ``minimum`` is inclusive; ``positive`` refuses zero too."""

    def __init__(self, *, minimum: Decimal | None = None, maximum: Decimal | None = None,
                 positive: bool = False, places: int = PLACES, integer_digits: int = INTEGER_DIGITS,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum, self.maximum, self.positive = minimum, maximum, positive
        self.places, self.integer_digits = places, integer_digits

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal | None:
        if isinstance(value, str) and not value.strip():
            if self.allow_none:
                return None
            raise ValidationError("must not be empty")
        number = to_decimal(value)
        if number is None:
            raise ValidationError("must be a number such as 12.50")
        if self.positive and number <= 0:
            raise ValidationError("must be more than 0")
        if self.minimum is not None and number < self.minimum:
            raise ValidationError("must not be negative" if self.minimum == 0 else f"must be at least {self.minimum}")
        if self.maximum is not None and number > self.maximum:
            raise ValidationError(f"must be at most {self.maximum}")
        _check_digits(number, self.places, self.integer_digits)
        return number


def Price(**kwargs: Any) -> Number:  # noqa: N802 - a field factory reads like a field class
    """A unit price: not negative, 4 decimals."""
    return Number(minimum=Decimal(0), **kwargs)


class Currency(fields.String):
    """An ISO 4217 code Babel knows; case is normalised (``eur`` -> ``EUR``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        code = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if not code and self.allow_none:
            return None
        if len(code) != 3 or code not in _currencies():
            raise ValidationError("use a three-letter ISO 4217 code such as EUR")
        return code


def _currencies() -> set[str]:
    return set(list_currencies())


class Day(fields.Date):
    """An ISO date ("2026-03-31"); "" is None where allowed."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date | None:
        if isinstance(value, dt.datetime):
            raise ValidationError("give a date, not a date and time")
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str) and not value.strip():
            if self.allow_none:
                return None
            raise ValidationError("must not be empty")
        return super()._deserialize(value.strip() if isinstance(value, str) else value, attr, data, **kwargs)


class Id(fields.Integer):
    """A row id: a positive whole number ("12" from a form); "" is None where allowed."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("strict", True)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | None:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, str):
            if not value.strip():
                if self.allow_none:
                    return None
                raise ValidationError("must not be empty")
            if not value.strip().isdigit():
                raise self.make_error("invalid")
            value = int(value.strip())
        number = super()._deserialize(value, attr, data, **kwargs)
        if not 1 <= number < 2**63:
            raise ValidationError("not a known id")
        return number


class Flag(fields.Boolean):
    """A checkbox: "1", "on", "true" are yes; "" and "0" are no."""

    truthy = {True, "1", "true", "True", "on", "yes"}
    falsy = {False, "0", "false", "False", "off", "no", ""}


def _dates_in_order(data: dict[str, Any]) -> None:
    start, end = data.get("valid_from"), data.get("valid_to")
    if start is not None and end is not None and start > end:
        raise ValidationError("must be on or after the start date", "valid_to")


def _product_given(original: Any) -> None:
    """A product is named by ``product_id`` or ``sku`` (checked on the input as given, so the
    form shows this beside the SKU together with the other fields' errors)."""
    given = original if isinstance(original, dict) else {}
    if all(given.get(name) in (None, "") or (isinstance(given.get(name), str) and not given[name].strip())
           for name in ("product_id", "sku")):
        raise ValidationError("give the product (its SKU)", "sku")


class ProductInput(Schema):
    """A product or service as created or edited (an edit may give only some fields)."""

    sku = Text(64, required=True, validate=validate.Regexp(
        r"^[^\s\x00-\x1f]+$", error="letters, digits and signs, no spaces"))
    name = Text(200, required=True)
    description = Text(5000, load_default=None)
    kind = fields.String(load_default="product", validate=validate.OneOf(
        PRODUCT_KINDS, error="product or service"))
    unit = Text(20, load_default="pcs", not_empty=True)
    unit_price = Price(required=True)
    currency = Currency(load_default=None, allow_none=True)
    tax_rate = Number(minimum=Decimal(0), maximum=Decimal(100), places=RATE_PLACES, load_default=Decimal(0))
    active = Flag(load_default=True)
    stock_on_hand = Number(minimum=Decimal(0), allow_none=True, load_default=None)


class PriceListInput(Schema):
    name = Text(200, required=True)
    currency = Currency(load_default=None, allow_none=True)
    valid_from = Day(allow_none=True, load_default=None)
    valid_to = Day(allow_none=True, load_default=None)
    active = Flag(load_default=True)
    note = Text(500, load_default=None)

    @validates_schema
    def _dates(self, data: dict[str, Any], **_kwargs: Any) -> None:
        _dates_in_order(data)


class PriceListItemInput(Schema):
    """One price on a list: the product by id, or by SKU (what a form types)."""

    product_id = Id(allow_none=True, load_default=None)
    sku = Text(64, load_default=None)
    unit_price = Price(required=True)
    min_quantity = Number(minimum=Decimal(1), load_default=Decimal(1))

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _product(self, data: dict[str, Any], original: Any, **_kwargs: Any) -> None:
        _product_given(original)


class SpecialPriceInput(Schema):
    """A party's special price: EITHER ``price_list_id`` OR a product (``product_id`` or ``sku``)
    with its ``unit_price``."""

    party_id = Id(required=True)
    price_list_id = Id(allow_none=True, load_default=None)
    product_id = Id(allow_none=True, load_default=None)
    sku = Text(64, load_default=None)
    unit_price = Price(allow_none=True, load_default=None)
    currency = Currency(load_default=None, allow_none=True)
    valid_from = Day(allow_none=True, load_default=None)
    valid_to = Day(allow_none=True, load_default=None)
    note = Text(500, load_default=None)

    @validates_schema
    def _target(self, data: dict[str, Any], **_kwargs: Any) -> None:
        _dates_in_order(data)
        has_product = data.get("product_id") is not None or bool(data.get("sku"))
        if data.get("price_list_id") is not None:
            if has_product:
                raise ValidationError("give either a price list or a product, not both", "price_list_id")
            if data.get("unit_price") is not None:
                raise ValidationError("a price list brings its own prices", "unit_price")
            return
        if not has_product:
            raise ValidationError("give a price list or a product", "price_list_id")
        if data.get("unit_price") is None:
            raise ValidationError("give the special unit price", "unit_price")


class CrossReferenceInput(Schema):
    party_id = Id(required=True)
    product_id = Id(allow_none=True, load_default=None)
    sku = Text(64, load_default=None)
    customer_part_number = Text(64, required=True)
    customer_description = Text(500, load_default=None)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _product(self, data: dict[str, Any], original: Any, **_kwargs: Any) -> None:
        _product_given(original)


class PriceQuery(Schema):
    """The arguments of the pricing API (``price_for``, ``prices_for``)."""

    party_id = Id(allow_none=True, load_default=None)
    quantity = Number(positive=True, load_default=Decimal(1))
    on = Day(allow_none=True, load_default=None)


class ProductFilter(Schema):
    """The product list's filter: a search text and the active state."""

    q = Text(200, load_default=None)
    active = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(
        ("", "active", "inactive"), error="active, inactive or empty"))


class AvailabilityAnswer(Schema):
    """One answer of a ``crm_catalog_availability`` implementation (unknown keys are ignored)."""

    class Meta:
        unknown = EXCLUDE

    source = Text(200, required=True)
    available = Number(required=True, minimum=Decimal(0))
    location = Text(200, load_default=None)
    lead_time_days = fields.Integer(load_default=None, allow_none=True, strict=True,
                                    validate=validate.Range(min=0, max=3650))
