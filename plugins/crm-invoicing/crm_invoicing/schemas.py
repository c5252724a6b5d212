"""Validation of everything that comes in (marshmallow): the settings, an invoice and its lines,
a payment, a refund, a credit note. Errors name the field; nested ones come out flat
(``lines.2.quantity``) so a form can show each beside its input."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from crmcore.errors import ValidationFailed
from crmcore.lists.schemas import Text, WholeNumber
from crmcore.money import to_decimal

#: Numeric(18, 4): 14 digits before the point, 4 after
INTEGER_DIGITS, PLACES = 14, 4
MAX_LINES = 500
MAX_TERMS_DAYS = 365


def check_places(value: Decimal, places: int = PLACES, integer_digits: int = INTEGER_DIGITS) -> None:
    sign, digits, exponent = value.normalize().as_tuple()
    if not isinstance(exponent, int):
        raise ValidationError("must be a number")
    decimals = max(0, -exponent)
    if decimals > places:
        raise ValidationError(f"use at most {places} decimals")
    if (len(digits) - decimals if exponent <= 0 else len(digits) + exponent) > integer_digits:
        raise ValidationError(f"must have at most {integer_digits} digits before the decimal point")


class Number(fields.Field):
    """A Decimal from a string, an int or a Decimal (floats are refused: they are not exact)."""

    default_error_messages = {"invalid": "must be a number such as 12.50"}

    def __init__(self, *, places: int = PLACES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.places = places

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal | None:
        if isinstance(value, str) and not value.strip() and self.allow_none:
            return None
        number = to_decimal(value.replace(",", ".") if isinstance(value, str) else value)
        if number is None:
            raise self.make_error("invalid")
        check_places(number, self.places)
        return number

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value)


class Currency(fields.String):
    """An ISO 4217 code Babel knows; case is normalised (``eur`` -> ``EUR``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        from babel.numbers import is_currency

        code = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if not code and self.allow_none:
            return None
        if len(code) != 3 or not code.isalpha() or not is_currency(code):
            raise ValidationError("use a three-letter ISO 4217 code such as EUR")
        return code


def rate_text(value: Any) -> str:
    """A tax rate as the canonical text settings keep ("21", "5.5")."""
    number = to_decimal(value)
    if number is None or number < 0 or number > 100:
        raise ValidationError("a tax rate is a number from 0 to 100")
    check_places(number, 4, 3)
    return format(number.normalize(), "f")


class RateText(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return rate_text(value if not isinstance(value, str) else value.strip().replace(",", "."))


# --------------------------------------------------------------------------------------------
# settings


class InvoicingSettings(Schema):
    """Per-business settings of the invoicing plugin."""

    payment_terms_days = WholeNumber(load_default=14, validate=validate.Range(
        min=0, max=MAX_TERMS_DAYS, error=f"days from issue to due: 0 to {MAX_TERMS_DAYS}"))
    tax_rates = fields.List(RateText(), load_default=lambda: ["0", "9", "21"],
                            validate=validate.Length(min=1, max=20, error="give 1 to 20 tax rates"))
    default_tax_rate = RateText(load_default="21")
    #: a deal whose invoice is paid in full moves to this stage (when it is in that stage's pipeline)
    paid_stage_id = WholeNumber(load_default=None, allow_none=True, validate=validate.Range(min=1))

    @validates_schema
    def _default_is_offered(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("default_tax_rate") is not None and data.get("tax_rates") is not None \
                and data["default_tax_rate"] not in data["tax_rates"]:
            raise ValidationError(f"must be one of the tax rates ({', '.join(data['tax_rates'])})",
                                  field_name="default_tax_rate")


# --------------------------------------------------------------------------------------------
# invoices


class LineInput(Schema):
    class Meta:
        unknown = RAISE

    description = Text(500, required=True)
    quantity = Number(required=True, validate=validate.Range(min=0, min_inclusive=False, error="must be more than 0"))
    unit = Text(20, load_default=None)
    unit_price = Number(required=True)
    discount_percent = Number(load_default=Decimal(0), validate=validate.Range(
        min=0, max=100, error="a discount is 0 to 100 percent"))
    #: one of the business's tax rates (settings); default: its default rate
    tax_rate = Number(load_default=None, allow_none=True)
    product_id = WholeNumber(load_default=None, allow_none=True, validate=validate.Range(min=1))
    source_kind = Text(32, load_default=None)
    source_id = WholeNumber(load_default=None, allow_none=True, validate=validate.Range(min=1))


class InvoiceInput(Schema):
    """A new invoice (``create_invoice``): for a party, with lines and the records it comes from."""

    class Meta:
        unknown = RAISE

    party_id = WholeNumber(required=True, validate=validate.Range(min=1))
    contact_id = WholeNumber(load_default=None, allow_none=True, validate=validate.Range(min=1))
    title = Text(300, load_default=None)
    currency = Currency(load_default=None, allow_none=True)
    deal_id = WholeNumber(load_default=None, allow_none=True, validate=validate.Range(min=1))
    quote_id = WholeNumber(load_default=None, allow_none=True, validate=validate.Range(min=1))
    order_id = WholeNumber(load_default=None, allow_none=True, validate=validate.Range(min=1))
    payment_terms_days = WholeNumber(load_default=None, allow_none=True, validate=validate.Range(
        min=0, max=MAX_TERMS_DAYS, error=f"days from issue to due: 0 to {MAX_TERMS_DAYS}"))
    customer_note = Text(2000, load_default=None)
    lines = fields.List(fields.Nested(LineInput), load_default=list, validate=validate.Length(
        max=MAX_LINES, error=f"at most {MAX_LINES} lines"))


class DraftUpdate(Schema):
    """Changes to a draft: only the keys given change; ``lines`` replaces every line."""

    class Meta:
        unknown = RAISE

    contact_id = WholeNumber(allow_none=True, validate=validate.Range(min=1))
    currency = Currency()
    payment_terms_days = WholeNumber(allow_none=True, validate=validate.Range(
        min=0, max=MAX_TERMS_DAYS, error=f"days from issue to due: 0 to {MAX_TERMS_DAYS}"))
    customer_note = Text(2000, allow_none=True)
    lines = fields.List(fields.Nested(LineInput), validate=validate.Length(
        max=MAX_LINES, error=f"at most {MAX_LINES} lines"))


class PaymentInput(Schema):
    """A payment staff record by hand."""

    class Meta:
        unknown = RAISE

    amount = Number(required=True, validate=validate.Range(min=0, min_inclusive=False, error="must be more than 0"))
    method = fields.String(load_default="bank_transfer", validate=validate.OneOf(
        ("bank_transfer", "cash", "cheque", "card", "other"), error="use bank_transfer, cash, cheque, card or other"))
    received_on = fields.Date(load_default=None, allow_none=True)
    reference = Text(200, load_default=None)
    note = Text(2000, load_default=None)
    #: more than the balance is refused unless this says so (the excess is kept as an overpayment)
    overpayment = fields.Boolean(load_default=False)


class RefundInput(Schema):
    class Meta:
        unknown = RAISE

    amount = Number(required=True, validate=validate.Range(min=0, min_inclusive=False, error="must be more than 0"))
    received_on = fields.Date(load_default=None, allow_none=True)
    note = Text(2000, load_default=None)


class GatewayRefundInput(Schema):
    """A refund staff ask the payment's gateway for: how much and why (kept on the timeline)."""

    class Meta:
        unknown = RAISE

    amount = Number(required=True, validate=validate.Range(min=0, min_inclusive=False, error="must be more than 0"))
    reason = Text(500, required=True)


class CreditLineInput(Schema):
    class Meta:
        unknown = RAISE

    line_id = WholeNumber(required=True, validate=validate.Range(min=1))
    #: default: what of the line is not credited yet
    quantity = Number(load_default=None, allow_none=True, validate=validate.Range(
        min=0, min_inclusive=False, error="must be more than 0"))


class CreditNoteInput(Schema):
    """A credit note for an invoice: some of its lines (default: all that is not credited yet)."""

    class Meta:
        unknown = RAISE

    lines = fields.List(fields.Nested(CreditLineInput), load_default=None, allow_none=True,
                        validate=validate.Length(min=1, max=MAX_LINES, error="choose at least one line"))
    reason = Text(2000, load_default=None)


# --------------------------------------------------------------------------------------------
# loading


def flat_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"lines.0.quantity": ["..."]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                out.update(flat_errors(value, name))
            else:
                out[name] = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    else:
        out[prefix or "_schema"] = [str(v) for v in messages] if isinstance(messages, list | tuple) else [str(messages)]
    return out


def load(schema: type[Schema], data: Any, what: str, **kwargs: Any) -> dict[str, Any]:
    """Validate ``data``; a bad value is ValidationFailed naming each field (flat keys)."""
    if not isinstance(data, Mapping):
        raise ValidationFailed(f"invalid {what}", {"_schema": ["expected an object of fields"]})
    try:
        return schema(**kwargs).load(dict(data))
    except ValidationError as exc:
        errors = flat_errors(exc.messages)
    raise ValidationFailed(f"invalid {what}: check {', '.join(sorted(errors))}", errors)
