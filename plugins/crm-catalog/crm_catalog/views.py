"""The catalog pages: products (list, create, edit, delete) and price lists with their items.

Views call the service only. A refused form is shown again with each error beside its field and
what was typed kept (422). Everyone in the business reads; admins write (cross references on a
party's page: members too, see :mod:`crm_catalog.party`). Lists page by keyset.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from crm_catalog import service
from crm_catalog.models import PRODUCT_KINDS
from crmcore.errors import Conflict, CrmError, PermissionDenied, ValidationFailed
from crmcore.tenancy.models import Role

bp = Blueprint("catalog", __name__, url_prefix="/catalog", template_folder="templates",
               static_folder="static", static_url_path="/static")

#: GET pages only admins may open (the forms); every other GET is for anyone in the business
ADMIN_PAGES = {"catalog.new_product", "catalog.edit_product", "catalog.new_price_list"}
#: POSTs members may send (a party's cross references); every other POST is for admins
MEMBER_POSTS = {"catalog.add_cross_reference", "catalog.remove_cross_reference"}
PRODUCT_FIELDS = ("sku", "name", "description", "kind", "unit", "unit_price", "currency", "tax_rate",
                  "stock_on_hand")
PRICE_LIST_FIELDS = ("name", "currency", "valid_from", "valid_to", "note")
ITEM_FIELDS = ("sku", "min_quantity", "unit_price")
ACTIVE_CHOICES = (("active", "Active"), ("inactive", "Inactive"))


@bp.before_request
def _roles() -> None:
    ctx = g.get("ctx")
    if request.method in ("GET", "HEAD"):
        needed = Role.ADMIN if request.endpoint in ADMIN_PAGES else Role.READ_ONLY
    else:
        needed = Role.MEMBER if request.endpoint in MEMBER_POSTS else Role.ADMIN
    if ctx is None or not ctx.role.allows(needed):
        role = ctx.role.value.replace("_", "-") if ctx is not None else "none"
        raise PermissionDenied(f"this is for {needed.value.replace('_', '-')}s; you are {role}")


@bp.app_template_filter("catalog_price")
def catalog_price(amount: Decimal | None, currency: str | None) -> str:
    """A unit price with the decimals it has (0.0125 stays 0.0125), at least the currency's."""
    if amount is None:
        return ""
    normalized = Decimal(amount).normalize()
    if normalized == normalized.to_integral_value():
        normalized = normalized.quantize(Decimal(1))
    return format_currency(normalized, currency or "EUR", locale=_locale(), decimal_quantization=False)


def _locale() -> Locale:
    """The business's language as a Babel locale (English when Babel does not know it)."""
    language = (g.ctx.business.language if g.get("ctx") is not None else None) or "en"
    try:
        return Locale.parse(language.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return Locale.parse("en")


@bp.app_template_filter("catalog_qty")
def catalog_qty(value: Decimal | None) -> str:
    """A quantity without trailing zeros (2.5000 -> 2.5)."""
    if value is None:
        return ""
    normalized = Decimal(value).normalize()
    return format(normalized.quantize(Decimal(1)) if normalized == normalized.to_integral_value() else normalized, "f")


def render(name: str, status: int = 200, /, **context: Any) -> Any:
    roles = {"is_admin": g.ctx.role.allows(Role.ADMIN), "is_member": g.ctx.role.allows(Role.MEMBER)}
    return render_template(name, **{"ctx": g.ctx, **roles, **context}), status


def error_text(value: Any) -> str:
    """A marshmallow message (a string, a list, a nested dict) as one line."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {error_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return " ".join(error_text(v) for v in value)
    return str(value)


def state(exc: CrmError, values: dict[str, Any], form: str = "") -> dict[str, Any]:
    """What a refused form needs to show itself again: message, errors by field, the input."""
    return {"form": form, "message": exc.message, "input": values,
            "errors": {k: [error_text(v)] for k, v in (exc.errors or {}).items()}}


def form_values(names: tuple[str, ...]) -> dict[str, str]:
    return {name: request.form.get(name, "") for name in names}


def checked(name: str) -> bool:
    """A checkbox of the forms macros (a hidden "" then the box's "1")."""
    return "1" in request.form.getlist(name)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return catalog_qty(value)
    return str(value)


# --------------------------------------------------------------------------------------------
# products


@bp.get("/", endpoint="products")
def products_page() -> Any:
    filters = {"q": request.args.get("q", ""), "active": request.args.get("active", "")}
    try:
        page = service.list_products(g.ctx, filters, cursor=request.args.get("cursor") or None)
    except ValidationFailed as exc:
        return render("catalog/products.html", 422, page=None, filters=filters, state=state(exc, filters),
                      active_choices=ACTIVE_CHOICES)
    return render("catalog/products.html", page=page, filters=filters, state=None, active_choices=ACTIVE_CHOICES)


def _product_values(product: Any) -> dict[str, str]:
    values = {name: _text(getattr(product, name)) for name in PRODUCT_FIELDS}
    values["unit_price"] = format(Decimal(product.unit_price).normalize(), "f")
    values["active"] = product.active
    return values


def _product_form(product: Any, status: int = 200, form_state: dict[str, Any] | None = None) -> Any:
    if form_state:
        values = form_state["input"]
    elif product is not None:
        values = _product_values(product)
    else:
        values = {"kind": "product", "unit": "pcs", "currency": g.ctx.business.currency, "tax_rate": "0",
                  "active": True}
    return render("catalog/product_form.html", status, product=product, values=values, state=form_state,
                  kinds=[(k, k.capitalize()) for k in PRODUCT_KINDS])


def _save_product(product: Any) -> Any:
    values: dict[str, Any] = form_values(PRODUCT_FIELDS)
    values["active"] = checked("active")
    try:
        if product is None:
            saved = service.create_product(g.ctx, values)
        else:
            saved = service.update_product(g.ctx, product.id, values)
    except (ValidationFailed, Conflict) as exc:
        return _product_form(product, exc.status, state(exc, values))
    flash(f"Product {saved.sku} saved.", "success")
    return redirect(url_for("catalog.products", q=saved.sku))


@bp.route("/products/new", methods=["GET", "POST"], endpoint="new_product")
def new_product() -> Any:
    return _product_form(None) if request.method == "GET" else _save_product(None)


@bp.route("/products/<int:product_id>/edit", methods=["GET", "POST"], endpoint="edit_product")
def edit_product(product_id: int) -> Any:
    product = service.get_product(g.ctx, product_id)
    return _product_form(product) if request.method == "GET" else _save_product(product)


@bp.get("/products/<int:product_id>", endpoint="product")
def product_page(product_id: int) -> Any:
    product = service.get_product(g.ctx, product_id)
    return render("catalog/product.html", product=product, stock=service.availability(g.ctx, product.id))


@bp.post("/products/<int:product_id>/delete", endpoint="delete_product")
def delete_product(product_id: int) -> Any:
    removal = service.delete_product(g.ctx, product_id)
    if removal.deleted:
        flash("Product deleted.", "success")
    else:
        flash(f"The product is still referred to ({removal.reason}): it was deactivated instead.", "success")
    return redirect(url_for("catalog.products"))


# --------------------------------------------------------------------------------------------
# price lists


@bp.get("/price-lists/", endpoint="price_lists")
def price_lists_page() -> Any:
    page = service.list_price_lists(g.ctx, cursor=request.args.get("cursor") or None)
    return render("catalog/price_lists.html", page=page)


def _list_values(price_list: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: _text(getattr(price_list, name)) for name in PRICE_LIST_FIELDS}
    values["active"] = price_list.active
    return values


def _price_list_page(price_list: Any, status: int = 200, form_state: dict[str, Any] | None = None) -> Any:
    if price_list is None:
        values = form_state["input"] if form_state else {"currency": g.ctx.business.currency, "active": True}
        return render("catalog/price_list.html", status, price_list=None, values=values, state=form_state,
                      items=None, item_values={"min_quantity": "1"})
    own = form_state if form_state and form_state["form"] == "list" else None
    item_state = form_state if form_state and form_state["form"] == "item" else None
    items = service.list_price_list_items(g.ctx, price_list.id, cursor=request.args.get("cursor") or None)
    return render("catalog/price_list.html", status, price_list=price_list, state=own, item_state=item_state,
                  values=own["input"] if own else _list_values(price_list), items=items,
                  item_values=item_state["input"] if item_state else {"min_quantity": "1"})


@bp.route("/price-lists/new", methods=["GET", "POST"], endpoint="new_price_list")
def new_price_list() -> Any:
    if request.method == "GET":
        return _price_list_page(None)
    values: dict[str, Any] = form_values(PRICE_LIST_FIELDS)
    values["active"] = checked("active")
    try:
        saved = service.create_price_list(g.ctx, values)
    except (ValidationFailed, Conflict) as exc:
        return _price_list_page(None, exc.status, state(exc, values, "list"))
    flash(f"Price list {saved.name} created: add its prices below.", "success")
    return redirect(url_for("catalog.price_list", price_list_id=saved.id))


@bp.route("/price-lists/<int:price_list_id>", methods=["GET", "POST"], endpoint="price_list")
def price_list_page(price_list_id: int) -> Any:
    price_list = service.get_price_list(g.ctx, price_list_id)
    if request.method == "GET":
        return _price_list_page(price_list)
    values: dict[str, Any] = form_values(PRICE_LIST_FIELDS)
    values["active"] = checked("active")
    try:
        service.update_price_list(g.ctx, price_list.id, values)
    except (ValidationFailed, Conflict) as exc:
        return _price_list_page(service.get_price_list(g.ctx, price_list_id), exc.status, state(exc, values, "list"))
    flash("Price list saved.", "success")
    return redirect(url_for("catalog.price_list", price_list_id=price_list_id))


@bp.post("/price-lists/<int:price_list_id>/delete", endpoint="delete_price_list")
def delete_price_list(price_list_id: int) -> Any:
    removal = service.delete_price_list(g.ctx, price_list_id)
    if removal.deleted:
        flash("Price list deleted.", "success")
        return redirect(url_for("catalog.price_lists"))
    flash(f"The price list is {removal.reason}: it was deactivated instead.", "success")
    return redirect(url_for("catalog.price_list", price_list_id=price_list_id))


@bp.post("/price-lists/<int:price_list_id>/items", endpoint="set_item")
def set_item(price_list_id: int) -> Any:
    price_list = service.get_price_list(g.ctx, price_list_id)
    values = form_values(ITEM_FIELDS)
    try:
        item = service.set_price_list_item(g.ctx, price_list.id, values)
    except (ValidationFailed, Conflict) as exc:
        return _price_list_page(service.get_price_list(g.ctx, price_list_id), exc.status, state(exc, values, "item"))
    flash(f"Price set for {values['sku'].strip()} from {catalog_qty(item.min_quantity)} on.", "success")
    return redirect(url_for("catalog.price_list", price_list_id=price_list_id))


@bp.post("/price-lists/<int:price_list_id>/items/<int:item_id>/delete", endpoint="remove_item")
def remove_item(price_list_id: int, item_id: int) -> Any:
    service.remove_price_list_item(g.ctx, price_list_id, item_id)
    flash("Price removed from the list.", "success")
    return redirect(url_for("catalog.price_list", price_list_id=price_list_id))
