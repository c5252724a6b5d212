"""A plugin's settings form, generated from its marshmallow schema.

Each declared field becomes one control chosen by the field's class (and a ``OneOf`` validator),
so a plugin author writes a schema and gets an admin form. Secret fields
(``metadata={"secret": True}``) become password inputs that are always rendered empty: the
stored value never travels to the browser, and an empty submission keeps it (the service does).

A ``List`` is a group of checkboxes when its items have a ``OneOf`` (or the list a
``ContainsOnly``), else a textarea with one item per line, each item loaded by the inner field.
Lists the form cannot carry (secret lists: a secret is stored as one encrypted string; lists of
nested or structured items) are shown as a note and keep their stored value when the form is
saved.
"""

from __future__ import annotations

import datetime as dt
import re
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
    #: for a control that cannot be edited here ("unsupported"), why
    note: str | None = None
    #: a list's least number of items (its ``Length`` validator): marked like a required field
    min_items: int = 0


#: the kinds of a List control
LIST_KINDS = ("checkboxes", "lines", "unsupported")
#: inner fields a line of text cannot carry
_STRUCTURED = (fields.Nested, fields.List, fields.Tuple, fields.Dict, fields.Pluck)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def controls(schema_cls: type[ma.Schema]) -> list[Control]:
    """The controls of every input field of ``schema_cls`` (``dump_only`` ones are skipped)."""
    out = []
    for name, schema_field in schema_cls().fields.items():
        if schema_field.dump_only:
            continue
        key = schema_field.data_key or name
        is_list = isinstance(schema_field, fields.List)
        control = _list_control(key, schema_field) if is_list else _control(key, schema_field)
        default = schema_field.load_default
        if is_list and callable(default):
            default = default()  # load_default=list: what marshmallow would load
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
            choices = _choices(validator)
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


def _list_control(key: str, schema_field: fields.List) -> Control:
    """A List: checkboxes (items from a fixed set), lines of a textarea, or a note."""
    meta = schema_field.metadata
    label = str(meta.get("label") or key.replace("_", " ").capitalize())
    description = str(meta["description"]) if meta.get("description") else None
    inner = schema_field.inner
    if meta.get("secret") or inner.metadata.get("secret"):
        return Control(key=key, label=label, kind="unsupported", secret=True, help=description,
                       note="A list of secrets cannot be entered on this page; what is stored is kept.")
    if isinstance(inner, _STRUCTURED):
        return Control(key=key, label=label, kind="unsupported", help=description,
                       note="A list of structured items cannot be edited on this page; what is stored is kept.")
    min_items = 0
    choices: tuple[tuple[str, str], ...] = ()
    for validator in schema_field.validators:
        if isinstance(validator, validate.OneOf):  # ContainsOnly is a OneOf
            choices = _choices(validator)
        elif isinstance(validator, validate.Length):
            min_items = max(min_items, validator.min or 0, validator.equal or 0)
    for validator in inner.validators:
        if isinstance(validator, validate.OneOf):
            choices = _choices(validator)
    _inner_kind, number = _kind(inner)
    required = bool(schema_field.required)
    if choices:
        return Control(key=key, label=label, kind="checkboxes", required=required, help=description,
                       choices=choices, number=number, min_items=min_items)
    help_text = f"{description} One per line." if description else "One per line."
    return Control(key=key, label=label, kind="lines", required=required, help=help_text, number=number,
                   min_items=min_items)


def _choices(validator: validate.OneOf) -> tuple[tuple[str, str], ...]:
    labels = list(validator.labels) if validator.labels else []
    return tuple((str(c), str(labels[i]) if i < len(labels) else str(c)) for i, c in enumerate(validator.choices))


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


def read_form(form_controls: list[Control], form: MultiDict[str, str],
              stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings dict a form submission means.

    An empty input is left out (an optional setting is cleared, a required one reported missing,
    a secret kept), a checkbox is True or False, a number is converted where it parses (what does
    not parse goes through as typed, for the schema to name the problem). A list is the ticked
    boxes or the non-blank lines; an empty one is sent as ``[]`` (the schema decides whether that
    is allowed: ``Length(min=1)`` refuses it), except for a required list, which is left out and
    so reported missing. A list the form cannot carry keeps its value from ``stored`` (the
    masked settings: a masked secret is kept by the service).
    """
    out: dict[str, Any] = {}
    for control in form_controls:
        if control.kind == "checkbox":
            out[control.key] = "1" in form.getlist(control.key)
            continue
        if control.kind in LIST_KINDS:
            if control.kind == "unsupported":
                if stored and control.key in stored:
                    out[control.key] = stored[control.key]
                continue
            items = [_item(control, text) for _line, text in _list_items(control, form)]
            if items or not control.required:
                out[control.key] = items
            continue
        raw = form.get(control.key, "")
        value = raw if control.secret else raw.strip()
        if value == "":
            continue
        out[control.key] = _number(control.number, value) if control.number else value
    return out


def _list_items(control: Control, form: MultiDict[str, str]) -> list[tuple[int, str]]:
    """``(line number, text)`` of each item a list control sent: a ticked box (numbered by its
    position among the ticked ones) or a non-blank line of the textarea (its line number, blank
    lines counted, so an error points at the line the user sees)."""
    if control.kind == "checkboxes":
        ticked = [value for value in form.getlist(control.key) if value != ""]
        return list(enumerate(ticked, start=1))
    text = form.get(control.key, "")
    # browsers send CRLF; only real line breaks split (str.splitlines would also split on
    # U+2028 and control characters an item may hold)
    lines = _LINE_BREAK.split(text)
    return [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]


def _item(control: Control, text: str) -> Any:
    return _number(control.number, text) if control.number else text


def item_errors(form_controls: list[Control], form: MultiDict[str, str], errors: dict[str, Any]) -> dict[str, Any]:
    """``errors`` with each list item's messages said where the user sees them:
    ``{"recipients": {1: ["Not a valid email address."]}}`` becomes
    ``{"recipients": ["line 3: Not a valid email address."]}`` when the item was typed on line 3
    (blank lines before it count), ``"gold": Must be one of ...`` for a ticked box."""
    out = dict(errors)
    for control in form_controls:
        found = errors.get(control.key)
        if control.kind not in ("checkboxes", "lines") or not isinstance(found, dict):
            continue
        items = _list_items(control, form)
        messages: list[str] = []
        for index, texts in sorted(found.items(), key=lambda pair: pair[0] if isinstance(pair[0], int) else -1):
            texts = texts if isinstance(texts, list | tuple) else [texts]
            if isinstance(index, int) and 0 <= index < len(items):
                line, value = items[index]
                where = f"line {line}" if control.kind == "lines" else f"“{value}”"
            else:
                where = f"item {index}"
            messages.extend(f"{where}: {text}" for text in texts)
        out[control.key] = messages
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
        if control.kind in LIST_KINDS:
            out[control.key] = _shown_list(control, value)
        elif control.secret or value is None:
            out[control.key] = "" if control.kind != "checkbox" else False
        elif control.kind == "checkbox":
            out[control.key] = bool(value)
        else:
            out[control.key] = _as_input(control.kind, value)
    return out


def _shown_list(control: Control, value: Any) -> Any:
    """A stored list as its control shows it: the ticked values, or the text, one per line."""
    if control.kind == "unsupported" or value is None:
        return [] if control.kind == "checkboxes" else ""
    items = value if isinstance(value, list | tuple) else [value]
    texts = [item.isoformat() if isinstance(item, dt.date | dt.time) else str(item) for item in items]
    return texts if control.kind == "checkboxes" else "\n".join(texts)


def typed_values(form_controls: list[Control], form: MultiDict[str, str]) -> dict[str, Any]:
    """What the user typed, to show again beside the errors; never a secret."""
    out: dict[str, Any] = {}
    for control in form_controls:
        if control.kind == "checkbox":
            out[control.key] = "1" in form.getlist(control.key)
        elif control.kind == "checkboxes":
            out[control.key] = [value for value in form.getlist(control.key) if value != ""]
        elif control.kind == "unsupported":
            out[control.key] = ""
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
