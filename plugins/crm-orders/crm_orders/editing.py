"""Editing an open order: its header and its lines, alone or together (the editor's save, one
transaction). A locked order (anything but open) refuses every change with Conflict.

Internal: import the use cases from :mod:`crm_orders.service`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crm_quoting import service as quoting
from marshmallow import ValidationError

from crm_orders.creating import check_contact, check_loaner, check_unit_product
from crm_orders.models import Kind, Order
from crm_orders.orders import (
    lines_of,
    require_open,
    store_totals,
    timeline,
    writable,
    write_lines,
)
from crm_orders.schemas import MAX_LINES, OrderUpdate, flat_errors
from crmcore.context import use_case
from crmcore.errors import ValidationFailed
from crmcore.money import Totals
from crmcore.records import service as records
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

#: header fields kept on the order's details (title and contact also change the record)
HEADER_FIELDS = ("contact_id", "order_date", "customer_reference", "requested_date", "promised_date",
                 "billing_address", "shipping_address", "notes", "unit_description", "unit_serial",
                 "unit_product_id", "due_back")


def _check_header(ctx: Context, record: Record, order: Order, data: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    if not isinstance(data, Mapping):
        raise ValidationFailed("invalid order", {"_schema": ["expected an object"]})
    try:
        values = OrderUpdate().load(dict(data))
    except ValidationError as exc:  # the fields that did load are still checked below
        errors.update(flat_errors(exc.messages))
        values = exc.valid_data if isinstance(exc.valid_data, dict) else {}
    if "title" in values and values["title"] is None:
        errors["title"] = ["an order needs a title"]
    if "contact_id" in values and record.party_id is not None:
        check_contact(ctx, values["contact_id"], record.party_id, errors)
    day = values.get("order_date") or order.order_date
    stored = {"due_back": order.due_back} if order.kind == Kind.LOANER.value else {}
    check_loaner(order.kind, {**stored, **values}, day, order.lent_on, errors)
    check_unit_product(ctx, values.get("unit_product_id"), errors)
    if errors:
        raise ValidationFailed("invalid order: check " + ", ".join(sorted(errors)), errors)
    return values


def _write_header(ctx: Context, record: Record, order: Order, values: dict[str, Any]) -> None:
    changed = [key for key in HEADER_FIELDS if key in values and getattr(order, key) != values[key]]
    for key in changed:
        setattr(order, key, values[key])
    record_changes = {k: values[k] for k in ("title", "contact_id") if k in values
                      and getattr(record, k) != values[k]}
    if record_changes:
        records.update_record(ctx, record.id, record_changes)
    if changed:
        ctx.session.flush()
        timeline(ctx, record, "order_updated", f"Order updated: {', '.join(changed)}", {"fields": changed})


def pricing_of(ctx: Context, record: Record, order: Order) -> Any:
    return quoting.pricing_for(ctx, record.party_id, order.currency, order.order_date, document="order")


def _lines_or_error(lines: Any) -> list[Any]:
    if not isinstance(lines, Sequence) or isinstance(lines, str | bytes):
        raise ValidationFailed("invalid lines", {"lines": ["expected a list of lines"]})
    if len(lines) > MAX_LINES:
        raise ValidationFailed(f"at most {MAX_LINES} lines", {"lines": [f"at most {MAX_LINES} lines"]})
    return list(lines)


@use_case(Role.MEMBER)
def update_order(ctx: Context, record_id: int, data: Mapping[str, Any]) -> Record:
    """Change the header of an open order: ``title``, ``contact_id``, ``order_date``,
    ``customer_reference``, ``requested_date``, ``promised_date``, ``billing_address``,
    ``shipping_address``, ``notes`` and, on a loaner, ``unit_description``, ``unit_serial``,
    ``unit_product_id``, ``due_back`` (None clears a value). Only the keys given change; lines
    keep their prices. A locked order raises Conflict."""
    record, order = writable(ctx, record_id)
    require_open(record, order)
    _write_header(ctx, record, order, _check_header(ctx, record, order, data))
    return record


@use_case(Role.MEMBER)
def set_lines(ctx: Context, record_id: int, lines: Sequence[Mapping[str, Any]]) -> Totals:
    """Make an open order's lines exactly ``lines``, in that order; returns the new totals.
    Each line as :func:`crm_quoting.service.price_lines` takes it (``id`` keeps an existing line
    and, unchanged, its price; ``product_id`` at the party's price on the order's date; free
    lines with ``description`` and ``unit_price``). A locked order raises Conflict."""
    record, order = writable(ctx, record_id)
    require_open(record, order)
    raw = _lines_or_error(lines)
    existing = {line.id: line for line in lines_of(ctx, order.id)}
    write_lines(ctx, order.id, quoting.price_lines(ctx, pricing_of(ctx, record, order), raw, existing), existing)
    return store_totals(ctx, record, order)


@use_case(Role.MEMBER)
def save_order(ctx: Context, record_id: int, header: Mapping[str, Any], lines: Sequence[Mapping[str, Any]]) -> Totals:
    """The editor's save: the header (:func:`update_order`) and the lines (:func:`set_lines`) in
    one transaction. The errors of both come together (``due_back``, ``lines.2.quantity``) and
    nothing is written unless all is right."""
    record, order = writable(ctx, record_id)
    require_open(record, order)
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    try:
        values = _check_header(ctx, record, order, header)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        raw = _lines_or_error(lines)
    except ValidationFailed as exc:
        errors.update(exc.errors)
        raw = []
    existing = {line.id: line for line in lines_of(ctx, order.id)}
    pricing = dataclasses.replace(pricing_of(ctx, record, order), on=values.get("order_date") or order.order_date)
    priced: list[Any] = []
    try:
        priced = quoting.price_lines(ctx, pricing, raw, existing)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed("the order was not saved: check " + ", ".join(sorted(errors)), errors)
    _write_header(ctx, record, order, values)
    write_lines(ctx, order.id, priced, existing)
    return store_totals(ctx, record, order)
