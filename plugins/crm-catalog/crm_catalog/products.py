"""Products and services: create, edit, delete (or deactivate when referenced), look up, list
(keyset pages by name) and search (SKU prefix, name substring, the party's part number)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, func, select

from crm_catalog.common import Removal, collect_read_only, fail, key, load, party_or_fail
from crm_catalog.models import CrossReference, PriceList, PriceListItem, Product, SpecialPrice
from crm_catalog.schemas import ProductFilter, ProductInput
from crmcore.audit import service as audit
from crmcore.context import get_or_404, use_case
from crmcore.errors import ValidationFailed
from crmcore.paging import Page, capped_count, clamp_limit, keyset_page
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

#: the largest search result :func:`find_products` returns
FIND_MAX = 100
AUDITED = ("sku", "name", "kind", "unit", "unit_price", "currency", "tax_rate", "active", "stock_on_hand")


def product_by_sku(ctx: Context, sku: str, field: str = "sku") -> Product:
    """The product with this SKU (any case), else a field error."""
    found = ctx.session.scalar(select(Product).where(Product.sku_key == key(sku.strip())))
    if found is None:
        raise fail(field, f"no product with SKU {sku.strip()!r}")
    return found


def product_or_fail(ctx: Context, product_id: int | None, sku: str | None) -> Product:
    """A product named by id (field ``product_id``) or SKU (field ``sku``) in this business."""
    if product_id is not None:
        found = ctx.session.get(Product, product_id)
        if found is None:
            raise fail("product_id", f"no product {product_id} in this business")
        return found
    return product_by_sku(ctx, sku or "")


def _check_sku_free(ctx: Context, sku: str, product_id: int | None) -> None:
    stmt = select(Product.id).where(Product.sku_key == key(sku))
    if product_id is not None:
        stmt = stmt.where(Product.id != product_id)
    if ctx.session.scalar(stmt) is not None:
        raise fail("sku", f"SKU {sku!r} is already used by another product")


def _check_currency_change(ctx: Context, product: Product, currency: str) -> None:
    """Prices are never converted: a product with list items or special prices in its currency
    keeps that currency until they are removed."""
    if currency == product.currency:
        return
    on_lists = ctx.session.scalar(select(exists().where(PriceListItem.product_id == product.id)))
    special = ctx.session.scalar(select(exists().where(SpecialPrice.product_id == product.id)))
    if on_lists or special:
        raise fail("currency", f"the product has prices in {product.currency} on price lists or special prices: "
                               "remove them before changing its currency")


def _changes(product: Product, values: Mapping[str, Any]) -> dict[str, list[Any]]:
    return {name: [getattr(product, name), values[name]] for name in AUDITED
            if name in values and getattr(product, name) != values[name]}


@use_case(Role.ADMIN)
def create_product(ctx: Context, data: Mapping[str, Any]) -> Product:
    """A new product or service; its currency defaults to the business's."""
    values = load(ProductInput, data, "product")
    values["currency"] = values.get("currency") or ctx.business.currency
    _check_sku_free(ctx, values["sku"], None)
    product = Product(**values, sku_key=key(values["sku"]), name_key=key(values["name"]))
    ctx.session.add(product)
    ctx.session.flush()
    audit.record(ctx, "catalog.product.created", product, entity_type="catalog_product",
                 changes={name: values.get(name) for name in AUDITED})
    return product


@use_case(Role.ADMIN)
def update_product(ctx: Context, product_id: int, data: Mapping[str, Any]) -> Product:
    """Change the fields given (the others stay). A blank currency keeps the current one."""
    product = get_or_404(ctx, Product, product_id, "product")
    values = load(ProductInput, data, "product", partial=True)
    if "currency" in values and values["currency"] is None:
        del values["currency"]
    if "sku" in values:
        _check_sku_free(ctx, values["sku"], product.id)
        values["sku_key"] = key(values["sku"])
    if "name" in values:
        values["name_key"] = key(values["name"])
    if "currency" in values:
        _check_currency_change(ctx, product, values["currency"])
    changes = _changes(product, values)
    for name, value in values.items():
        setattr(product, name, value)
    if changes:
        audit.record(ctx, "catalog.product.updated", product, entity_type="catalog_product", changes=changes)
    return product


def references(ctx: Context, product: Product) -> str | None:
    """Why ``product`` cannot be deleted (what still refers to it), or None."""
    counts = ctx.session.execute(select(
        select(func.count()).where(PriceListItem.product_id == product.id).scalar_subquery(),
        select(func.count()).where(SpecialPrice.product_id == product.id).scalar_subquery(),
        select(func.count()).where(CrossReference.product_id == product.id).scalar_subquery(),
    )).one()
    words = [f"{n} {what}" for n, what in zip(counts, ("price list item(s)", "special price(s)",
                                                          "cross reference(s)"), strict=True) if n]
    words += [str(reason) for _plugin, reason in collect_read_only(ctx, "crm_catalog_product_in_use", product=product)]
    return ", ".join(words) or None


@use_case(Role.ADMIN)
def delete_product(ctx: Context, product_id: int) -> Removal:
    """Delete a product nothing refers to; a referenced one is deactivated instead (it stays on
    its price lists and quotes, and is no longer offered in searches)."""
    product = get_or_404(ctx, Product, product_id, "product")
    reason = references(ctx, product)
    if reason:
        if product.active:
            product.active = False
            audit.record(ctx, "catalog.product.deactivated", product, entity_type="catalog_product",
                         changes={"active": [True, False], "reason": reason})
        return Removal(deleted=False, reason=reason)
    audit.record(ctx, "catalog.product.deleted", product, entity_type="catalog_product",
                 changes={"sku": product.sku, "name": product.name})
    ctx.session.delete(product)
    return Removal(deleted=True)


@use_case(Role.READ_ONLY, write=False)
def get_product(ctx: Context, product_id: int) -> Product:
    """The product, or NotFound (also for another business's product)."""
    return get_or_404(ctx, Product, product_id, "product")


@use_case(Role.READ_ONLY, write=False)
def list_products(ctx: Context, filters: Mapping[str, Any] | None = None, *, cursor: str | None = None,
                  limit: int | None = 50) -> Page[Product]:
    """One page of products by name (keyset on ``(name_key, id)``, never OFFSET).

    ``filters``: ``q`` (SKU prefix or name substring, any case) and ``active`` (``"active"``,
    ``"inactive"`` or empty for both). ``page.total`` is a capped count."""
    values = load(ProductFilter, dict(filters or {}), "product filter")
    stmt = select(Product)
    if values.get("q"):
        q = key(values["q"])
        stmt = stmt.where(Product.sku_key.startswith(q, autoescape=True) | Product.name_key.contains(q, autoescape=True))
    if values.get("active"):
        stmt = stmt.where(Product.active.is_(values["active"] == "active"))
    page = keyset_page(ctx.session, stmt, [Product.name_key, Product.id], cursor=cursor, limit=limit)
    page.total = capped_count(ctx.session, stmt)
    return page


@use_case(Role.READ_ONLY, write=False)
def find_products(ctx: Context, q: str, *, party_id: int | None = None, limit: int = 20,
                  active_only: bool = True) -> list[Product]:
    """Products matching ``q``, best first: the party's customer part number (exact, then
    prefix), the SKU (exact, then prefix), then the name (substring). Any case; at most
    ``limit`` (1 to 100); three queries whatever the number found."""
    text = (q or "").strip()
    if "\x00" in text or len(text) > 200:
        raise fail("q", "at most 200 characters")
    limit = min(clamp_limit(limit), FIND_MAX)
    if not text:
        return []
    if party_id is not None:
        party_or_fail(ctx, party_id)
    wanted = key(text)
    base = select(Product).where(Product.active.is_(True)) if active_only else select(Product)
    ranked: list[tuple[int, str, int, Product]] = []
    if party_id is not None:
        rows = ctx.session.execute(
            base.add_columns(CrossReference.part_key).join(CrossReference, CrossReference.product_id == Product.id)
            .where(CrossReference.party_id == party_id, CrossReference.part_key.startswith(wanted, autoescape=True))
            .order_by(CrossReference.part_key, Product.id).limit(limit))
        ranked += [(0 if part == wanted else 1, part, product.id, product) for product, part in rows]
    for product in ctx.session.scalars(base.where(Product.sku_key.startswith(wanted, autoescape=True))
                                       .order_by(Product.sku_key, Product.id).limit(limit)):
        ranked.append((2 if product.sku_key == wanted else 3, product.sku_key, product.id, product))
    for product in ctx.session.scalars(base.where(Product.name_key.contains(wanted, autoescape=True))
                                       .order_by(Product.name_key, Product.id).limit(limit)):
        ranked.append((4, product.name_key, product.id, product))
    seen: set[int] = set()
    out: list[Product] = []
    for _rank, _key, product_id, product in sorted(ranked, key=lambda r: r[:3]):
        if product_id not in seen:
            seen.add(product_id)
            out.append(product)
    return out[:limit]


def check_product_currency(product: Product, currency: str, field: str) -> None:
    """Prices are never mixed: a price for ``product`` must be in its currency."""
    if product.currency != currency:
        raise ValidationFailed(
            f"{product.sku} is priced in {product.currency}, not {currency}",
            {field: [f"{product.sku} is priced in {product.currency}; this price would be in {currency}"]})


def price_list_or_fail(ctx: Context, price_list_id: int, field: str = "price_list_id") -> PriceList:
    found = ctx.session.get(PriceList, price_list_id)
    if found is None:
        raise fail(field, f"no price list {price_list_id} in this business")
    return found
