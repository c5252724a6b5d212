"""The business's pick lists (lost reasons, prospect statuses, ...): add, relabel, deactivate,
activate again and reorder options. An option's value key never changes."""

from __future__ import annotations

from typing import Any

from flask import g, request

from crmcore.errors import NotFound
from crmcore.lists import service as lists
from crmcore.lists.models import CORE_LISTS
from crmcore.web.settings.common import attempt, back, ids, moves, render, require_all_known, text
from crmcore.web.settings.views import bp

LIST_TITLES = {
    "lost_reason": "Lost reasons",
    "prospect_status": "Prospect statuses",
    "potential_level": "Potential levels",
    "competitor": "Competitors",
    "stakeholder_role": "Stakeholder roles",
    "team_role": "Team roles",
}


@bp.get("/lists", endpoint="lists")
def lists_index() -> Any:
    return lists_page()


def lists_page(status: int = 200, forms: dict[str, dict[str, Any]] | None = None) -> Any:
    sections = []
    for list_key in sorted(CORE_LISTS, key=lambda k: (k != "lost_reason", LIST_TITLES.get(k, k))):
        options = [{"id": o.id, "value": o.value, "label": o.label, "color": o.color, "active": o.is_active}
                   for o in lists.list_options(g.ctx, list_key, include_inactive=True)]
        sections.append({"key": list_key, "title": LIST_TITLES.get(list_key, list_key), "options": options,
                         "moves": moves([o["id"] for o in options])})
    return render("settings/lists.html", status, lists=sections, forms=forms or {})


def _list_key(list_key: str) -> str:
    if list_key not in CORE_LISTS:
        raise NotFound(f"unknown list {list_key!r}")
    return list_key


def _done(list_key: str) -> str:
    return back("settings.lists", f"list-{list_key}")


@bp.post("/lists/<list_key>/add")
def add_option(list_key: str) -> Any:
    list_key = _list_key(list_key)
    data = {"value": text("value") or "", "label": text("label") or "", **_color()}
    return attempt(lambda: lists.add_option(g.ctx, list_key, data), lists_page, f"add-{list_key}",
                   done="Option added.", then=_done(list_key))


@bp.post("/lists/options/<int:option_id>/edit")
def edit_option(option_id: int) -> Any:
    data = {"label": text("label") or "", **_color()}
    return _option_form(option_id, lambda: lists.update_option(g.ctx, option_id, data), "Option saved.")


@bp.post("/lists/options/<int:option_id>/deactivate")
def deactivate_option(option_id: int) -> Any:
    return _option_form(option_id, lambda: lists.deactivate_option(g.ctx, option_id), "Option deactivated.")


@bp.post("/lists/options/<int:option_id>/activate")
def activate_option(option_id: int) -> Any:
    return _option_form(option_id, lambda: lists.update_option(g.ctx, option_id, {"is_active": True}),
                        "Option activated.")


def _color() -> dict[str, Any]:
    """The colour, when the form has the input (an empty one clears it)."""
    return {"color": text("color")} if "color" in request.form else {}


def _option_form(option_id: int, action: Any, message: str) -> Any:
    return attempt(action, lists_page, f"option-{option_id}", done=message,
                   then=lambda option: _done(option.list_key))


@bp.post("/lists/<list_key>/reorder")
def reorder_options(list_key: str) -> Any:
    list_key = _list_key(list_key)
    wanted = ids("option_ids")
    known = [o.id for o in lists.list_options(g.ctx, list_key, include_inactive=True)]
    require_all_known(wanted, known, "list option")
    return attempt(lambda: lists.reorder_options(g.ctx, list_key, wanted), lists_page, f"add-{list_key}",
                   done=None, then=_done(list_key))
