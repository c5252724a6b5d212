"""Lines: validating what was typed, pricing catalog lines for the party, and the amounts by
:mod:`crmcore.money`'s rule (rounded per line; totals are sums).

The price of a catalog line (``product_id``) comes from :func:`crm_catalog.service.prices_for`
for the quote's party, the line's quantity and the quote's date (special prices, price lists,
quantity breaks), unless someone typed another price: the line then says "manual price".
Precisely, for each line given:

- no unit price: the catalog's price now;
- a new line (or another product) with a price equal to the catalog's: the catalog's, with its
  source; with another price: that price, "manual price";
- an existing catalog line whose price was left as stored: kept as it is while its product and
  quantity are unchanged, priced again when the quantity changed (quantity breaks); a manual
  price left as stored stays manual.

A free line (no product) needs a description and a unit price. A credit (a trade-in) is a
negative unit price; quantities are always more than 0.

Public through :mod:`crm_quoting.service` for other plugins whose documents have catalog lines
(orders): :func:`pricing_for`, :func:`price_lines`, :func:`as_input`, :func:`stored_amounts`
work on any stored line with the attributes of :class:`StoredLine`, not only quote lines, so
such a document prices its lines by exactly the rule of its quote.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from marshmallow import ValidationError

from crm_quoting.models import QuoteLine
from crm_quoting.schemas import LineInput, flat_errors, rate_text
from crmcore.errors import NotFound, ValidationFailed
from crmcore.money import LineAmounts, line_amounts

if TYPE_CHECKING:
    from crmcore.context import Context

MANUAL_PRICE = "manual price"
#: a line's amount stays below this (its net, tax and total; Numeric(18, 4) and exact on SQLite)
AMOUNT_LIMIT = Decimal(10) ** 11
ZERO = Decimal(0)


class StoredLine(Protocol):
    """A line as a document stores it (a quote line, an order line): what the pricing reads of
    an existing line to decide whether its price stays (see the rule above)."""

    id: int
    product_id: int | None
    sku: str | None
    description: str
    quantity: Decimal
    unit: str | None
    unit_price: Decimal
    discount_percent: Decimal
    tax_rate: Decimal
    price_source: str | None
    origin: str | None
    net_amount: Decimal
    tax_amount: Decimal
    total_amount: Decimal


@dataclass(frozen=True)
class Pricing:
    """What pricing a quote's lines needs: whom, in what currency, on which day, which rates."""

    party_id: int | None
    currency: str
    on: dt.date
    tax_rates: tuple[Decimal, ...]
    default_tax_rate: Decimal
    #: what errors call the document ("this quote is in EUR", "this order is in EUR")
    document: str = "quote"


@dataclass(frozen=True)
class PricedLine:
    """A line ready to be written: validated, priced, with its amounts."""

    existing_id: int | None
    product_id: int | None
    sku: str | None
    description: str
    quantity: Decimal
    unit: str | None
    unit_price: Decimal
    discount_percent: Decimal
    tax_rate: Decimal
    price_source: str | None
    origin: str | None
    amounts: LineAmounts


def pricing_for(ctx: Context, party_id: int | None, currency: str, on: dt.date, *,
                document: str = "quote") -> Pricing:
    """The pricing of a document's lines for ``party_id`` in ``currency`` on day ``on``, with
    the business's quoting tax rates (the ``tax_rates`` and ``default_tax_rate`` settings);
    ``document`` is what error messages call it ("order")."""
    from crm_quoting.rules import settings

    cfg = settings(ctx)
    return Pricing(party_id, currency, on, cfg.tax_rates, cfg.default_tax_rate, document)


def as_input(line: StoredLine) -> dict[str, Any]:
    """A stored line as :func:`price_lines` takes it (unchanged, it stays as it is)."""
    return {"id": line.id, "product_id": line.product_id, "sku": line.sku, "description": line.description,
            "quantity": line.quantity, "unit": line.unit, "unit_price": line.unit_price,
            "discount_percent": line.discount_percent, "tax_rate": line.tax_rate}


def load_lines(raw: Sequence[Any], field: str = "lines") -> tuple[dict[int, dict[str, Any]], dict[str, list[str]]]:
    """Each line through :class:`LineInput` on its own, so every line's errors are reported at
    once: ``({index: clean line}, {"lines.2.quantity": [...]})``."""
    clean: dict[int, dict[str, Any]] = {}
    errors: dict[str, list[str]] = {}
    for index, line in enumerate(raw):
        if not isinstance(line, Mapping):
            errors[f"{field}.{index}"] = ["expected an object of line fields"]
            continue
        try:
            clean[index] = LineInput().load(dict(line))
        except ValidationError as exc:
            errors.update(flat_errors(exc.messages, f"{field}.{index}"))
    return clean, errors


def _rates_text(rates: Sequence[Decimal]) -> str:
    return ", ".join(rate_text(r) for r in sorted(set(rates)))


def _catalog_prices(ctx: Context, pricing: Pricing, wanted: dict[int, dict[str, Any]],
                    errors: dict[str, list[str]], field: str) -> tuple[dict[int, Any], dict[tuple[int, Decimal], Any]]:
    """The catalog's products of the lines and their prices for each (product, quantity):
    one query per product plus one pricing call per distinct quantity."""
    from crm_catalog import service as catalog

    products: dict[int, Any] = {}
    for line in wanted.values():
        product_id = line["product_id"]
        if product_id in products:
            continue
        try:
            products[product_id] = catalog.get_product(ctx, product_id)
        except NotFound:
            products[product_id] = None
    for index, line in wanted.items():
        if products.get(line["product_id"]) is None:
            errors[f"{field}.{index}.product_id"] = [f"no product {line['product_id']} in this business's catalog"]
    by_quantity: dict[Decimal, set[int]] = {}
    for line in wanted.values():
        if products.get(line["product_id"]) is not None:
            by_quantity.setdefault(line["quantity"], set()).add(line["product_id"])
    prices: dict[tuple[int, Decimal], Any] = {}
    for quantity, ids in by_quantity.items():
        try:
            found = catalog.prices_for(ctx, sorted(ids), party_id=pricing.party_id, quantity=quantity, on=pricing.on)
        except ValidationFailed as exc:
            for index, line in wanted.items():
                if line["quantity"] == quantity:
                    errors[f"{field}.{index}.quantity"] = [exc.message]
            continue
        prices.update({(product_id, quantity): quote for product_id, quote in found.items()})
    return products, prices


def price_lines(ctx: Context, pricing: Pricing, raw: Sequence[Any], existing: Mapping[int, StoredLine], *,
                origins: Mapping[int, str] | None = None, field: str = "lines") -> list[PricedLine]:
    """Validate and price ``raw`` lines (dicts as :class:`LineInput` takes them) of a document
    whose current lines are ``existing`` (by id; a line given with its ``id`` keeps its price
    by the rule above). Raises ValidationFailed naming each bad field
    (``<field>.<index>.<name>``); nothing is written here: the caller stores the
    :class:`PricedLine` values in its own rows."""
    clean, errors = load_lines(raw, field)
    catalog_lines = {i: line for i, line in clean.items() if line["product_id"] is not None}
    products, prices = _catalog_prices(ctx, pricing, catalog_lines, errors, field) if catalog_lines else ({}, {})
    seen_ids: set[int] = set()
    out: list[PricedLine] = []
    for index, line in sorted(clean.items()):
        at = f"{field}.{index}"
        stored = None
        if line["id"] is not None:
            stored = existing.get(line["id"])
            if stored is None or line["id"] in seen_ids:
                errors[f"{at}.id"] = [f"line {line['id']} is not a line of this {pricing.document} (or is given twice)"]
                continue
            seen_ids.add(line["id"])
        origin = stored.origin if stored is not None else (origins or {}).get(index)
        if line["product_id"] is not None:
            priced = _catalog_line(pricing, line, stored, products.get(line["product_id"]),
                                   prices.get((line["product_id"], line["quantity"])), errors, at)
        else:
            priced = _free_line(pricing, line, errors, at)
        if priced is None:
            continue
        description, unit, unit_price, tax_rate, source, sku = priced
        allowed = set(pricing.tax_rates)
        if line["product_id"] is not None and line["product_id"] in products and products[line["product_id"]]:
            allowed.add(Decimal(products[line["product_id"]].tax_rate))
        if not any(tax_rate == rate for rate in allowed):
            errors[f"{at}.tax_rate"] = [f"{rate_text(tax_rate)} is not a tax rate of this business; "
                                        f"use one of {_rates_text(list(allowed))}"]
            continue
        amounts = line_amounts(line["quantity"], unit_price, pricing.currency,
                               discount_percent=line["discount_percent"], tax_rate=tax_rate)
        if max(abs(amounts.total), abs(amounts.net), abs(line["quantity"] * unit_price)) >= AMOUNT_LIMIT:
            errors[f"{at}.unit_price"] = ["the line's amount is too large"]
            continue
        out.append(PricedLine(
            existing_id=stored.id if stored is not None else None, product_id=line["product_id"], sku=sku,
            description=description, quantity=line["quantity"], unit=unit, unit_price=unit_price,
            discount_percent=line["discount_percent"], tax_rate=Decimal(tax_rate), price_source=source,
            origin=origin, amounts=amounts))
    if errors:
        raise ValidationFailed("invalid lines: check " + ", ".join(sorted(errors)), errors)
    return out


def _catalog_line(pricing: Pricing, line: dict[str, Any], stored: StoredLine | None, product: Any, price: Any,
                  errors: dict[str, list[str]], at: str) -> tuple[Any, ...] | None:
    if product is None or price is None:
        return None  # the error is written already
    same_product = stored is not None and stored.product_id == product.id
    if not product.active and not same_product:
        errors[f"{at}.product_id"] = [f"{product.sku} is no longer sold (inactive in the catalog)"]
        return None
    if price.currency != pricing.currency:
        errors[f"{at}.product_id"] = [f"{product.sku} is priced in {price.currency}; this {pricing.document} is in "
                                      f"{pricing.currency} (prices are never converted)"]
        return None
    given = line["unit_price"]
    if given is None:
        unit_price, source = price.unit_price, price.source
    elif same_product and stored is not None and given == stored.unit_price:
        if stored.price_source == MANUAL_PRICE:
            unit_price, source = stored.unit_price, MANUAL_PRICE
        elif stored.quantity == line["quantity"]:
            unit_price, source = stored.unit_price, stored.price_source
        else:  # the quantity changed and the price was left: the catalog's (quantity breaks)
            unit_price, source = price.unit_price, price.source
    elif given == price.unit_price:
        unit_price, source = price.unit_price, price.source
    else:
        unit_price, source = given, MANUAL_PRICE
    description = line["description"] or product.name
    if price.customer_part_number and not line["description"]:
        description = f"{product.name} (your part number {price.customer_part_number})"[:2000]
    tax_rate = line["tax_rate"] if line["tax_rate"] is not None else Decimal(price.tax_rate)
    return description, line["unit"] or price.unit, Decimal(unit_price), tax_rate, source, line["sku"] or product.sku


def _free_line(pricing: Pricing, line: dict[str, Any], errors: dict[str, list[str]],
               at: str) -> tuple[Any, ...] | None:
    missing = False
    if not line["description"]:
        errors[f"{at}.description"] = ["a line without a catalog product needs a description"]
        missing = True
    if line["unit_price"] is None:
        errors[f"{at}.unit_price"] = ["give a unit price (negative for a credit such as a trade-in)"]
        missing = True
    if missing:
        return None
    tax_rate = line["tax_rate"] if line["tax_rate"] is not None else pricing.default_tax_rate
    return line["description"], line["unit"], line["unit_price"], tax_rate, None, line["sku"]


def write_lines(ctx: Context, quote_id: int, priced: Sequence[PricedLine], existing: Mapping[int, QuoteLine]) -> None:
    """Make the quote's lines exactly ``priced``, in that order (see :func:`store_lines`)."""
    store_lines(ctx, priced, existing, lambda: QuoteLine(quote_id=quote_id))


def store_lines(ctx: Context, priced: Sequence[PricedLine], existing: Mapping[int, Any], new_row: Callable[[], Any],
                *, start: int = 1) -> None:
    """Make a document's lines exactly ``priced``, in that order, numbered from ``start``: the
    rows of ``existing`` given by id are updated in place (their ids stay), the others removed,
    new ones made by ``new_row`` (a row of the caller's own table, with its document set)."""
    kept = {p.existing_id for p in priced if p.existing_id is not None}
    for line_id, row in existing.items():
        if line_id not in kept:
            ctx.session.delete(row)
    ctx.session.flush()
    for position, p in enumerate(priced, start=start):
        row = existing[p.existing_id] if p.existing_id is not None else new_row()
        row.position = position
        row.product_id, row.sku, row.description = p.product_id, p.sku, p.description
        row.quantity, row.unit, row.unit_price = p.quantity, p.unit, p.unit_price
        row.discount_percent, row.tax_rate = p.discount_percent, p.tax_rate
        row.price_source, row.origin = p.price_source, p.origin
        row.net_amount, row.tax_amount, row.total_amount = p.amounts.net, p.amounts.tax, p.amounts.total
        if p.existing_id is None:
            ctx.session.add(row)
    ctx.session.flush()


def stored_amounts(line: StoredLine) -> LineAmounts:
    """A stored line's amounts (what :func:`crmcore.money.document_totals` sums)."""
    return LineAmounts(net=Decimal(line.net_amount), tax=Decimal(line.tax_amount), total=Decimal(line.total_amount),
                       tax_rate=Decimal(line.tax_rate))


__all__ = ["MANUAL_PRICE", "Pricing", "PricedLine", "StoredLine", "as_input", "load_lines", "price_lines",
           "pricing_for", "store_lines", "stored_amounts", "write_lines", "ZERO"]
