"""A party's catalog: the "Catalog" panel of the party sheet, its forms (special prices, cross
references), the price & availability inquiry, and the JSON search the quote editor uses.

The panel's inquiry form is a GET to the page showing it (``catalog_q``, ``catalog_qty``), so
its answer appears in the panel on the party sheet itself. The add/remove forms post here; a
refused one is shown again on ``/catalog/parties/<id>`` (the same panel on a page of its own)
with the errors beside the fields and the input kept.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import flash, g, jsonify, redirect, render_template, request, url_for
from markupsafe import Markup

from crm_catalog import service
from crm_catalog.views import bp, error_text, form_values, render, state
from crmcore.errors import Conflict, CrmError, NotFound, ValidationFailed
from crmcore.tenancy.models import Role

SPECIAL_FIELDS = ("sku", "unit_price", "valid_from", "valid_to", "note")
LIST_FIELDS = ("price_list_id", "valid_from", "valid_to", "note")
XREF_FIELDS = ("sku", "customer_part_number", "customer_description")
#: the inquiry's query arguments (prefixed: the party sheet has arguments of its own)
Q_ARG, QTY_ARG = "catalog_q", "catalog_qty"


def _party(party_id: int) -> Any:
    from crmcore.parties.service import get_party

    party = get_party(g.ctx, party_id)
    if party.merged_into_id is not None:
        raise NotFound(f"party {party_id} not found")
    return party


def _inquiry(ctx: Any, party: Any) -> dict[str, Any]:
    """The inquiry form's values and, when it was sent, its matches or its errors."""
    values = {"q": request.args.get(Q_ARG, ""), "quantity": request.args.get(QTY_ARG, "") or "1"}
    out: dict[str, Any] = {"input": values, "asked": Q_ARG in request.args, "matches": [], "state": None}
    if not out["asked"]:
        return out
    if not values["q"].strip():
        out["state"] = {"message": None, "errors": {Q_ARG: ["type a SKU, a name or the customer's part number"]}}
        return out
    try:
        out["matches"] = service.inquire(ctx, values["q"], party_id=party.id, quantity=values["quantity"])
    except ValidationFailed as exc:
        names = {"quantity": QTY_ARG}
        out["state"] = {"message": None,
                        "errors": {names.get(k, Q_ARG): [error_text(v)] for k, v in exc.errors.items()}}
    return out


def _context(ctx: Any, party: Any, form_state: dict[str, Any] | None, inquiry_action: str) -> dict[str, Any]:
    is_admin = ctx.role.allows(Role.ADMIN)
    lists = service.active_price_lists(ctx) if is_admin else []
    return {"party": party, "catalog": service.party_catalog(ctx, party.id), "form_state": form_state,
            "price_list_choices": [(pl.id, f"{pl.name} ({pl.currency})") for pl in lists],
            "is_admin": is_admin, "is_member": ctx.role.allows(Role.MEMBER),
            "inquiry": _inquiry(ctx, party), "inquiry_action": inquiry_action, "q_arg": Q_ARG, "qty_arg": QTY_ARG}


def panel(ctx: Any, party: Any) -> Markup:
    """The panel's HTML (autoescaped template) for the party sheet."""
    action = url_for("parties.sheet", party_id=party.id, _anchor="catalog-panel")
    return Markup(render_template("catalog/_party_panel.html", **_context(ctx, party, None, action)))


def _page(party: Any, status: int = 200, form_state: dict[str, Any] | None = None) -> Any:
    action = url_for("catalog.party", party_id=party.id, _anchor="catalog-panel")
    return render("catalog/party.html", status, **_context(g.ctx, party, form_state, action))


def _back(party_id: int) -> Any:
    return redirect(url_for("parties.sheet", party_id=party_id, _anchor="catalog-panel"))


@bp.get("/parties/<int:party_id>", endpoint="party")
def party_page(party_id: int) -> Any:
    return _page(_party(party_id))


@bp.post("/parties/<int:party_id>/special-prices", endpoint="add_special_price")
def add_special_price(party_id: int) -> Any:
    party = _party(party_id)
    form = "special-list" if request.form.get("target") == "price_list" else "special-product"
    values: dict[str, Any] = form_values(LIST_FIELDS if form == "special-list" else SPECIAL_FIELDS)
    try:
        service.add_special_price(g.ctx, {**values, "party_id": party.id})
    except (ValidationFailed, Conflict) as exc:
        return _page(_party(party_id), exc.status, state(exc, values, form))
    flash("Special price added." if form == "special-product" else "Price list given.", "success")
    return _back(party.id)


@bp.post("/parties/<int:party_id>/special-prices/<int:special_price_id>/delete", endpoint="remove_special_price")
def remove_special_price(party_id: int, special_price_id: int) -> Any:
    party = _party(party_id)
    service.remove_special_price(g.ctx, special_price_id, party_id=party.id)
    flash("Special price removed.", "success")
    return _back(party.id)


@bp.post("/parties/<int:party_id>/cross-references", endpoint="add_cross_reference")
def add_cross_reference(party_id: int) -> Any:
    party = _party(party_id)
    values: dict[str, Any] = form_values(XREF_FIELDS)
    try:
        service.add_cross_reference(g.ctx, {**values, "party_id": party.id})
    except (ValidationFailed, Conflict) as exc:
        return _page(_party(party_id), exc.status, state(exc, values, "xref"))
    flash(f"Part number {values['customer_part_number'].strip()} added.", "success")
    return _back(party.id)


@bp.post("/parties/<int:party_id>/cross-references/<int:cross_reference_id>/delete",
         endpoint="remove_cross_reference")
def remove_cross_reference(party_id: int, cross_reference_id: int) -> Any:
    party = _party(party_id)
    service.remove_cross_reference(g.ctx, cross_reference_id, party_id=party.id)
    flash("Part number removed.", "success")
    return _back(party.id)


def _problem(exc: CrmError) -> Any:
    body: dict[str, Any] = {"status": exc.status, "code": exc.code, "detail": exc.message}
    if exc.errors:
        body["errors"] = exc.errors
    response = jsonify(body)
    response.status_code = exc.status
    response.mimetype = "application/problem+json"
    return response


@bp.get("/products/search.json", endpoint="search_json")
def search_json() -> Any:
    """``?q=&party_id=&quantity=&availability=1``: the active products matching ``q`` with
    their ``price_for`` result for the party (and availability when asked), best first."""
    args = request.args
    try:
        matches = service.inquire(g.ctx, args.get("q", ""), party_id=args.get("party_id") or None,
                                  quantity=args.get("quantity") or Decimal(1),
                                  with_availability=args.get("availability") in ("1", "true"))
    except CrmError as exc:
        return _problem(exc)
    return jsonify({"matches": [m.to_dict() for m in matches]})
