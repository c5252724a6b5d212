"""Editing a draft: its header and its lines (all at once, or one line at a time), and the
editor's save of both in one transaction.

Internal: import the use cases from :mod:`crm_quoting.service`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError

from crm_quoting.lines import Pricing, as_input, price_lines, write_lines
from crm_quoting.models import Quote, QuoteLine
from crm_quoting.quotes import (
    check_contact,
    check_dates,
    lines_of,
    require_draft,
    store_totals,
    timeline,
    writable,
)
from crm_quoting.rules import settings
from crm_quoting.schemas import (
    MAX_LINES,
    LineInput,
    QuoteUpdate,
    flat_errors,
    load,
)
from crmcore.context import get_or_404, use_case
from crmcore.errors import ValidationFailed
from crmcore.money import Totals
from crmcore.records import service as records
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context


# --------------------------------------------------------------------------------------------
# editing a draft


HEADER_FIELDS = ("quote_date", "valid_until", "intro", "terms", "billing_address", "shipping_address", "contact_id")


def _check_header(ctx: Context, record: Record, quote: Quote, data: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    try:
        values = QuoteUpdate().load(dict(data)) if isinstance(data, Mapping) else load(QuoteUpdate, data, "quote")
    except ValidationError as exc:  # the fields that did load are still checked below
        errors.update(flat_errors(exc.messages))
        values = exc.valid_data if isinstance(exc.valid_data, dict) else {}
    if "contact_id" in values and record.party_id is not None:
        check_contact(ctx, values["contact_id"], record.party_id, errors)
    if "quote_date" not in errors and "valid_until" not in errors:
        check_dates(values.get("quote_date", quote.quote_date), values.get("valid_until", quote.valid_until), errors)
    if errors:
        raise ValidationFailed("invalid quote: check " + ", ".join(sorted(errors)), errors)
    return values


def _write_header(ctx: Context, record: Record, quote: Quote, values: dict[str, Any]) -> None:
    changed = []
    for key in HEADER_FIELDS:
        if key in values and getattr(quote, key) != values[key]:
            setattr(quote, key, values[key])
            changed.append(key)
    record_changes = {k: values[k] for k in ("title", "contact_id") if k in values}
    if record_changes:
        records.update_record(ctx, record.id, record_changes)
    if changed:
        ctx.session.flush()
        timeline(ctx, record, "quote_updated", f"Quote updated: {', '.join(changed)}", {"fields": changed})


@use_case(Role.MEMBER)
def update_quote(ctx: Context, record_id: int, data: Mapping[str, Any]) -> Record:
    """Change the header of a draft: ``title``, ``contact_id``, ``quote_date``,
    ``valid_until``, ``intro``, ``terms``, ``billing_address``, ``shipping_address`` (None
    clears an address or a text). Only the keys given change. Lines keep their prices (a new
    date prices the lines typed or changed from then on)."""
    record, quote = writable(ctx, record_id)
    require_draft(record, quote)
    _write_header(ctx, record, quote, _check_header(ctx, record, quote, data))
    return record


@use_case(Role.MEMBER)
def save_draft(ctx: Context, record_id: int, header: Mapping[str, Any], lines: Sequence[Mapping[str, Any]]) -> Totals:
    """The editor's save: the header (:func:`update_quote`) and the lines (:func:`set_lines`)
    in one transaction. The errors of both come together (``valid_until``,
    ``lines.2.quantity``) and nothing is written unless all is right."""
    record, quote = writable(ctx, record_id)
    require_draft(record, quote)
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    try:
        values = _check_header(ctx, record, quote, header)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if len(lines) > MAX_LINES:
        errors["lines"] = [f"at most {MAX_LINES} lines"]
        lines = []
    existing = {line.id: line for line in lines_of(ctx, quote.id)}
    pricing = dataclasses.replace(pricing_of(ctx, record, quote), on=values.get("quote_date", quote.quote_date))
    priced = []
    try:
        priced = price_lines(ctx, pricing, list(lines), existing)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed("the quote was not saved: check " + ", ".join(sorted(errors)), errors)
    _write_header(ctx, record, quote, values)
    write_lines(ctx, quote.id, priced, existing)
    return store_totals(ctx, record, quote)


def pricing_of(ctx: Context, record: Record, quote: Quote) -> Pricing:
    cfg = settings(ctx)
    return Pricing(record.party_id, quote.currency, quote.quote_date, cfg.tax_rates, cfg.default_tax_rate)


def _replace_lines(ctx: Context, record: Record, quote: Quote, lines: Sequence[Any]) -> Totals:
    existing = {line.id: line for line in lines_of(ctx, quote.id)}
    priced = price_lines(ctx, pricing_of(ctx, record, quote), lines, existing)
    write_lines(ctx, quote.id, priced, existing)
    return store_totals(ctx, record, quote)


@use_case(Role.MEMBER)
def set_lines(ctx: Context, record_id: int, lines: Sequence[Mapping[str, Any]]) -> Totals:
    """Make the draft's lines exactly ``lines``, in that order; returns the new totals.

    Each line: ``id`` (an existing line, kept and changed in place; lines not given are
    removed), ``product_id`` (a catalog product: description, unit, tax rate and the party's
    price on the quote's date are filled in), ``sku``, ``description``, ``quantity`` (> 0),
    ``unit``, ``unit_price`` (None on a catalog line: the catalog's price; another price than
    the catalog's makes it a "manual price"; negative for a credit), ``discount_percent``
    (0-100) and ``tax_rate`` (one of the business's rates, or the product's own)."""
    record, quote = writable(ctx, record_id)
    require_draft(record, quote)
    if not isinstance(lines, Sequence) or isinstance(lines, str | bytes):
        raise ValidationFailed("invalid lines", {"lines": ["expected a list of lines"]})
    if len(lines) > MAX_LINES:
        raise ValidationFailed(f"at most {MAX_LINES} lines", {"lines": [f"at most {MAX_LINES} lines"]})
    return _replace_lines(ctx, record, quote, list(lines))


def _line(ctx: Context, line_id: Any) -> tuple[Record, Quote, QuoteLine]:
    row = get_or_404(ctx, QuoteLine, line_id, "quote line")
    quote = ctx.session.get(Quote, row.quote_id)
    record, quote = writable(ctx, quote.record_id)
    require_draft(record, quote)
    return record, quote, row


@use_case(Role.MEMBER)
def add_line(ctx: Context, record_id: int, line: Mapping[str, Any], *, position: int | None = None) -> QuoteLine:
    """Add one line to a draft (at the end, or at ``position``, 1-based); returns it."""
    record, quote = writable(ctx, record_id)
    require_draft(record, quote)
    if not isinstance(line, Mapping) or "id" in line:
        raise ValidationFailed("invalid line", {"line": ["expected the fields of a new line (without id)"]})
    if position is not None and (isinstance(position, bool) or not isinstance(position, int) or position < 1):
        raise ValidationFailed("invalid position", {"position": ["a position is a whole number from 1"]})
    current = [as_input(row) for row in lines_of(ctx, quote.id)]
    at = len(current) if position is None else min(position - 1, len(current))
    current.insert(at, dict(line))
    try:
        _replace_lines(ctx, record, quote, current)
    except ValidationFailed as exc:
        raise _about_line(exc, at) from None
    return lines_of(ctx, quote.id)[at]


def _about_line(exc: ValidationFailed, index: int) -> ValidationFailed:
    """The errors of the one line a granular call was about, named by field alone
    (``quantity``); errors of other lines keep their ``lines.<index>.`` names."""
    prefix = f"lines.{index}."
    errors = {key[len(prefix):] if key.startswith(prefix) else key: value for key, value in exc.errors.items()}
    return ValidationFailed("invalid line: check " + ", ".join(sorted(errors)), errors)


@use_case(Role.MEMBER)
def update_line(ctx: Context, line_id: int, changes: Mapping[str, Any]) -> QuoteLine:
    """Change some fields of one line of a draft (the fields of :func:`set_lines`)."""
    record, quote, row = _line(ctx, line_id)
    if not isinstance(changes, Mapping) or "id" in changes:
        raise ValidationFailed("invalid line", {"line": ["expected the fields to change (without id)"]})
    unknown = sorted(set(changes) - set(LineInput().fields) - {"id"})
    if unknown:
        raise ValidationFailed("invalid line", {k: ["Unknown field."] for k in unknown})
    current = [as_input(r) for r in lines_of(ctx, quote.id)]
    index = next(i for i, item in enumerate(current) if item["id"] == row.id)
    if "product_id" in changes and changes["product_id"] != row.product_id:
        current[index].update({"description": None, "unit": None, "sku": None, "tax_rate": None, "unit_price": None})
    current[index].update(changes)
    try:
        _replace_lines(ctx, record, quote, current)
    except ValidationFailed as exc:
        raise _about_line(exc, index) from None
    return ctx.session.get(QuoteLine, row.id)


@use_case(Role.MEMBER)
def remove_line(ctx: Context, line_id: int) -> None:
    """Remove one line of a draft."""
    record, quote, row = _line(ctx, line_id)
    _replace_lines(ctx, record, quote, [as_input(r) for r in lines_of(ctx, quote.id) if r.id != row.id])


@use_case(Role.MEMBER)
def move_line(ctx: Context, line_id: int, position: int) -> None:
    """Put one line of a draft at ``position`` (1-based; beyond the end: last)."""
    record, quote, row = _line(ctx, line_id)
    if isinstance(position, bool) or not isinstance(position, int) or position < 1:
        raise ValidationFailed("invalid position", {"position": ["a position is a whole number from 1"]})
    current = [as_input(r) for r in lines_of(ctx, quote.id) if r.id != row.id]
    current.insert(min(position - 1, len(current)), as_input(row))
    _replace_lines(ctx, record, quote, current)
