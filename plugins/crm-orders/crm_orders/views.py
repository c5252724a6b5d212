"""The orders pages under ``/orders``: the lookup, "New order", the editor of an open order,
the steps (fulfil, hand over, extend, return, cancel), "Create order" from a quote and "Create
invoice".

Views call services only. Every form works without JavaScript (a typed SKU picks the catalog
product); a refused form comes back with each error beside its field and what was typed kept
(422). Every POST carries the CSRF token (the core checks it), GET pages need a member of the
business (read-only included), every write is for members (the services check the role again).
The blueprint answers 404 where the plugin is off (the core checks it per request).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from crm_quoting.service import (
    SPARE_ROWS,
    find_sku,
    form_text,
    is_blank,
    kept_rows,
    row_errors,
    rows_to_send,
    service_line,
    spare_rows,
    stored_rows,
)
from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from crm_orders import service
from crm_orders.models import STATUSES, Kind
from crm_orders.schemas import OVERDUE
from crmcore.errors import Conflict, CrmError, PermissionDenied, ValidationFailed
from crmcore.tenancy.models import Role

bp = Blueprint("orders", __name__, url_prefix="/orders", template_folder="templates", static_folder="static",
               static_url_path="/static")

ADDRESS_FIELDS = ("line1", "line2", "postal_code", "city", "region", "country")
HEADER_FIELDS = ("contact_id", "order_date", "customer_reference", "requested_date", "promised_date", "notes")
LOANER_FIELDS = ("unit_description", "unit_serial", "due_back")
NEW_FIELDS = ("kind", "party_id", "deal_id", "title", "customer_reference", "order_date", *LOANER_FIELDS)
FILTERS = ("party_id", "deal_id", "status", "kind", "date_from", "date_to", "item", "product_id")
STATUS_CHOICES = [("", "Any status"), *((s, s) for s in (*STATUSES[:3], "out", OVERDUE, "returned", "cancelled"))]


@bp.before_request
def _roles() -> None:
    ctx = g.get("ctx")
    needed = Role.READ_ONLY if request.method in ("GET", "HEAD") else Role.MEMBER
    if ctx is None or not ctx.role.allows(needed):
        role = ctx.role.value.replace("_", "-") if ctx is not None else "none"
        raise PermissionDenied(f"changing orders is for members; you are {role}")


def _render(name: str, status: int = 200, /, **context: Any) -> Any:
    return render_template(name, ctx=g.ctx, can_write=g.ctx.role.allows(Role.MEMBER), **context), status


def _see(url: str) -> Any:
    return redirect(url, code=303)


def _record_url(record_id: int) -> str:
    return url_for("records.detail", record_id=record_id)


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths: never an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _party_name(party_id: Any) -> str | None:
    from crmcore.parties.service import get_party

    try:
        return get_party(g.ctx, int(party_id)).name if party_id else None
    except (CrmError, TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# the lookup


@bp.get("/", endpoint="index")
def index() -> Any:
    filters = {key: request.args.get(key, "") for key in FILTERS}
    error = None
    try:
        page = service.lookup_orders(g.ctx, filters, cursor=request.args.get("cursor") or None)
    except ValidationFailed as exc:
        page, error = None, exc
    return _render("orders/lookup.html", 422 if error else 200, page=page, filters=filters, error=error,
                   errors=(error.errors if error else {}) or {}, statuses=STATUS_CHOICES,
                   party_name=_party_name(filters["party_id"]) if filters["party_id"].isdigit() else None)


# --------------------------------------------------------------------------------------------
# new orders


def _new_values(form: Mapping[str, Any]) -> dict[str, Any]:
    return {key: (form.get(key) or "").strip() for key in NEW_FIELDS}


@bp.route("/new", methods=["GET", "POST"], endpoint="new")
def new() -> Any:
    """The "New order" form; the panels' buttons post ``kind`` with ``party_id`` or ``deal_id``
    (and ``quick``: an error goes back to the page as a message)."""
    if request.method == "GET":
        values = _new_values(request.args)
        values["kind"] = values["kind"] or Kind.SALES.value
        return _render("orders/new.html", values=values, errors={}, message=None,
                       party_name=_party_name(values["party_id"]))
    values = _new_values(request.form)
    data = {k: v for k, v in values.items() if v}
    try:
        record = service.create_order(g.ctx, data)
    except (ValidationFailed, Conflict) as exc:
        back = _safe_next(request.form.get("next"))
        if request.form.get("quick") and back:
            flash(f"No order was made: {str(exc)}", "error")
            return _see(back)
        return _render("orders/new.html", exc.status, values=values, errors=exc.errors or {}, message=exc.message,
                       party_name=_party_name(values["party_id"]))
    flash(f"Order {record.reference or record.id} created: add its lines.", "success")
    return _see(url_for("orders.edit", record_id=record.id))


@bp.post("/from-quote/<int:quote_id>", endpoint="from_quote")
def from_quote(quote_id: int) -> Any:
    """"Create order" on an accepted quote: its order (the existing one if it has one)."""
    existing = service.order_for_quote(g.ctx, quote_id)
    try:
        record = existing or service.create_order_from_quote(g.ctx, quote_id)
    except (ValidationFailed, Conflict) as exc:
        flash(f"No order was made: {str(exc)}", "error")
        return _see(_record_url(quote_id))
    flash(f"This quote already has order {record.reference or record.id}." if existing is not None
          else f"Order {record.reference or record.id} made from the quote.", "success")
    return _see(_record_url(record.id))


# --------------------------------------------------------------------------------------------
# the editor


def _header_values(view: service.OrderView) -> dict[str, Any]:
    order = view.order
    values = {name: form_text(getattr(order, name)) for name in (*HEADER_FIELDS, *LOANER_FIELDS)}
    values["unit_sku"] = ""
    if order.unit_product_id:
        from crm_catalog import service as catalog

        try:
            values["unit_sku"] = catalog.get_product(g.ctx, order.unit_product_id).sku
        except CrmError:
            values["unit_sku"] = ""
    for kind in ("billing_address", "shipping_address"):
        address = getattr(order, kind) or {}
        for name in ADDRESS_FIELDS:
            values[f"{kind}.{name}"] = address.get(name) or ""
    return values


def _editor(view: service.OrderView, status: int = 200, *, values: dict[str, Any] | None = None,
            rows: list[dict[str, Any]] | None = None, failed: CrmError | None = None) -> Any:
    from crm_quoting import service as quoting

    errors = (failed.errors if failed else {}) or {}
    shown = {*HEADER_FIELDS, *LOANER_FIELDS, "unit_sku", "unit_product_id"}
    general = {key: value for key, value in errors.items()
               if not key.startswith(("lines.", "billing_address.", "shipping_address.")) and key not in shown}
    contacts = quoting.contacts_of(g.ctx, view.record.party_id) if view.record.party_id else {}
    return _render("orders/editor.html", status, view=view, values=values or _header_values(view),
                   rows=rows or stored_rows(view.lines), errors=errors, general=general,
                   message=failed.message if failed else None, contacts=contacts,
                   rates=_rates(view), record_url=_record_url(view.record.id))


def _rates(view: service.OrderView) -> list[str]:
    """The tax rates a line may pick: quoting's, and those the order's lines have."""
    from crm_quoting import service as quoting

    cfg = quoting.settings(g.ctx)
    return [form_text(r) for r in sorted({*cfg.tax_rates, *(ln.tax_rate for ln in view.lines)})]


def _header(form: MultiDict, view: service.OrderView, errors: dict[str, list[str]]) -> dict[str, Any]:
    header: dict[str, Any] = {name: (form.get(name) or "").strip() or None for name in HEADER_FIELDS}
    if header["order_date"] is None:
        header.pop("order_date")
    for kind in ("billing_address", "shipping_address"):
        address = {name: (form.get(f"{kind}.{name}") or "").strip() for name in ADDRESS_FIELDS}
        header[kind] = {k: v for k, v in address.items() if v} or None
    if view.order.kind == Kind.LOANER.value:
        header.update({name: (form.get(name) or "").strip() or None for name in LOANER_FIELDS})
        sku = (form.get("unit_sku") or "").strip()
        header["unit_product_id"] = None
        if sku:
            product = find_sku(g.ctx, sku, view.record.party_id)
            if product is None:
                errors["unit_sku"] = [f"no product in the catalog has the SKU {sku!r}"]
            else:
                header["unit_product_id"] = product.id
                header["unit_description"] = header["unit_description"] or product.name
    return header


@bp.route("/<int:record_id>/edit", methods=["GET", "POST"], endpoint="edit")
def edit(record_id: int) -> Any:
    """Header and lines of an open order in one form; "Save" stays here, "Save and close" goes
    to the order's page. A locked order sends back to its page with the reason."""
    view = service.get_order(g.ctx, record_id)
    if view.locked:
        flash(f"This order is {view.order.status} and locked: only an open order can be changed.", "error")
        return _see(_record_url(record_id))
    if request.method == "GET":
        return _editor(view)
    form = request.form
    rows, sent, errors = rows_to_send(g.ctx, form, view.record.party_id, "lines")
    header = _header(form, view, errors)
    try:
        if errors:
            raise ValidationFailed("the order was not saved: check " + ", ".join(sorted(errors)), errors)
        service.save_order(g.ctx, record_id, header, [service_line(row) for row in sent])
    except (ValidationFailed, Conflict) as exc:
        failed = ValidationFailed("The order was not saved: see the marked fields.",
                                  row_errors(exc.errors, sent)) if exc.errors else exc
        values = {name: form.get(name, "") for name in form if not name.startswith("lines.")}
        return _editor(service.get_order(g.ctx, record_id), exc.status, values=values,
                       rows=kept_rows(rows, SPARE_ROWS), failed=failed)
    flash("Order saved.", "success")
    if form.get("then") == "close":
        return _see(_record_url(record_id))
    return _see(url_for("orders.edit", record_id=record_id))


# --------------------------------------------------------------------------------------------
# steps


def _step(record_id: int, fn: Any, done: str) -> Any:
    try:
        fn()
    except (ValidationFailed, Conflict) as exc:
        flash(str(exc), "error")
    else:
        flash(done, "success")
    return _see(_record_url(record_id))


@bp.post("/<int:record_id>/fulfil", endpoint="fulfil")
def fulfil(record_id: int) -> Any:
    return _step(record_id, lambda: service.fulfil_order(g.ctx, record_id),
                 "Order fulfilled: it is locked now.")


@bp.post("/<int:record_id>/extend", endpoint="extend")
def extend(record_id: int) -> Any:
    return _step(record_id, lambda: service.extend_loan(g.ctx, record_id, request.form.get("due_back", "")),
                 "Due-back day changed.")


#: the small forms of a step: (title, button, fields (name, label, type), service call, done message)
STEPS: dict[str, dict[str, Any]] = {
    "hand_over": {"title": "Hand the unit over", "button": "Hand over",
                  "fields": (("lent_on", "Lent on", "date"), ("due_back", "Due back", "date")),
                  "call": lambda ctx, rid, data: service.hand_over(ctx, rid, data),
                  "done": "Unit handed over: the loaner is out."},
    "return": {"title": "Take the unit back", "button": "Unit returned",
               "fields": (("returned_on", "Returned on", "date"), ("condition", "Condition", "textarea")),
               "call": lambda ctx, rid, data: service.return_unit(ctx, rid, data),
               "done": "Unit returned."},
    "cancel": {"title": "Cancel the order", "button": "Cancel order",
               "fields": (("reason", "Why is it cancelled?", "textarea"),),
               "call": lambda ctx, rid, data: service.cancel_order(ctx, rid, data.get("reason", "")),
               "done": "Order cancelled."},
}


def _step_defaults(name: str, view: service.OrderView) -> dict[str, str]:
    if name == "hand_over":
        order = view.order
        due = order.due_back if order.due_back and order.due_back >= view.today else None
        return {"lent_on": form_text(view.today), "due_back": form_text(due)}
    if name == "return":
        return {"returned_on": form_text(view.today), "condition": ""}
    return {"reason": ""}


def _step_page(name: str, record_id: int) -> Any:
    step = STEPS[name]
    view = service.get_order(g.ctx, record_id)
    if request.method == "GET":
        return _render("orders/step.html", view=view, step=step, name=name, values=_step_defaults(name, view),
                       errors={}, message=None)
    values = {field: request.form.get(field, "") for field, _label, _type in step["fields"]}
    try:
        step["call"](g.ctx, record_id, {k: v for k, v in values.items() if v.strip()} if name != "cancel" else values)
    except (ValidationFailed, Conflict) as exc:
        return _render("orders/step.html", exc.status, view=service.get_order(g.ctx, record_id), step=step,
                       name=name, values=values, errors=exc.errors or {}, message=exc.message)
    flash(step["done"], "success")
    return _see(_record_url(record_id))


@bp.route("/<int:record_id>/hand-over", methods=["GET", "POST"], endpoint="hand_over")
def hand_over(record_id: int) -> Any:
    return _step_page("hand_over", record_id)


@bp.route("/<int:record_id>/return", methods=["GET", "POST"], endpoint="return_unit")
def return_unit(record_id: int) -> Any:
    return _step_page("return", record_id)


@bp.route("/<int:record_id>/cancel", methods=["GET", "POST"], endpoint="cancel")
def cancel(record_id: int) -> Any:
    return _step_page("cancel", record_id)


# --------------------------------------------------------------------------------------------
# invoicing


@bp.route("/<int:record_id>/invoice", methods=["GET", "POST"], endpoint="invoice")
def invoice(record_id: int) -> Any:
    """"Create invoice": a sales order's lines as they are; a loaner's with the charges typed
    here (the loan fee, a repair)."""
    view = service.get_order(g.ctx, record_id)
    loaner = view.order.kind == Kind.LOANER.value
    if request.method == "GET":
        return _render("orders/invoice.html", view=view, rows=spare_rows([], SPARE_ROWS) if loaner else [],
                       errors={}, message=None, rates=_rates(view))
    data: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []
    try:
        if loaner:
            rows, sent, errors = rows_to_send(g.ctx, request.form, view.record.party_id, "charges")
            if errors:
                raise ValidationFailed("no invoice was made: check " + ", ".join(sorted(errors)), errors)
            data["charges"] = [service_line(row) for row in sent]
        service.create_invoice(g.ctx, record_id, data)
    except (ValidationFailed, Conflict) as exc:
        if not loaner:
            flash(str(exc), "error")
            return _see(_record_url(record_id))
        kept = [r for r in rows if not is_blank(r)]
        return _render("orders/invoice.html", exc.status, view=service.get_order(g.ctx, record_id),
                       rows=kept_rows(rows, max(1, SPARE_ROWS - len(kept))),
                       errors=row_errors(exc.errors or {}, sent, "charges"), message=exc.message, rates=_rates(view))
    flash("Invoice draft made: the order is invoiced. Check the invoice, then issue it.", "success")
    return _see(_record_url(record_id))


__all__ = ["bp"]
