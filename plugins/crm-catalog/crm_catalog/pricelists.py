"""Price lists and their items (a product's price from a minimum quantity on)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import contains_eager

from crm_catalog.common import Removal, fail, key, load
from crm_catalog.models import PriceList, PriceListItem, Product, SpecialPrice
from crm_catalog.products import check_product_currency, product_or_fail
from crm_catalog.schemas import PriceListInput, PriceListItemInput
from crmcore.audit import service as audit
from crmcore.context import get_or_404, use_case
from crmcore.errors import NotFound
from crmcore.paging import Page, capped_count, keyset_page
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

AUDITED = ("name", "currency", "valid_from", "valid_to", "active", "note")


def _check_name_free(ctx: Context, name: str, price_list_id: int | None) -> None:
    stmt = select(PriceList.id).where(PriceList.name_key == key(name))
    if price_list_id is not None:
        stmt = stmt.where(PriceList.id != price_list_id)
    if ctx.session.scalar(stmt) is not None:
        raise fail("name", f"a price list named {name!r} already exists")


@use_case(Role.ADMIN)
def create_price_list(ctx: Context, data: Mapping[str, Any]) -> PriceList:
    """A new, empty price list; its currency defaults to the business's."""
    values = load(PriceListInput, data, "price list")
    values["currency"] = values.get("currency") or ctx.business.currency
    _check_name_free(ctx, values["name"], None)
    price_list = PriceList(**values, name_key=key(values["name"]))
    ctx.session.add(price_list)
    ctx.session.flush()
    audit.record(ctx, "catalog.price_list.created", price_list, entity_type="catalog_price_list",
                 changes={name: values.get(name) for name in AUDITED})
    return price_list


@use_case(Role.ADMIN)
def update_price_list(ctx: Context, price_list_id: int, data: Mapping[str, Any]) -> PriceList:
    """Change the fields given. The dates are checked together with the stored ones; the
    currency of a list with items cannot change (prices are never converted)."""
    price_list = get_or_404(ctx, PriceList, price_list_id, "price list")
    values = load(PriceListInput, data, "price list", partial=True)
    if "currency" in values and values["currency"] is None:
        del values["currency"]
    start = values.get("valid_from", price_list.valid_from)
    end = values.get("valid_to", price_list.valid_to)
    if start is not None and end is not None and start > end:
        raise fail("valid_to", "must be on or after the start date")
    if "name" in values:
        _check_name_free(ctx, values["name"], price_list.id)
        values["name_key"] = key(values["name"])
    if values.get("currency", price_list.currency) != price_list.currency and ctx.session.scalar(
            select(exists().where(PriceListItem.price_list_id == price_list.id))):
        raise fail("currency", f"the list has prices in {price_list.currency}: remove them before changing "
                               "its currency, or create a list in the other currency")
    changes = {name: [getattr(price_list, name), values[name]] for name in AUDITED
               if name in values and getattr(price_list, name) != values[name]}
    for name, value in values.items():
        setattr(price_list, name, value)
    if changes:
        audit.record(ctx, "catalog.price_list.updated", price_list, entity_type="catalog_price_list",
                     changes=changes)
    return price_list


@use_case(Role.ADMIN)
def delete_price_list(ctx: Context, price_list_id: int) -> Removal:
    """Delete a list no party has; a list given to parties is deactivated instead (their
    special-price rows keep it, and it prices nothing while inactive)."""
    price_list = get_or_404(ctx, PriceList, price_list_id, "price list")
    parties = ctx.session.scalar(select(func.count()).where(SpecialPrice.price_list_id == price_list.id)) or 0
    if parties:
        if price_list.active:
            price_list.active = False
            audit.record(ctx, "catalog.price_list.deactivated", price_list, entity_type="catalog_price_list",
                         changes={"active": [True, False]})
        return Removal(deleted=False, reason=f"given to {parties} part{'y' if parties == 1 else 'ies'}")
    audit.record(ctx, "catalog.price_list.deleted", price_list, entity_type="catalog_price_list",
                 changes={"name": price_list.name})
    ctx.session.delete(price_list)
    return Removal(deleted=True)


@use_case(Role.READ_ONLY, write=False)
def get_price_list(ctx: Context, price_list_id: int) -> PriceList:
    return get_or_404(ctx, PriceList, price_list_id, "price list")


@use_case(Role.READ_ONLY, write=False)
def list_price_lists(ctx: Context, *, cursor: str | None = None, limit: int | None = 50) -> Page[PriceList]:
    """One page of price lists by name (keyset), with the number of items of each in
    ``page.extra["items"]`` (one grouped query)."""
    stmt = select(PriceList)
    page = keyset_page(ctx.session, stmt, [PriceList.name_key, PriceList.id], cursor=cursor, limit=limit)
    page.total = capped_count(ctx.session, stmt)
    ids = [p.id for p in page.items]
    counts = dict(ctx.session.execute(
        select(PriceListItem.price_list_id, func.count()).where(PriceListItem.price_list_id.in_(ids))
        .group_by(PriceListItem.price_list_id)).all()) if ids else {}
    page.extra["items"] = {i: counts.get(i, 0) for i in ids}
    return page


@use_case(Role.READ_ONLY, write=False)
def active_price_lists(ctx: Context, limit: int = 200) -> list[PriceList]:
    """Active lists by name (the choices of the "give a price list" form)."""
    return list(ctx.session.scalars(select(PriceList).where(PriceList.active.is_(True))
                                    .order_by(PriceList.name_key, PriceList.id).limit(limit)))


@use_case(Role.ADMIN)
def set_price_list_item(ctx: Context, price_list_id: int, data: Mapping[str, Any]) -> PriceListItem:
    """Price a product on the list from ``min_quantity`` (default 1) on. The product (by
    ``product_id`` or ``sku``) must be priced in the list's currency. An item with the same
    product and minimum quantity gets the new price."""
    price_list = get_or_404(ctx, PriceList, price_list_id, "price list")
    values = load(PriceListItemInput, data, "price list item")
    product = product_or_fail(ctx, values["product_id"], values.get("sku"))
    check_product_currency(product, price_list.currency, "sku" if values["product_id"] is None else "product_id")
    item = ctx.session.scalar(select(PriceListItem).where(
        PriceListItem.price_list_id == price_list.id, PriceListItem.product_id == product.id,
        PriceListItem.min_quantity == values["min_quantity"]))
    old = item.unit_price if item is not None else None
    if item is None:
        item = PriceListItem(price_list_id=price_list.id, product_id=product.id,
                             min_quantity=values["min_quantity"], unit_price=values["unit_price"])
        ctx.session.add(item)
    else:
        item.unit_price = values["unit_price"]
    ctx.session.flush()
    audit.record(ctx, "catalog.price_list.item_set", price_list, entity_type="catalog_price_list",
                 changes={"sku": product.sku, "min_quantity": values["min_quantity"],
                          "unit_price": [old, values["unit_price"]]})
    return item


@use_case(Role.ADMIN)
def remove_price_list_item(ctx: Context, price_list_id: int, item_id: int) -> None:
    price_list = get_or_404(ctx, PriceList, price_list_id, "price list")
    item = get_or_404(ctx, PriceListItem, item_id, "price list item")
    if item.price_list_id != price_list.id:
        raise NotFound(f"item {item_id} is not on price list {price_list.id}")
    audit.record(ctx, "catalog.price_list.item_removed", price_list, entity_type="catalog_price_list",
                 changes={"product_id": item.product_id, "min_quantity": item.min_quantity,
                          "unit_price": item.unit_price})
    ctx.session.delete(item)


@use_case(Role.READ_ONLY, write=False)
def list_price_list_items(ctx: Context, price_list_id: int, *, cursor: str | None = None,
                          limit: int | None = 100) -> Page[PriceListItem]:
    """The list's items by product name then minimum quantity (keyset), each with its
    ``product`` loaded."""
    price_list = get_or_404(ctx, PriceList, price_list_id, "price list")
    stmt = (select(PriceListItem).join(Product, Product.id == PriceListItem.product_id)
            .where(PriceListItem.price_list_id == price_list.id).options(contains_eager(PriceListItem.product)))
    order = [Product.name_key, PriceListItem.min_quantity, PriceListItem.id]
    page = keyset_page(ctx.session, stmt, order, cursor=cursor, limit=limit,
                       key=lambda item: (item.product.name_key, item.min_quantity, item.id))
    page.total = capped_count(ctx.session, select(PriceListItem.id).where(PriceListItem.price_list_id == price_list.id))
    return page
