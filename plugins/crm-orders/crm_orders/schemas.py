"""Validation of everything that comes in (marshmallow): the settings, an order, its header, the
steps of its life and the lookup's filters. Errors name the field; nested ones come out flat
(``billing_address.country``) so a form shows each beside its input. Lines are validated and
priced by quoting's rule (:func:`crm_quoting.service.price_lines`), which names them
``lines.<index>.<field>``. The fields, the address schema and the loading (errors named by
field) are quoting's (:mod:`crm_quoting.service`), so both documents validate alike."""

from __future__ import annotations

from typing import Any

from crm_quoting.service import AddressInput, Currency, Id, Text, flat_errors, load
from marshmallow import RAISE, Schema, fields, validate

from crm_orders.models import STATUSES, Kind

MAX_LINES = 200
MAX_LOAN_DAYS = 730
TEXT_MAX = 5000
#: "overdue" is a filter, not a stored status: a loaner out past its due-back day
OVERDUE = "overdue"
LOOKUP_STATUSES = (*STATUSES, OVERDUE)


class Day(fields.Date):
    """A date (ISO ``2026-03-01``); "" is None where allowed (an empty date input)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and not value.strip() and self.allow_none:
            return None
        return super()._deserialize(value.strip() if isinstance(value, str) else value, attr, data, **kwargs)


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


__all__ = ["MAX_LINES", "OVERDUE", "CancelInput", "Day", "ExtendInput", "HandOverInput", "LookupFilter",
           "OrderInput", "OrderUpdate", "OrdersSettings", "ReturnInput", "flat_errors", "load"]
