"""What belongs to one party: its special prices (a price list, or a product at a fixed price)
and its cross references (the party's own part numbers for our products)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crm_catalog.common import fail, key, load, party_or_fail
from crm_catalog.models import CrossReference, PriceList, Product, SpecialPrice
from crm_catalog.products import check_product_currency, price_list_or_fail, product_or_fail
from crm_catalog.schemas import CrossReferenceInput, SpecialPriceInput
from crmcore.audit import service as audit
from crmcore.context import get_or_404, use_case
from crmcore.errors import NotFound
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

#: rows the party panel shows of each kind (a party with more is rare; the page says so)
PARTY_ROWS_MAX = 200


@dataclass(frozen=True)
class PartyCatalog:
    """A party's special prices and cross references, with the products and lists they name."""

    special_prices: list[SpecialPrice]
    cross_references: list[CrossReference]
    products: dict[int, Product]
    price_lists: dict[int, PriceList]


@use_case(Role.ADMIN)
def add_special_price(ctx: Context, data: Mapping[str, Any]) -> SpecialPrice:
    """Give ``party_id`` a price list (``price_list_id``) or a product (``product_id`` or
    ``sku``) at ``unit_price`` in the product's currency, between ``valid_from`` and
    ``valid_to`` (inclusive; either may be open), with an optional ``note``."""
    values = load(SpecialPriceInput, data, "special price")
    party = party_or_fail(ctx, values["party_id"])
    row = SpecialPrice(party_id=party.id, valid_from=values["valid_from"], valid_to=values["valid_to"],
                       note=values["note"])
    if values["price_list_id"] is not None:
        row.price_list_id = price_list_or_fail(ctx, values["price_list_id"]).id
        what = {"price_list_id": row.price_list_id}
    else:
        field = "sku" if values["product_id"] is None else "product_id"
        product = product_or_fail(ctx, values["product_id"], values["sku"])
        if values["currency"] is not None:
            check_product_currency(product, values["currency"], "currency")
        row.product_id, row.unit_price, row.currency = product.id, values["unit_price"], product.currency
        what = {"product_id": product.id, field: values.get(field), "unit_price": values["unit_price"]}
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(ctx, "catalog.special_price.added", row, entity_type="catalog_special_price",
                 changes={"party_id": party.id, **what, "valid_from": row.valid_from, "valid_to": row.valid_to})
    return row


@use_case(Role.ADMIN)
def remove_special_price(ctx: Context, special_price_id: int, *, party_id: int | None = None) -> None:
    """Remove a special price (of ``party_id`` when given: a URL naming another party's row is
    NotFound, not a removal)."""
    row = get_or_404(ctx, SpecialPrice, special_price_id, "special price")
    if party_id is not None and row.party_id != party_id:
        raise NotFound(f"special price {special_price_id} not found for party {party_id}")
    audit.record(ctx, "catalog.special_price.removed", row, entity_type="catalog_special_price",
                 changes={"party_id": row.party_id, "price_list_id": row.price_list_id,
                          "product_id": row.product_id, "unit_price": row.unit_price})
    ctx.session.delete(row)


@use_case(Role.MEMBER)
def add_cross_reference(ctx: Context, data: Mapping[str, Any]) -> CrossReference:
    """Record ``party_id``'s own part number (and description) for a product (``product_id`` or
    ``sku``). A part number is unique per party, whatever its case."""
    values = load(CrossReferenceInput, data, "cross reference")
    party = party_or_fail(ctx, values["party_id"])
    product = product_or_fail(ctx, values["product_id"], values["sku"])
    part_key = key(values["customer_part_number"])
    taken = ctx.session.scalar(select(CrossReference).where(
        CrossReference.party_id == party.id, CrossReference.part_key == part_key))
    if taken is not None:
        raise fail("customer_part_number",
                   f"{party.name} already uses part number {taken.customer_part_number!r}")
    row = CrossReference(party_id=party.id, product_id=product.id, customer_part_number=values["customer_part_number"],
                         part_key=part_key, customer_description=values["customer_description"])
    ctx.session.add(row)
    ctx.session.flush()
    audit.record(ctx, "catalog.cross_reference.added", row, entity_type="catalog_cross_reference",
                 changes={"party_id": party.id, "product_id": product.id,
                          "customer_part_number": row.customer_part_number})
    return row


@use_case(Role.MEMBER)
def remove_cross_reference(ctx: Context, cross_reference_id: int, *, party_id: int | None = None) -> None:
    row = get_or_404(ctx, CrossReference, cross_reference_id, "cross reference")
    if party_id is not None and row.party_id != party_id:
        raise NotFound(f"cross reference {cross_reference_id} not found for party {party_id}")
    audit.record(ctx, "catalog.cross_reference.removed", row, entity_type="catalog_cross_reference",
                 changes={"party_id": row.party_id, "product_id": row.product_id,
                          "customer_part_number": row.customer_part_number})
    ctx.session.delete(row)


@use_case(Role.READ_ONLY, write=False)
def cross_reference(ctx: Context, party_id: int, customer_part_number: str) -> CrossReference | None:
    """The party's cross reference for a part number (any case), or None."""
    party = party_or_fail(ctx, party_id)
    return ctx.session.scalar(select(CrossReference).where(
        CrossReference.party_id == party.id, CrossReference.part_key == key((customer_part_number or "").strip())))


@use_case(Role.READ_ONLY, write=False)
def party_catalog(ctx: Context, party_id: int) -> PartyCatalog:
    """Everything of the party (up to 200 rows of each kind), newest special prices first and
    cross references by part number, in four queries."""
    party = party_or_fail(ctx, party_id)
    specials = list(ctx.session.scalars(select(SpecialPrice).where(SpecialPrice.party_id == party.id)
                                        .order_by(SpecialPrice.id.desc()).limit(PARTY_ROWS_MAX)))
    refs = list(ctx.session.scalars(select(CrossReference).where(CrossReference.party_id == party.id)
                                    .order_by(CrossReference.part_key, CrossReference.id).limit(PARTY_ROWS_MAX)))
    product_ids = {s.product_id for s in specials if s.product_id} | {r.product_id for r in refs}
    list_ids = {s.price_list_id for s in specials if s.price_list_id}
    products = {p.id: p for p in ctx.session.scalars(select(Product).where(Product.id.in_(product_ids)))} \
        if product_ids else {}
    lists = {p.id: p for p in ctx.session.scalars(select(PriceList).where(PriceList.id.in_(list_ids)))} \
        if list_ids else {}
    return PartyCatalog(specials, refs, products, lists)


def move_party_rows(ctx: Context, from_party_id: int, to_party_id: int) -> int:
    """A merge: the duplicate's special prices and cross references move to the kept party,
    except a part number the kept party already uses (that row stays with the duplicate).
    Returns how many rows moved."""
    taken = select(CrossReference.part_key).where(CrossReference.party_id == to_party_id)
    rows: list[SpecialPrice | CrossReference] = [
        *ctx.session.scalars(select(SpecialPrice).where(SpecialPrice.party_id == from_party_id)),
        *ctx.session.scalars(select(CrossReference).where(CrossReference.party_id == from_party_id,
                                                          CrossReference.part_key.not_in(taken))),
    ]
    for row in rows:
        row.party_id = to_party_id
    ctx.session.flush()
    return len(rows)
