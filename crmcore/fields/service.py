"""Custom fields: definitions (admin use cases) and the plain functions other features call to
validate, filter, merge and render the values kept in a target's ``custom`` JSON column.

A *target* is ``party``, ``contact`` or ``record:<type>``. A field's type is a driver of the
``crmcore.field_types`` group (:mod:`crmcore.fields.types` for the built-in ones); a plugin's type
is usable only where the plugin is enabled. Values of an archived field, or of a field whose
type's plugin was disabled, are kept as stored but cannot be written.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import marshmallow as ma
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from crmcore.audit import service as audit
from crmcore.context import get_or_404, use_case
from crmcore.db import utcnow
from crmcore.errors import Conflict, ValidationFailed
from crmcore.fields.base import FieldEnv, FieldType, is_empty, to_json, using_env
from crmcore.fields.models import FieldDefinition
from crmcore.fields.schemas import FieldDefinitionSchema, FieldUpdateSchema
from crmcore.plugins.drivers import available, load_group
from crmcore.tenancy.config import cached
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

GROUP = "crmcore.field_types"
TARGET_HINT = "use party, contact or record:<type> (e.g. record:deal)"
RECORD_TARGET_RE = re.compile(r"^record:([a-z][a-z0-9_]{0,31})$")
MERGE_RULES = ("fill", "duplicate", "keep")
REQUIRED_MESSAGE = "This field is required."

_instances: dict[type, FieldType] = {}


# --------------------------------------------------------------------------------------------
# targets, types, environment


def check_target(ctx: Context, target: Any, *, must_exist: bool = True) -> str:
    """The target, checked: ``party``, ``contact`` or ``record:<type>``; with ``must_exist`` the
    record type must be one of this business (a plugin's type only while it is enabled)."""
    text = target.strip() if isinstance(target, str) else ""
    if text in ("party", "contact"):
        return text
    match = RECORD_TARGET_RE.match(text)
    if match is None:
        raise ValidationFailed(f"unknown target {target!r}", {"target": [TARGET_HINT]})
    if must_exist:
        from crmcore.records.types import get_record_type

        try:
            get_record_type(ctx, match.group(1))
        except ValidationFailed as exc:
            raise ValidationFailed(f"unknown target {text!r}",
                                   {"target": exc.errors.get("type") or [exc.message]}) from exc
    return text


def _instance(name: str, obj: Any) -> FieldType:
    if isinstance(obj, type):
        instance = _instances.get(obj)
        if instance is None:
            instance = obj() if issubclass(obj, FieldType) else None
            if instance is not None:
                _instances[obj] = instance
    else:
        instance = obj
    if not isinstance(instance, FieldType):
        raise ValidationFailed(f"field type {name!r} is broken",
                               {"type": [f"the driver {name!r} is not a crmcore.fields.base.FieldType"]})
    return instance


def get_field_type(ctx: Context, type_key: str) -> FieldType:
    """The field type ``type_key`` usable in ctx's business; ValidationFailed naming it and the
    types available otherwise."""
    drivers = available(ctx, GROUP)
    driver = drivers.get(type_key) if isinstance(type_key, str) else None
    if driver is None:
        installed = load_group(GROUP).get(type_key) if isinstance(type_key, str) else None
        if installed is not None and installed.plugin:
            problem = (f"field type {type_key!r} comes from plugin {installed.plugin!r}, "
                       "which is not enabled in this business")
        else:
            problem = f"unknown field type {type_key!r}"
        raise ValidationFailed(problem, {"type": [f"{problem}; available: {', '.join(sorted(drivers))}"]})
    return _instance(type_key, driver.obj)


def _drivers(ctx: Context, definitions: Iterable[AnyDefinition]) -> dict[str, FieldType | None]:
    """key -> type driver, None where the type is not available in this business."""
    usable = available(ctx, GROUP)
    out: dict[str, FieldType | None] = {}
    for definition in definitions:
        driver = usable.get(definition.type)
        out[definition.key] = _instance(definition.type, driver.obj) if driver is not None else None
    return out


def field_env(ctx: Context, party_names: Mapping[int, str] | None = None) -> FieldEnv:
    business = ctx.business
    return FieldEnv(locale=business.language or "en", timezone=getattr(business, "timezone", None) or "UTC",
                    currency=business.currency or "EUR", party_names=party_names or {})


def _definitions(ctx: Context, target: str, *, include_archived: bool = True) -> list[FieldDefinition]:
    """The ORM rows (admin use cases that change them); reads use :func:`field_specs`."""
    stmt = select(FieldDefinition).where(FieldDefinition.target == target)
    if not include_archived:
        stmt = stmt.where(FieldDefinition.archived_at.is_(None))
    return list(ctx.session.scalars(stmt.order_by(FieldDefinition.position, FieldDefinition.id)))


@dataclass(frozen=True)
class FieldSpec:
    """A field definition as the configuration cache keeps it: the columns of
    :class:`FieldDefinition`, which is what field types read (``options`` is shared: read only)."""

    id: int
    target: str
    key: str
    label: str
    type: str
    options: dict[str, Any]
    required: bool
    position: int
    help_text: str | None
    archived_at: dt.datetime | None


def _load_specs(ctx: Context) -> dict[str, tuple[FieldSpec, ...]]:
    rows = ctx.session.scalars(select(FieldDefinition).order_by(
        FieldDefinition.target, FieldDefinition.position, FieldDefinition.id))
    out: dict[str, list[FieldSpec]] = {}
    for d in rows:
        out.setdefault(d.target, []).append(FieldSpec(
            d.id, d.target, d.key, d.label, d.type, copy.deepcopy(d.options or {}), d.required, d.position,
            d.help_text, d.archived_at))
    return {target: tuple(specs) for target, specs in out.items()}


#: what field types are given: the ORM row (admin paths) or its cached snapshot (every write)
AnyDefinition = FieldDefinition | FieldSpec


def field_specs(ctx: Context, target: str, *, include_archived: bool = True) -> list[FieldSpec]:
    """``target``'s field definitions by position, from the business's configuration cache (no
    statement while the definitions are unchanged; :mod:`crmcore.tenancy.config`)."""
    specs = cached(ctx, "field_definitions", _load_specs).get(target, ())
    return [s for s in specs if include_archived or s.archived_at is None]


def _load(schema: ma.Schema, data: Any, message: str, **kwargs: Any) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationFailed(message, {"_schema": ["expected an object of fields"]})
    try:
        return schema.load(dict(data), **kwargs)
    except ma.ValidationError as exc:
        raise ValidationFailed(message, exc.messages) from exc


def _messages(exc: ma.ValidationError) -> list[str]:
    """marshmallow messages of one value as a flat list (a list field reports per item)."""
    messages = exc.messages
    if isinstance(messages, dict):
        out = []
        for index, item in messages.items():
            for text in item if isinstance(item, list) else [item]:
                out.append(f"item {int(index) + 1}: {text}" if isinstance(index, int) else str(text))
        return out
    return [str(m) for m in (messages if isinstance(messages, list) else [messages])]


def _clean_options(ctx: Context, driver: FieldType, options: Any) -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise ValidationFailed("invalid field options", {"options": {"_schema": ["expected an object"]}})
    if driver.options_schema is None:
        if options:
            raise ValidationFailed("invalid field options",
                                   {"options": {"_schema": [f"the {driver.key} type takes no options"]}})
        return {}
    try:
        loaded = driver.options_schema().load(dict(options))
    except ma.ValidationError as exc:
        raise ValidationFailed("invalid field options", {"options": exc.messages}) from exc
    return to_json(driver.prepare_options(dict(loaded), env=field_env(ctx)))


# --------------------------------------------------------------------------------------------
# definitions (admin use cases)


@use_case(Role.ADMIN)
def define_field(ctx: Context, target: str, data: Mapping[str, Any]) -> FieldDefinition:
    """Add a custom field to ``target``. ``data``: key, label, type, options, required,
    position (default: last), help_text."""
    target = check_target(ctx, target)
    values = _load(FieldDefinitionSchema(), data, "invalid field definition")
    driver = get_field_type(ctx, values["type"])
    options = _clean_options(ctx, driver, values["options"])
    taken = ctx.session.scalar(select(FieldDefinition.id).where(
        FieldDefinition.target == target, FieldDefinition.key == values["key"]))
    if taken is not None:
        raise Conflict(f"{target} already has a field with key {values['key']!r}",
                       {"key": [f"{target} already has a field with key {values['key']!r} (archived ones count)"]})
    position = values.get("position")
    if position is None:
        last = ctx.session.scalar(select(func.max(FieldDefinition.position)).where(FieldDefinition.target == target))
        position = 0 if last is None else last + 1
    definition = FieldDefinition(target=target, key=values["key"], label=values["label"], type=values["type"],
                                 options=options, required=values["required"], position=position,
                                 help_text=values.get("help_text"))
    ctx.session.add(definition)
    ctx.session.flush()
    audit.record(ctx, "field.defined", definition, changes={
        "target": target, "key": definition.key, "type": definition.type, "label": definition.label,
        "options": options, "required": definition.required})
    return definition


@use_case(Role.ADMIN)
def update_field(ctx: Context, field_id: int, data: Mapping[str, Any]) -> FieldDefinition:
    """Change label, options, required, position or help text. Key and type cannot change
    (Conflict). New ``options`` replace the old ones whole. Removing a choice is allowed: values
    already stored keep it (shown as stored) but it cannot be written again; the audit entry
    lists the removed choices. Making a field required applies to the next write of each row."""
    definition = get_or_404(ctx, FieldDefinition, field_id, "field")
    values = _load(FieldUpdateSchema(), data, "invalid field definition", partial=True)
    for attr in ("key", "type"):
        if attr in values and values[attr] != getattr(definition, attr):
            problem = f"the {attr} of field {definition.key!r} cannot be changed"
            raise Conflict(problem, {attr: [problem + "; define a new field instead"]})
    changes: dict[str, Any] = {}
    if "options" in values:
        new_options = _clean_options(ctx, get_field_type(ctx, definition.type), values["options"])
        removed = _removed_choices(definition.options or {}, new_options)
        if removed:
            changes["removed_choices"] = removed
        values["options"] = new_options
    for attr in ("label", "options", "required", "position", "help_text"):
        if attr in values and values[attr] != getattr(definition, attr):
            changes[attr] = [getattr(definition, attr), values[attr]]
            setattr(definition, attr, values[attr])
    if changes:
        audit.record(ctx, "field.updated", definition, changes=changes)
    return definition


def _removed_choices(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    before = {c["value"] for c in old.get("choices") or []}
    after = {c["value"] for c in new.get("choices") or []}
    return sorted(before - after)


@use_case(Role.ADMIN)
def archive_field(ctx: Context, field_id: int) -> FieldDefinition:
    """Hide the field from forms; stored values stay (and stay filterable), new ones are refused."""
    definition = get_or_404(ctx, FieldDefinition, field_id, "field")
    if definition.archived_at is None:
        definition.archived_at = utcnow()
        audit.record(ctx, "field.archived", definition, changes={"key": definition.key})
    return definition


@use_case(Role.ADMIN)
def restore_field(ctx: Context, field_id: int) -> FieldDefinition:
    """Undo :func:`archive_field`."""
    definition = get_or_404(ctx, FieldDefinition, field_id, "field")
    if definition.archived_at is not None:
        definition.archived_at = None
        audit.record(ctx, "field.restored", definition, changes={"key": definition.key})
    return definition


@use_case(Role.ADMIN)
def reorder_fields(ctx: Context, target: str, field_ids: Sequence[int]) -> list[FieldDefinition]:
    """Put the given fields first, in the given order; the others follow in their old order."""
    target = check_target(ctx, target, must_exist=False)
    if isinstance(field_ids, str | bytes) or not isinstance(field_ids, Sequence):
        raise ValidationFailed("invalid field order", {"field_ids": ["give a list of field ids"]})
    definitions = _definitions(ctx, target)
    by_id = {d.id: d for d in definitions}
    ids: list[int] = []
    problems = []
    for raw in field_ids:
        try:
            field_id = int(raw)
        except (TypeError, ValueError):
            problems.append(f"{raw!r} is not a field id")
            continue
        if field_id not in by_id:
            problems.append(f"field {field_id} is not a field of {target}")
        elif field_id in ids:
            problems.append(f"field {field_id} is listed twice")
        else:
            ids.append(field_id)
    if problems:
        raise ValidationFailed("invalid field order", {"field_ids": problems})
    listed = set(ids)
    ordered = [by_id[i] for i in ids] + [d for d in definitions if d.id not in listed]
    for position, definition in enumerate(ordered):
        definition.position = position
    audit.record(ctx, "field.reordered", entity_type="field_definition",
                 changes={"target": target, "order": [d.key for d in ordered]})
    return ordered


@use_case(Role.READ_ONLY, write=False)
def list_fields(ctx: Context, target: str, include_archived: bool = False) -> list[FieldDefinition]:
    """The fields of ``target`` by position."""
    return _definitions(ctx, check_target(ctx, target, must_exist=False), include_archived=include_archived)


# --------------------------------------------------------------------------------------------
# values (plain functions, used inside other use cases)


def _blocked(definition: AnyDefinition, driver: FieldType | None) -> str | None:
    if definition.archived_at is not None:
        return f"the field {definition.key!r} is archived; its value cannot be changed"
    if driver is None:
        return (f"the field type {definition.type!r} is not available in this business "
                "(its plugin is disabled); the value is kept but cannot be changed")
    return None


def check_value(definition: AnyDefinition, driver: FieldType, value: Any) -> Any:
    """One non-empty input value -> its stored form; ValidationFailed ``{"custom": {key: [...]}}``."""
    try:
        return driver.to_storage(driver.marshmallow_field(definition).deserialize(value))
    except ma.ValidationError as exc:
        raise ValidationFailed("invalid custom fields", {"custom": {definition.key: _messages(exc)}}) from exc


def clean_custom_values(ctx: Context, target: str, values: Mapping[str, Any] | None, *,
                        existing: Mapping[str, Any] | None = None, partial: bool = False) -> dict[str, Any]:
    """Validate user input for ``target``'s custom fields; return the dict to store.

    ``partial=False`` (create, or a full replace): every writable field comes from ``values``
    and required ones must have a value. ``partial=True`` (update): only the given keys are
    validated and merged over ``existing``. None, "" or [] clears a value (refused for a required
    field). Unknown keys are errors. Archived fields, and fields whose type's plugin is disabled,
    keep their stored values; submitting the same value again is accepted, a different one is not.
    """
    target = check_target(ctx, target, must_exist=False)
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ValidationFailed("invalid custom fields", {"custom": {"_schema": ["expected an object of field values"]}})
    existing = dict(existing or {})
    definitions = {d.key: d for d in field_specs(ctx, target)}
    drivers = _drivers(ctx, definitions.values())
    if partial:
        result = dict(existing)
    else:  # keep what cannot be written here: values of archived/unavailable/removed fields
        result = {k: v for k, v in existing.items()
                  if k not in definitions or _blocked(definitions[k], drivers[k]) is not None}
    errors: dict[str, list[str]] = {}
    references: dict[str, int] = {}
    with using_env(field_env(ctx)):
        for key, raw in values.items():
            definition = definitions.get(key) if isinstance(key, str) else None
            if definition is None:
                errors[str(key)] = [f"unknown field {key!r} for {target}"]
                continue
            driver = drivers[key]
            blocked = _blocked(definition, driver)
            if blocked is not None:
                if not (raw == existing.get(key) or (is_empty(raw) and is_empty(existing.get(key)))):
                    errors[key] = [blocked]
                continue
            if is_empty(raw):
                if definition.required:
                    errors[key] = [REQUIRED_MESSAGE]
                result.pop(key, None)
                continue
            try:
                result[key] = check_value(definition, driver, raw)
            except ValidationFailed as exc:
                errors[key] = exc.errors["custom"][key]
                continue
            if driver.references == "party":
                references[key] = result[key]
    if not partial:
        for key, definition in definitions.items():
            if (definition.required and key not in errors and is_empty(result.get(key))
                    and _blocked(definition, drivers[key]) is None):
                errors[key] = [REQUIRED_MESSAGE]
    _check_party_references(ctx, references, errors)
    if errors:
        raise ValidationFailed("invalid custom fields", {"custom": errors})
    return result


def _check_party_references(ctx: Context, references: Mapping[str, int], errors: dict[str, list[str]]) -> None:
    if not references:
        return
    from crmcore.parties.models import Party

    found = set(ctx.session.scalars(select(Party.id).where(
        Party.id.in_(set(references.values())), Party.merged_into_id.is_(None))))
    for key, party_id in references.items():
        if party_id not in found:
            errors[key] = [f"party {party_id} not found"]


def custom_filter(ctx: Context, target: str, column: Any, key: str, value: Any, op: str = "eq") -> ColumnElement[bool]:
    """A WHERE condition on ``column`` (the target's ``custom``) for field ``key``. ``value`` is
    validated by the field's type (for ``isnull``: true/false)."""
    target = check_target(ctx, target, must_exist=False)

    def fail(problem: str) -> ValidationFailed:
        return ValidationFailed(f"invalid filter on custom field {key!r}", {"custom": {str(key): [problem]}})

    definition = next((d for d in field_specs(ctx, target) if d.key == key), None) if isinstance(key, str) else None
    if definition is None:
        raise fail(f"unknown field {key!r} for {target}")
    driver = _drivers(ctx, [definition])[definition.key]
    if driver is None:
        raise fail(f"the field type {definition.type!r} is not available in this business")
    if op not in driver.ops:
        raise fail(f"the operator {op!r} does not apply to {definition.type} fields; use one of "
                   f"{', '.join(driver.ops)}")
    with using_env(field_env(ctx)):
        try:
            if op == "isnull":
                operand = True if value is None else ma.fields.Boolean().deserialize(value)
            elif is_empty(value):
                raise fail("give a value to compare with")
            else:
                operand = driver.filter_field(definition, op).deserialize(value)
        except ma.ValidationError as exc:
            raise ValidationFailed(f"invalid filter on custom field {key!r}",
                                   {"custom": {key: _messages(exc)}}) from exc
        return driver.sql_filter(column, definition, op, operand)


def merge_custom_values(ctx: Context, target: str, kept: Mapping[str, Any] | None,
                        duplicate: Mapping[str, Any] | None, rule: str = "fill") -> dict[str, Any]:
    """Custom values of a merged party/contact/record. ``fill``: the kept values win, the
    duplicate fills missing or empty ones; ``duplicate``: the duplicate's values win where it
    has one; ``keep``: the kept values only."""
    check_target(ctx, target, must_exist=False)
    if rule not in MERGE_RULES:
        raise ValidationFailed(f"unknown merge rule {rule!r}",
                               {"rule": [f"use one of {', '.join(MERGE_RULES)}"]})
    result = dict(kept or {})
    if rule == "keep":
        return result
    for key, value in (duplicate or {}).items():
        if is_empty(value):
            continue
        if rule == "duplicate" or is_empty(result.get(key)):
            result[key] = value
    return result


# --------------------------------------------------------------------------------------------
# rendering (for the web layer)


def _readable(driver: FieldType, raw: Any) -> Any:
    """The Python value of a stored one; a value the type cannot read is passed on as stored."""
    if raw is None:
        return None
    try:
        return driver.from_storage(raw)
    except (TypeError, ValueError, ArithmeticError):
        return raw


def render_inputs(ctx: Context, target: str, values: Mapping[str, Any] | None, *,
                  name_prefix: str = "custom.") -> list[tuple[FieldSpec, Markup]]:
    """Form controls of the writable fields of ``target`` (not archived, type available), in
    order, filled from the stored ``values``; each control is named ``name_prefix + key``."""
    target = check_target(ctx, target, must_exist=False)
    values = values or {}
    definitions = field_specs(ctx, target, include_archived=False)
    drivers = _drivers(ctx, definitions)
    out = []
    with using_env(field_env(ctx)):
        for definition in definitions:
            driver = drivers[definition.key]
            if driver is None:
                continue
            name = name_prefix + definition.key
            try:
                control = driver.render_input(definition, _readable(driver, values.get(definition.key)), name=name)
            except (TypeError, ValueError, ArithmeticError, AttributeError):  # a value it cannot show
                control = driver.render_input(definition, None, name=name)
            out.append((definition, control))
    return out


def render_values(ctx: Context, target: str, values: Mapping[str, Any] | None) -> list[tuple[FieldSpec, Markup]]:
    """Display of the stored values of ``target``'s fields that have one (archived ones too), in
    order. Party references show the party's name (one query for all of them)."""
    target = check_target(ctx, target, must_exist=False)
    values = values or {}
    definitions = [d for d in field_specs(ctx, target) if not is_empty(values.get(d.key))]
    drivers = _drivers(ctx, definitions)
    names = _party_names(ctx, [values[d.key] for d in definitions
                               if drivers[d.key] is not None and drivers[d.key].references == "party"])
    out = []
    with using_env(field_env(ctx, names)):
        for definition in definitions:
            driver = drivers[definition.key]
            raw = values[definition.key]
            if driver is None:
                shown = ", ".join(map(str, raw)) if isinstance(raw, list) else str(raw)
                out.append((definition, Markup("{}").format(shown)))
                continue
            out.append((definition, _render_value(driver, definition, raw)))
    return out


def _render_value(driver: FieldType, definition: AnyDefinition, raw: Any) -> Markup:
    """The type's display of a stored value; a value it cannot read or format is shown as stored."""
    try:
        return driver.render_value(definition, driver.from_storage(raw))
    except (TypeError, ValueError, ArithmeticError, AttributeError):
        return Markup("{}").format(raw)


def _party_names(ctx: Context, raw_ids: Iterable[Any]) -> dict[int, str]:
    ids = {int(i) for i in raw_ids if isinstance(i, int) or (isinstance(i, str) and i.isdigit())}
    if not ids:
        return {}
    from crmcore.parties.models import Party

    rows = ctx.session.execute(select(Party.id, Party.name).where(Party.id.in_(ids)))
    return {row.id: row.name for row in rows}
