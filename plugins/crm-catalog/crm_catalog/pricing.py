"""The pricing rule: what a party pays for a product on a day, for a quantity.

Precedence, first match wins (see the README):

1. **special price**: an active party-specific price of this product valid on the day; of
   several, the one that started last (no start date counts as the oldest), then the newest row;
2. **price list**: the party's price lists valid on the day (the assignment's dates AND the
   list's own dates, the list active), taken in the same order (latest start, newest row); the
   first with an item for this product at a ``min_quantity`` <= the quantity gives its item with
   the highest such ``min_quantity``;
3. **list price**: the product's own ``unit_price``.

Currencies are never mixed or converted: a special price or list item counts only when it is in
the product's currency; one in another currency is skipped as if absent. (The forms refuse such
prices, so this only matters for data written around them.) Dates are inclusive at both ends.

:func:`prices_for` prices many products in at most five queries, whatever their number;
:func:`price_for` is the one-product case of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from crm_catalog.common import fail, load, party_or_fail, today
from crm_catalog.models import CrossReference, PriceList, PriceListItem, Product, SpecialPrice
from crm_catalog.schemas import PriceQuery
from crmcore.context import use_case
from crmcore.errors import NotFound
from crmcore.money import LineAmounts, line_amounts
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

LIST_PRICE = "list price"
SPECIAL_PRICE = "special price"
PRICE_LIST = "price list"
#: products one :func:`prices_for` call may price (one IN list per query)
PRICES_MAX = 1000


@dataclass(frozen=True)
class PriceQuote:
    """The price of ``quantity`` units of a product for a party on a day, and where it comes from.

    ``source`` is ``"list price"``, ``"price list <name>"`` or ``"special price"``; ``kind`` the
    same as a key (``list_price``, ``price_list``, ``special_price``); ``source_id`` the id of
    the special price or of the price list (None for the list price); ``valid_to`` the last day
    the source applies (None: open). ``unit_price`` keeps its 4 decimals: round per line with
    :meth:`amounts` (crmcore.money's rule)."""

    product_id: int
    sku: str
    name: str
    unit: str
    unit_price: Decimal
    currency: str
    tax_rate: Decimal
    source: str
    source_id: int | None
    valid_to: dt.date | None
    customer_part_number: str | None
    kind: str
    quantity: Decimal
    on: dt.date

    def amounts(self, quantity: Decimal | None = None, *, discount_percent: Decimal = Decimal(0)) -> LineAmounts:
        """Net, tax and total of a line at this price (``quantity`` defaults to the quoted one),
        rounded by :func:`crmcore.money.line_amounts`."""
        return line_amounts(self.quantity if quantity is None else quantity, self.unit_price, self.currency,
                            discount_percent=discount_percent, tax_rate=self.tax_rate)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: Decimals as strings (never floats), dates as ISO strings."""
        out = asdict(self)
        for name, value in out.items():
            if isinstance(value, Decimal):
                out[name] = str(value)
            elif isinstance(value, dt.date):
                out[name] = value.isoformat()
        return out


def _order(row: SpecialPrice) -> tuple[dt.date, int]:
    """Latest start first (an open start is the oldest), then the newest row."""
    return (row.valid_from or dt.date.min, row.id)


def _earliest(*days: dt.date | None) -> dt.date | None:
    known = [d for d in days if d is not None]
    return min(known) if known else None


def _query(values: Mapping[str, Any], quantity: Any) -> dict[str, Any]:
    return load(PriceQuery, {**values, "quantity": quantity}, "price query")


@use_case(Role.READ_ONLY, write=False)
def prices_for(ctx: Context, product_ids: Iterable[int], *, party_id: int | None = None,
               quantity: Decimal | Mapping[int, Decimal] = Decimal(1),
               on: dt.date | None = None) -> dict[int, PriceQuote]:
    """The price of each product (by id) for ``party_id`` (None: no party, the list price) on
    ``on`` (default: today in the business's time zone) for ``quantity`` (one for all, or a
    mapping product id -> quantity). At most five queries whatever the number of products (up
    to 1,000). An unknown id (or another business's) raises NotFound naming it."""
    ids = list(dict.fromkeys(product_ids))
    if len(ids) > PRICES_MAX:
        raise fail("product_ids", f"at most {PRICES_MAX} products at once")
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 < i < 2**63 for i in ids):
        raise fail("product_ids", "product ids are positive whole numbers")
    base = _query({"party_id": party_id, "on": on}, Decimal(1))
    if isinstance(quantity, Mapping):
        quantities = {i: _query({}, quantity.get(i, Decimal(1)))["quantity"] for i in ids}
    else:
        one = _query({}, quantity)["quantity"]
        quantities = dict.fromkeys(ids, one)
    day = base["on"] or today(ctx)
    party = party_or_fail(ctx, base["party_id"]) if base["party_id"] is not None else None
    products = {p.id: p for p in ctx.session.scalars(select(Product).where(Product.id.in_(ids)))} if ids else {}
    missing = [i for i in ids if i not in products]
    if missing:
        raise NotFound(f"product {', '.join(map(str, missing))} not found")
    specials: list[SpecialPrice] = []
    items: list[tuple[PriceListItem, PriceList]] = []
    parts: dict[int, str] = {}
    if party is not None and ids:
        specials, items, parts = _party_rows(ctx, party.id, ids, day)
    return {i: _price(products[i], quantities[i], day, specials, items, parts) for i in ids}


def _party_rows(ctx: Context, party_id: int, ids: list[int], day: dt.date
                ) -> tuple[list[SpecialPrice], list[tuple[PriceListItem, PriceList]], dict[int, str]]:
    """The party's special prices valid on ``day`` (for these products, or a price list), the
    items of its valid, active lists for these products, and its part numbers: three queries."""
    specials = list(ctx.session.scalars(select(SpecialPrice).where(
        SpecialPrice.party_id == party_id,
        or_(SpecialPrice.product_id.in_(ids), SpecialPrice.price_list_id.is_not(None)),
        or_(SpecialPrice.valid_from.is_(None), SpecialPrice.valid_from <= day),
        or_(SpecialPrice.valid_to.is_(None), SpecialPrice.valid_to >= day))))
    list_ids = {s.price_list_id for s in specials if s.price_list_id is not None}
    items: list[tuple[PriceListItem, PriceList]] = []
    if list_ids:
        items = [(item, plist) for item, plist in ctx.session.execute(
            select(PriceListItem, PriceList).join(PriceList, PriceList.id == PriceListItem.price_list_id).where(
                PriceListItem.price_list_id.in_(list_ids), PriceListItem.product_id.in_(ids),
                PriceList.active.is_(True),
                or_(PriceList.valid_from.is_(None), PriceList.valid_from <= day),
                or_(PriceList.valid_to.is_(None), PriceList.valid_to >= day)))]
    parts: dict[int, str] = {}
    for product_id, part in ctx.session.execute(
            select(CrossReference.product_id, CrossReference.customer_part_number)
            .where(CrossReference.party_id == party_id, CrossReference.product_id.in_(ids))
            .order_by(CrossReference.part_key, CrossReference.id)):
        parts.setdefault(product_id, part)
    return specials, items, parts


def _price(product: Product, quantity: Decimal, day: dt.date, specials: list[SpecialPrice],
           items: list[tuple[PriceListItem, PriceList]], parts: dict[int, str]) -> PriceQuote:
    """The rule of this module for one product, over rows already filtered by party and day."""
    common = {"product_id": product.id, "sku": product.sku, "name": product.name, "unit": product.unit,
              "currency": product.currency, "tax_rate": product.tax_rate, "quantity": quantity, "on": day,
              "customer_part_number": parts.get(product.id)}
    own = [s for s in specials if s.product_id == product.id and s.currency == product.currency]
    if own:
        best = max(own, key=_order)
        return PriceQuote(unit_price=best.unit_price or Decimal(0), source=SPECIAL_PRICE, kind="special_price",
                          source_id=best.id, valid_to=best.valid_to, **common)
    for assignment in sorted((s for s in specials if s.price_list_id is not None), key=_order, reverse=True):
        fitting = [(item, plist) for item, plist in items
                   if plist.id == assignment.price_list_id and item.product_id == product.id
                   and plist.currency == product.currency and item.min_quantity <= quantity]
        if fitting:
            item, plist = max(fitting, key=lambda pair: (pair[0].min_quantity, pair[0].id))
            return PriceQuote(unit_price=item.unit_price, source=f"{PRICE_LIST} {plist.name}", kind="price_list",
                              source_id=plist.id, valid_to=_earliest(assignment.valid_to, plist.valid_to), **common)
    return PriceQuote(unit_price=product.unit_price, source=LIST_PRICE, kind="list_price", source_id=None,
                      valid_to=None, **common)


@use_case(Role.READ_ONLY, write=False)
def price_for(ctx: Context, product_id: int, *, party_id: int | None = None, quantity: Decimal = Decimal(1),
              on: dt.date | None = None) -> PriceQuote:
    """The price of ``quantity`` units of one product for ``party_id`` on ``on`` (default today
    in the business's time zone), by the rule of this module. NotFound for an unknown product;
    ValidationFailed (``party_id``, ``quantity``, ``on``) for bad arguments."""
    if isinstance(product_id, bool) or not isinstance(product_id, int):
        raise NotFound(f"product {product_id} not found")
    return prices_for(ctx, [product_id], party_id=party_id, quantity=quantity, on=on)[product_id]
