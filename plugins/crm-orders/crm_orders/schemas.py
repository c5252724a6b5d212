"""Validation of everything that comes in (marshmallow): the settings, an order, its header, the
steps of its life and the lookup's filters. Errors name the field; nested ones come out flat
(``billing_address.country``) so a form shows each beside its input. Lines are validated and
priced by quoting's rule (:func:`crm_quoting.service.price_lines`), which names them
``lines.<index>.<field>``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from crm_orders.models import STATUSES, Kind
from crmcore.errors import ValidationFailed

MAX_LINES = 200
MAX_LOAN_DAYS = 730
TEXT_MAX = 5000
#: "overdue" is a filter, not a stored status: a loaner out past its due-back day
OVERDUE = "overdue"
LOOKUP_STATUSES = (*STATUSES, OVERDUE)


class Text(fields.String):
    """A stripped string of at most ``max_length``; empty is None (an error when required)."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", not kwargs.get("required"))
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        text = super()._deserialize(value, attr, data, **kwargs).replace("\r\n", "\n").strip()
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
        super().__init__(strict=False, validate=validate.Range(
            min=1, max=2**63 - 1, error="must be an id (a positive whole number)"), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | None:
        if isinstance(value, str):
            value = value.strip()
            if not value and self.allow_none:
                return None
        if isinstance(value, bool | float) or (isinstance(value, str) and not value.isdigit()):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Day(fields.Date):
    """A date (ISO ``2026-03-01``); "" is None where allowed (an empty date input)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and not value.strip() and self.allow_none:
            return None
        return super()._deserialize(value.strip() if isinstance(value, str) else value, attr, data, **kwargs)


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


class OrdersSettings(Schema):
    """Per-business settings of the orders plugin."""

    order_on_accept = fields.Boolean(load_default=True, metadata={
        "label": "Make a sales order when a quote is accepted",
        "description": "The order takes the quote's party, contact, addresses, currency and lines. Off: "
                       "\"Create order\" on the accepted quote's page makes it."})
    loan_days = fields.Integer(strict=False, load_default=14, validate=validate.Range(
        min=1, max=MAX_LOAN_DAYS, error=f"days of a loan: 1 to {MAX_LOAN_DAYS}"), metadata={
        "label": "Days of a loan", "description": "A new loaner is due back this many days after it is lent "
                                                  "(when no due-back day is given)."})
    remind_due_back = fields.Boolean(load_default=True, metadata={
        "label": "Remind the owner on the due-back day",
        "description": "Handing a loaner over adds a reminder for the order's owner on its due-back day."})


# --------------------------------------------------------------------------------------------
# orders


class AddressInput(Schema):
    """A postal address as it is printed on the order (a snapshot, editable while open)."""

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


class _Header(Schema):
    """What the header of an order holds (shared by a new order and a change)."""

    class Meta:
        unknown = RAISE

    title = Text(300)
    contact_id = Id(allow_none=True)
    order_date = Day(allow_none=False)
    customer_reference = Text(100)
    requested_date = Day(allow_none=True)
    promised_date = Day(allow_none=True)
    billing_address = fields.Nested(AddressInput, allow_none=True)
    shipping_address = fields.Nested(AddressInput, allow_none=True)
    notes = Text(TEXT_MAX)
    unit_description = Text(300)
    unit_serial = Text(100)
    unit_product_id = Id(allow_none=True)
    due_back = Day(allow_none=True)


class OrderInput(_Header):
    """A new order: its kind, for a party or a deal (its party), with optional lines."""

    kind = fields.String(load_default=Kind.SALES.value, validate=validate.OneOf(
        [k.value for k in Kind], error="sales or loaner"))
    party_id = Id(load_default=None, allow_none=True)
    deal_id = Id(load_default=None, allow_none=True)
    currency = Currency(load_default=None, allow_none=True)
    #: each line is checked by quoting's pricing, so the errors of every line come at once
    lines = fields.List(fields.Raw(), validate=validate.Length(max=MAX_LINES, error=f"at most {MAX_LINES} lines"))


class OrderUpdate(_Header):
    """The header of an open order; only the keys given change (None clears a value)."""


class HandOverInput(Schema):
    class Meta:
        unknown = RAISE

    lent_on = Day(load_default=None, allow_none=True)
    due_back = Day(load_default=None, allow_none=True)


class ReturnInput(Schema):
    class Meta:
        unknown = RAISE

    returned_on = Day(load_default=None, allow_none=True)
    condition = Text(2000, load_default=None)


class ExtendInput(Schema):
    class Meta:
        unknown = RAISE

    due_back = Day(required=True, allow_none=False)


class CancelInput(Schema):
    class Meta:
        unknown = RAISE

    reason = Text(2000, required=True)


class LookupFilter(Schema):
    """The lookup's filters; empty values are no filter."""

    class Meta:
        unknown = RAISE

    party_id = Id(load_default=None, allow_none=True)
    deal_id = Id(load_default=None, allow_none=True)
    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(
        LOOKUP_STATUSES, error="use one of " + ", ".join(LOOKUP_STATUSES)))
    kind = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(
        [k.value for k in Kind], error="sales or loaner"))
    date_from = Day(load_default=None, allow_none=True)
    date_to = Day(load_default=None, allow_none=True)
    #: a SKU (its start) or words of a line's description, any case
    item = Text(100, load_default=None)
    product_id = Id(load_default=None, allow_none=True)


# --------------------------------------------------------------------------------------------
# loading


def flat_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"billing_address.line1": ["..."]}``."""
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


def load(schema: type[Schema], data: Any, what: str) -> dict[str, Any]:
    """Validate ``data``; a bad value becomes ValidationFailed naming ``what`` and each field."""
    if not isinstance(data, Mapping):
        raise ValidationFailed(f"invalid {what}", {"_schema": ["expected an object"]})
    try:
        return schema().load(dict(data))
    except ValidationError as exc:
        errors = flat_errors(exc.messages)
    raise ValidationFailed(f"invalid {what}: check {', '.join(sorted(errors))}", errors)
