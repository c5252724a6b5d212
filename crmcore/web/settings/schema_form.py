"""A plugin's settings form, generated from its marshmallow schema.

Each declared field becomes one control chosen by the field's class (and a ``OneOf`` validator),
so a plugin author writes a schema and gets an admin form. Secret fields
(``metadata={"secret": True}``) become password inputs that are always rendered empty: the
stored value never travels to the browser, and an empty submission keeps it (the service does).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate
from werkzeug.datastructures import MultiDict

#: what a set secret shows instead of its value
SECRET_PLACEHOLDER = "•••• (set)"

_TEMPORAL = ((fields.DateTime, "datetime-local", 16), (fields.Date, "date", 10), (fields.Time, "time", 5))


@dataclass(frozen=True)
class Control:
    """One form control: how to render a schema field and how to read it back."""

    key: str
    label: str
    kind: str
    required: bool = False
    secret: bool = False
    help: str | None = None
    choices: tuple[tuple[str, str], ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    #: "int", "float", "decimal" or None: how a typed string becomes the value the schema expects
    number: str | None = None
    #: the schema's load_default, shown while nothing is stored yet
    default: Any = None


def controls(schema_cls: type[ma.Schema]) -> list[Control]:
    """The controls of every input field of ``schema_cls`` (``dump_only`` ones are skipped)."""
    out = []
    for name, schema_field in schema_cls().fields.items():
        if schema_field.dump_only:
            continue
        control = _control(schema_field.data_key or name, schema_field)
        default = schema_field.load_default
        if default is not ma.missing and not callable(default) and not control.secret:
            control = replace(control, default=default)
        out.append(control)
    return out


def _control(key: str, schema_field: fields.Field) -> Control:
    meta = schema_field.metadata
    secret = bool(meta.get("secret"))
    kind, number = _kind(schema_field)
    choices: tuple[tuple[str, str], ...] = ()
    attrs: dict[str, Any] = {}
    for validator in schema_field.validators:
        if isinstance(validator, validate.OneOf):
            labels = list(validator.labels) if validator.labels else []
            choices = tuple((str(c), str(labels[i]) if i < len(labels) else str(c))
                            for i, c in enumerate(validator.choices))
            kind = "select"
        elif isinstance(validator, validate.Range) and kind == "number":
            attrs.update({k: v for k, v in (("min", validator.min), ("max", validator.max)) if v is not None})
        elif isinstance(validator, validate.Length) and kind in ("text", "email", "url", "password"):
            attrs.update({k: v for k, v in (("minlength", validator.min), ("maxlength", validator.max))
                          if v is not None})
    if kind == "number":
        attrs.setdefault("step", "1" if number == "int" else "any")
    if secret:
        kind = "password"
        attrs["autocomplete"] = "new-password"
    label = str(meta.get("label") or key.replace("_", " ").capitalize())
    help_text = meta.get("description")
    return Control(key=key, label=label, kind=kind, required=bool(schema_field.required), secret=secret,
                   help=str(help_text) if help_text else None, choices=choices, attrs=attrs, number=number)


def _kind(schema_field: fields.Field) -> tuple[str, str | None]:
    if isinstance(schema_field, fields.Boolean):
        return "checkbox", None
    if isinstance(schema_field, fields.Email):
        return "email", None
    if isinstance(schema_field, fields.Url):
        return "url", None
    if isinstance(schema_field, fields.Integer):
        return "number", "int"
    if isinstance(schema_field, fields.Decimal):
        return "number", "decimal"
    if isinstance(schema_field, fields.Number):
        return "number", "float"
    for cls, kind, _width in _TEMPORAL:
        if isinstance(schema_field, cls):
            return kind, None
    return "text", None


def read_form(form_controls: list[Control], form: MultiDict[str, str]) -> dict[str, Any]:
    """The settings dict a form submission means.

    An empty input is left out (an optional setting is cleared, a required one reported missing,
    a secret kept), a checkbox is True or False, a number is converted where it parses (what does
    not parse goes through as typed, for the schema to name the problem).
    """
    out: dict[str, Any] = {}
    for control in form_controls:
        if control.kind == "checkbox":
            out[control.key] = "1" in form.getlist(control.key)
            continue
        raw = form.get(control.key, "")
        value = raw if control.secret else raw.strip()
        if value == "":
            continue
        out[control.key] = _number(control.number, value) if control.number else value
    return out


def _number(kind: str, text: str) -> Any:
    try:
        if kind == "int":
            return int(text)
        if kind == "decimal":
            return Decimal(text)
        return float(text)
    except (ValueError, InvalidOperation):
        return text


def shown_values(form_controls: list[Control], masked: dict[str, Any]) -> dict[str, Any]:
    """Stored settings (already masked) as the controls show them; secrets always empty."""
    out: dict[str, Any] = {}
    for control in form_controls:
        value = masked.get(control.key, control.default) if masked else control.default
        if control.secret or value is None:
            out[control.key] = "" if control.kind != "checkbox" else False
        elif control.kind == "checkbox":
            out[control.key] = bool(value)
        else:
            out[control.key] = _as_input(control.kind, value)
    return out


def typed_values(form_controls: list[Control], form: MultiDict[str, str]) -> dict[str, Any]:
    """What the user typed, to show again beside the errors; never a secret."""
    out: dict[str, Any] = {}
    for control in form_controls:
        if control.kind == "checkbox":
            out[control.key] = "1" in form.getlist(control.key)
        else:
            out[control.key] = "" if control.secret else form.get(control.key, "")
    return out


def _as_input(kind: str, value: Any) -> str:
    for _cls, temporal_kind, width in _TEMPORAL:
        if kind == temporal_kind:
            if isinstance(value, dt.date | dt.time):
                value = value.isoformat()
            return str(value)[:width]
    return str(value)


def secret_states(form_controls: list[Control], masked: dict[str, Any]) -> dict[str, str]:
    """Placeholder of each secret input: set (from the database or an ``$env:`` reference) or not."""
    out = {}
    for control in form_controls:
        if not control.secret:
            continue
        value = masked.get(control.key)
        if isinstance(value, str) and value.startswith("$env:"):
            out[control.key] = f"{value} (set)"
        elif value not in (None, ""):
            out[control.key] = SECRET_PLACEHOLDER
        else:
            out[control.key] = ""
    return out
