"""Custom fields per target (party, contact, each record type): define, edit, archive/restore
and reorder. The option inputs shown are those the field types declare (choices, min/max,
currency, maximum length); a type takes only the options its schema knows."""

from __future__ import annotations

from typing import Any

from flask import g, request, url_for

from crmcore.errors import NotFound, ValidationFailed
from crmcore.fields import service as fields_service
from crmcore.plugins.drivers import available
from crmcore.records.types import record_types
from crmcore.web.settings.common import attempt, checked, ids, moves, render, require_all_known, text
from crmcore.web.settings.views import bp

GROUP = "crmcore.field_types"

#: option inputs the page offers, in order: (option key, label, input type, help)
OPTION_INPUTS: tuple[tuple[str, str, str, str], ...] = (
    ("choices", "Choices", "textarea", "Choice types: one choice a line, written value|label."),
    ("min", "Minimum", "number", "Number types: the smallest value allowed."),
    ("max", "Maximum", "number", "Number types: the largest value allowed."),
    ("currency", "Currency", "text", "Amounts: a three-letter code such as EUR."),
    ("max_length", "Maximum length", "number", "Text types: the most characters allowed."),
)


def targets() -> list[tuple[str, str]]:
    """(target, label) of everything that can carry custom fields in this business."""
    types = sorted(record_types(g.ctx).values(), key=lambda t: t.label)
    return [("party", "Parties"), ("contact", "Contacts"), *((f"record:{t.key}", t.plural) for t in types)]


def _target(value: str | None, known: list[tuple[str, str]]) -> str:
    target = value or "party"
    if target not in {t for t, _label in known}:
        raise NotFound(f"unknown target {target!r}")
    return target


def field_types() -> dict[str, Any]:
    """The field types usable here, by key (a broken driver is left out, not fatal)."""
    out = {}
    for key in sorted(available(g.ctx, GROUP)):
        try:
            out[key] = fields_service.get_field_type(g.ctx, key)
        except ValidationFailed:
            continue
    return out


def _option_keys(field_type: Any) -> list[str]:
    schema = getattr(field_type, "options_schema", None)
    return list(schema().fields) if schema is not None else []


@bp.get("/fields", endpoint="fields")
def fields_index() -> Any:
    return fields_page()


def fields_page(status: int = 200, forms: dict[str, dict[str, Any]] | None = None) -> Any:
    known = targets()
    target = _target(request.values.get("target"), known)
    types = field_types()
    rows = [_field_view(d, types) for d in fields_service.list_fields(g.ctx, target, include_archived=True)]
    order = moves([r["id"] for r in rows])
    return render("settings/fields.html", status, targets=known, target=target, fields=rows, moves=order,
                  types=[(k, t.label) for k, t in types.items()], option_inputs=OPTION_INPUTS,
                  new_shown=["key", "label", "type", "required", "help_text",
                             *(f"options.{k}" for k, *_rest in OPTION_INPUTS)],
                  forms=forms or {})


def _field_view(definition: Any, types: dict[str, Any]) -> dict[str, Any]:
    """Plain values (the next service call expires the ORM object), options as the form shows them."""
    field_type = types.get(definition.type)
    options = dict(definition.options or {})
    shown = {f"options.{k}": _option_text(k, v) for k, v in options.items()}
    keys = _option_keys(field_type) if field_type else []
    return {"id": definition.id, "key": definition.key, "label": definition.label, "type": definition.type,
            "type_label": field_type.label if field_type else f"{definition.type} (not available)",
            "required": definition.required, "help_text": definition.help_text,
            "archived": definition.archived_at is not None, "options": shown,
            "option_keys": keys, "shown": ["label", "help_text", "required", *(f"options.{k}" for k in keys)]}


def _option_text(key: str, value: Any) -> str:
    if key == "choices" and isinstance(value, list):
        return "\n".join(f"{c.get('value')}|{c.get('label')}" if c.get("label") != c.get("value")
                         else str(c.get("value")) for c in value if isinstance(c, dict))
    return "" if value is None else str(value)


def parse_choices(raw: str) -> list[dict[str, str]]:
    """Lines "value|label" (label optional) as choices."""
    out = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        value, _sep, label = line.partition("|")
        choice = {"value": value.strip()}
        if label.strip():
            choice["label"] = label.strip()
        out.append(choice)
    return out


def _options(option_keys: list[str]) -> dict[str, Any]:
    """The posted options the type declares; empty inputs are left out."""
    out: dict[str, Any] = {}
    for key in option_keys:
        raw = request.form.get(f"options.{key}", "")
        if key == "choices":
            if raw.strip():
                out[key] = parse_choices(raw)
        elif raw.strip():
            out[key] = raw.strip()
    return out


def _page_of(target: str) -> str:
    return url_for("settings.fields", target=target)


@bp.post("/fields/new")
def define_field() -> Any:
    target = _target(request.form.get("target"), targets())

    def action() -> Any:
        type_key = text("type") or ""
        field_type = fields_service.get_field_type(g.ctx, type_key)
        data = {"key": text("key") or "", "label": text("label") or "", "type": type_key,
                "required": checked("required"), "help_text": text("help_text"),
                "options": _options(_option_keys(field_type))}
        return fields_service.define_field(g.ctx, target, data)

    return attempt(action, fields_page, "new-field", done="Field defined.", then=_page_of(target))


@bp.post("/fields/<int:field_id>/edit")
def edit_field(field_id: int) -> Any:
    def action() -> Any:
        definition = _definition(field_id)
        data: dict[str, Any] = {"label": text("label") or "", "required": checked("required"),
                                "help_text": text("help_text")}
        keys = _option_keys(fields_service.get_field_type(g.ctx, definition["type"]))
        if keys:
            data["options"] = _options(keys)
        return fields_service.update_field(g.ctx, field_id, data)

    return _field_form(field_id, action, "Field saved.")


@bp.post("/fields/<int:field_id>/archive")
def archive_field(field_id: int) -> Any:
    return _field_form(field_id, lambda: fields_service.archive_field(g.ctx, field_id), "Field archived.")


@bp.post("/fields/<int:field_id>/restore")
def restore_field(field_id: int) -> Any:
    return _field_form(field_id, lambda: fields_service.restore_field(g.ctx, field_id), "Field restored.")


def _field_form(field_id: int, action: Any, message: str) -> Any:
    return attempt(action, fields_page, f"field-{field_id}", done=message,
                   then=lambda definition: _page_of(definition.target))


def _definition(field_id: int) -> dict[str, Any]:
    """The field's target and type, found among the fields of the posted target (another
    business's field, or one of another target, is not found)."""
    target = _target(request.values.get("target"), targets())
    for definition in fields_service.list_fields(g.ctx, target, include_archived=True):
        if definition.id == field_id:
            return {"target": definition.target, "type": definition.type}
    raise NotFound(f"field {field_id} not found")


@bp.post("/fields/reorder")
def reorder_fields() -> Any:
    target = _target(request.form.get("target"), targets())
    wanted = ids("field_ids")
    known = [d.id for d in fields_service.list_fields(g.ctx, target, include_archived=True)]
    require_all_known(wanted, known, "field")
    return attempt(lambda: fields_service.reorder_fields(g.ctx, target, wanted), fields_page, "new-field",
                   done=None, then=_page_of(target))
