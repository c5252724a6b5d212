"""Numbering rules per target, with a preview of the codes a pattern gives before it is saved."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, request

from crmcore.errors import Conflict, NotFound, ValidationFailed, Veto
from crmcore.numbering import service as numbering
from crmcore.web.settings.common import back, checked, form_state, render, text, typed
from crmcore.web.settings.field_pages import targets
from crmcore.web.settings.views import bp


@bp.get("/numbering", endpoint="numbering")
def numbering_index() -> Any:
    return numbering_page()


def numbering_page(status: int = 200, forms: dict[str, dict[str, Any]] | None = None) -> Any:
    rules = {r.target: {"pattern": r.pattern, "active": r.is_active} for r in numbering.list_rules(g.ctx)}
    rows = []
    for target, label in targets():
        rule = rules.get(target)
        rows.append({"target": target, "label": label, "form": _form_id(target), "rule": rule,
                     "sample": _sample(rule["pattern"]) if rule else None})
    return render("settings/numbering.html", status, rows=rows, forms=forms or {})


def _form_id(target: str) -> str:
    return "rule-" + target.replace(":", "-")


def _sample(pattern: str) -> str | None:
    try:
        return numbering.preview(pattern, count=1)[0]
    except ValidationFailed:
        return None


def _target() -> str:
    target = request.form.get("target", "")
    if target not in {t for t, _label in targets()}:
        raise NotFound(f"unknown target {target!r}")
    return target


@bp.post("/numbering")
def save_rule() -> Any:
    """"Preview" shows the codes the typed pattern gives (nothing saved); "Save" stores the rule."""
    target = _target()
    form_id = _form_id(target)
    pattern = text("pattern") or ""
    if request.form.get("action") == "preview":
        try:
            codes = numbering.preview(pattern)
        except ValidationFailed as exc:
            return numbering_page(422, {form_id: form_state(exc)})
        state = {"values": typed(), "preview": codes}
        return numbering_page(200, {form_id: state})
    try:
        numbering.set_rule(g.ctx, target, pattern, is_active=checked("is_active"))
    except ValidationFailed as exc:
        return numbering_page(422, {form_id: form_state(exc)})
    except (Conflict, Veto) as exc:
        return numbering_page(409, {form_id: form_state(exc)})
    codes = ", ".join(numbering.preview(pattern))
    flash(f"Numbering of {target} saved; the next codes look like {codes}.", "success")
    return redirect(back("settings.numbering", form_id))


@bp.post("/numbering/disable")
def disable_rule() -> Any:
    target = _target()
    rule = next((r for r in numbering.list_rules(g.ctx) if r.target == target), None)
    if rule is None:
        raise NotFound(f"{target} has no numbering rule")
    numbering.set_rule(g.ctx, target, rule.pattern, is_active=False)
    flash(f"Numbering of {target} turned off: new rows get no reference code.", "success")
    return redirect(back("settings.numbering", _form_id(target)))
