"""Validation of everything that comes in (marshmallow): the settings, a quote, its lines, its
addresses, a refusal, an email. Errors name the field; nested ones come out flat
(``lines.2.quantity``, ``billing_address.country``) so a form shows each beside its input."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from crmcore.errors import ValidationFailed
from crmcore.money import to_decimal

#: unit prices and quantities: 10 digits before the point, 4 after (exact on SQLite too)
INTEGER_DIGITS, PLACES = 10, 4
MAX_LINES = 200
MAX_VALIDITY_DAYS = 730
TEXT_MAX = 5000
DESCRIPTION_MAX = 2000


def check_places(value: Decimal, places: int = PLACES, integer_digits: int = INTEGER_DIGITS) -> None:
    """At most ``places`` decimals and ``integer_digits`` digits before the point."""
    _sign, digits, exponent = value.normalize().as_tuple()
    if not isinstance(exponent, int):
        raise ValidationError("must be a number")
    decimals = max(0, -exponent)
    if decimals > places:
        raise ValidationError(f"use at most {places} decimals")
    if (len(digits) - decimals if exponent <= 0 else len(digits) + exponent) > integer_digits:
        raise ValidationError(f"must have at most {integer_digits} digits before the decimal point")


class Number(fields.Field):
    """A Decimal from a string ("12.50" or "12,50"), an int or a Decimal; floats are refused
    (they are not exact); an empty string is None where None is allowed."""

    default_error_messages = {"invalid": "must be a number such as 12.50"}

    def __init__(self, *, places: int = PLACES, integer_digits: int = INTEGER_DIGITS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.places = places
        self.integer_digits = integer_digits

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal | None:
        if isinstance(value, str) and not value.strip():
            if self.allow_none:
                return None
            raise ValidationError("a number is required")
        number = to_decimal(value.strip().replace(",", ".") if isinstance(value, str) else value)
        if number is None:
            raise self.make_error("invalid")
        check_places(number, self.places, self.integer_digits)
        return number + 0  # no negative zero

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)


class Text(fields.String):
    """A stripped string of at most ``max_length``; empty is None (an error when required)."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", not kwargs.get("required"))
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        text = super()._deserialize(value, attr, data, **kwargs)
        text = text.replace("\r\n", "\n").strip()
        if "\x00" in text:
            raise ValidationError("must not contain NUL characters")
        if not text:
            if self.required:
                raise ValidationError("must not be empty")
            return None
        if len(text) > self.max_length:
            raise ValidationError(f"at most {self.max_length} characters")
        return text


class Id(fields.Integer):
    """A row id from JSON or a form ("12"): a positive whole number; "" is None where allowed."""

    default_error_messages = {"invalid": "must be an id (a positive whole number)"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=False, validate=validate.Range(min=1, max=2**63 - 1,
                                                               error="must be an id (a positive whole number)"),
                         **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | None:
        if isinstance(value, str):
            value = value.strip()
            if not value and self.allow_none:
                return None
        if isinstance(value, bool | float) or (isinstance(value, str) and not value.isdigit()):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def rate_text(rate: Decimal) -> str:
    """A tax rate as people write it: 21, 5.5, 0."""
    text = format(Decimal(rate).normalize(), "f")
    return "0" if text in ("-0", "") else text


class RateText(fields.String):
    """A tax rate in percent (0 to 100, 3 decimals), kept as its normalized text ("21", "5.5")
    so settings stay JSON."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        raw = value.strip().replace(",", ".") if isinstance(value, str) else value
        number = to_decimal(raw)
        if number is None:
            raise ValidationError("must be a tax rate in percent, such as 21 or 5.5")
        check_places(number, 3, 3)
        if not Decimal(0) <= number <= Decimal(100):
            raise ValidationError("a tax rate is 0 to 100 percent")
        return rate_text(number)


class RateList(fields.Field):
    """Tax rates as a list (``["0", "21"]``) or as people type them in a settings form
    (``"0, 9, 21"``); kept as their normalized text, sorted: ``"0, 9, 21"``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        items = value.replace(";", ",").split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ValidationError("give tax rates such as 0, 9, 21")
        rates: set[Decimal] = set()
        for item in items:
            if isinstance(item, str) and not item.strip():
                continue
            rates.add(Decimal(RateText()._deserialize(item, attr, data)))
        if not 1 <= len(rates) <= 20:
            raise ValidationError("give 1 to 20 tax rates, such as 0, 9, 21")
        return ", ".join(rate_text(r) for r in sorted(rates))

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return value


def parse_rates(text: str) -> tuple[Decimal, ...]:
    """A stored :class:`RateList` value as Decimals."""
    return tuple(Decimal(part) for part in text.split(",") if part.strip())


class Currency(fields.String):
    """An ISO 4217 code Babel knows; case is normalised (``eur`` -> ``EUR``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        from babel.numbers import is_currency

        text = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if not text and self.allow_none:
            return None
        if len(text) != 3 or not is_currency(text):
            raise ValidationError("must be a currency code such as EUR")
        return text


# --------------------------------------------------------------------------------------------
# settings


class QuotingSettings(Schema):
    """Per-business settings of the quoting plugin."""

    tax_rates = RateList(load_default="0, 9, 21", metadata={
        "label": "Tax rates (%)", "description": "The rates a line may carry, such as 0, 9, 21; a catalog "
                                                 "product's own rate is allowed on its lines too."})
    default_tax_rate = RateText(load_default="21", metadata={
        "label": "Default tax rate (%)", "description": "The rate of a free-text line that gives none."})
    validity_days = fields.Integer(strict=False, load_default=30, validate=validate.Range(
        min=0, max=MAX_VALIDITY_DAYS, error=f"days a quote is valid: 0 to {MAX_VALIDITY_DAYS}"),
        metadata={"label": "Days a quote is valid", "description": "From its date; 0: no valid-until day."})
    accepted_stage_id = Id(load_default=None, allow_none=True, metadata={
        "label": "Deal stage on acceptance (stage id)",
        "description": "An open or won stage of a deal pipeline: a deal in that pipeline moves there when one "
                       "of its quotes is accepted. Empty: deals stay where they are."})
    invoice_on_accept = fields.Boolean(load_default=True, metadata={
        "label": "Draft the invoice on acceptance",
        "description": "Where the invoicing plugin is enabled, an accepted quote becomes an invoice draft."})
    default_intro = Text(TEXT_MAX, load_default=None, metadata={
        "label": "Introduction of new quotes", "description": "Printed above the lines."})
    default_terms = Text(TEXT_MAX, load_default=None, metadata={
        "label": "Terms of new quotes", "description": "Printed below the totals."})

    @validates_schema
    def _default_is_offered(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("default_tax_rate") is not None and data.get("tax_rates") is not None \
                and Decimal(data["default_tax_rate"]) not in parse_rates(data["tax_rates"]):
            raise ValidationError(f"must be one of the tax rates ({data['tax_rates']})", field_name="default_tax_rate")


# --------------------------------------------------------------------------------------------
# quotes


class AddressInput(Schema):
    """A postal address as it is printed on a quote (or another plugin's order: a snapshot, editable)."""

    class Meta:
        unknown = RAISE

    label = Text(100, load_default=None)
    line1 = Text(200, required=True)
    line2 = Text(200, load_default=None)
    postal_code = Text(20, load_default=None)
    city = Text(100, load_default=None)
    region = Text(100, load_default=None)
    country = Text(2, load_default=None, validate=validate.Regexp(
        r"^[A-Za-z]{2}$", error="a two-letter country code such as BE"))


class LineInput(Schema):
    """One line as given: a catalog product (``product_id``; its description, unit, tax rate
    and the party's price are filled in) or free text (``description`` and ``unit_price``)."""

    class Meta:
        unknown = RAISE

    #: an existing line of the quote (editing keeps it: see the price rule in the service)
    id = Id(load_default=None, allow_none=True)
    product_id = Id(load_default=None, allow_none=True)
    sku = Text(64, load_default=None)
    description = Text(DESCRIPTION_MAX, load_default=None)
    quantity = Number(load_default=Decimal(1), validate=validate.Range(
        min=0, min_inclusive=False,
        error="must be more than 0 (a credit, such as a trade-in, is a negative unit price)"))
    unit = Text(20, load_default=None)
    #: None: the catalog's price for the party (catalog lines); required on free lines
    unit_price = Number(load_default=None, allow_none=True)
    discount_percent = Number(load_default=Decimal(0), allow_none=False, validate=validate.Range(
        min=0, max=100, error="a discount is 0 to 100 percent"))
    #: one of the business's tax rates; None: the product's rate, else the default rate
    tax_rate = Number(load_default=None, allow_none=True, places=3, integer_digits=3)


class QuoteInput(Schema):
    """A new quote: for a deal (its party) or for a party, with optional lines."""

    class Meta:
        unknown = RAISE

    deal_id = Id(load_default=None, allow_none=True)
    party_id = Id(load_default=None, allow_none=True)
    contact_id = Id(load_default=None, allow_none=True)
    title = Text(300, load_default=None)
    currency = Currency(load_default=None, allow_none=True)
    quote_date = fields.Date(load_default=None, allow_none=True)
    valid_until = fields.Date(load_default=None, allow_none=True)
    intro = Text(TEXT_MAX, load_default=None)
    terms = Text(TEXT_MAX, load_default=None)
    billing_address = fields.Nested(AddressInput, load_default=None, allow_none=True)
    shipping_address = fields.Nested(AddressInput, load_default=None, allow_none=True)
    #: each line is checked by the pricing (:func:`crm_quoting.lines.price_lines`), so the
    #: errors of every line come at once
    lines = fields.List(fields.Raw(), load_default=list,
                        validate=validate.Length(max=MAX_LINES, error=f"at most {MAX_LINES} lines"))


class QuoteUpdate(Schema):
    """The header of a draft quote; only the keys given change (None clears a value)."""

    class Meta:
        unknown = RAISE

    title = Text(300, required=False, allow_none=False)
    contact_id = Id(allow_none=True)
    quote_date = fields.Date(allow_none=False)
    valid_until = fields.Date(allow_none=True)
    intro = Text(TEXT_MAX)
    terms = Text(TEXT_MAX)
    billing_address = fields.Nested(AddressInput, allow_none=True)
    shipping_address = fields.Nested(AddressInput, allow_none=True)


class RefuseInput(Schema):
    class Meta:
        unknown = RAISE

    reason = Text(2000, required=True)


class SendInput(Schema):
    """An email with the quote: to one of the party's contacts or a typed address."""

    class Meta:
        unknown = RAISE

    contact_id = Id(load_default=None, allow_none=True)
    to = Text(320, load_default=None)
    subject = Text(300, load_default=None)
    message = Text(TEXT_MAX, load_default=None)


# --------------------------------------------------------------------------------------------
# loading


def flat_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"lines.2.quantity": ["..."]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                out.update(flat_errors(value, path))
            else:
                out[path] = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    else:
        out[prefix or "_schema"] = [str(v) for v in messages] if isinstance(messages, list | tuple) else [str(messages)]
    return out


def load(schema: type[Schema], data: Any, what: str, *, partial: bool = False) -> dict[str, Any]:
    """Validate ``data``; a bad value becomes ValidationFailed naming ``what`` and each field."""
    if not isinstance(data, Mapping):
        raise ValidationFailed(f"invalid {what}", {"_schema": ["expected an object"]})
    try:
        return schema().load(dict(data), partial=partial)
    except ValidationError as exc:
        errors = flat_errors(exc.messages)
    raise ValidationFailed(f"invalid {what}: check {', '.join(sorted(errors))}", errors)
