"""The built-in field types (declared in setup.cfg under ``crmcore.field_types``).

=============  ===================================  ======================================
type key       stored JSON                          filter operators
=============  ===================================  ======================================
text           string                               eq, contains, isnull
long_text      string                               eq, contains, isnull
integer        number                               eq, lt, gt, le, ge, isnull
decimal        string ("12.5", canonical)           eq, lt, gt, le, ge, isnull
amount         string, in the field's currency      eq, lt, gt, le, ge, isnull
date           string "YYYY-MM-DD"                  eq, lt, gt, le, ge, isnull
datetime       string, UTC "YYYY-MM-DDTHH:MM:SS+00:00"  eq, lt, gt, le, ge, isnull
checkbox       true / false                         eq, isnull
choice         string (a choice value)              eq, isnull
multi_choice   list of choice values, in choice order   eq (same set), contains (has value), isnull
party_ref      number (a party id)                  eq, isnull
=============  ===================================  ======================================
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import marshmallow as ma
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, get_currency_precision
from markupsafe import Markup
from marshmallow import fields, validate
from sqlalchemy.sql.elements import ColumnElement

from crmcore.fields import schemas
from crmcore.fields.base import (
    RANGE_OPS,
    FieldType,
    control_attrs,
    current_env,
    html_attrs,
    iso_utc,
    json_compare,
    json_eq,
    json_has_item,
    json_is_not_true,
    json_isnull,
    json_same_items,
    json_text_contains,
    text_input,
    wrap_control,
)

if TYPE_CHECKING:
    from crmcore.fields.models import FieldDefinition


def _options(definition: FieldDefinition) -> dict[str, Any]:
    return definition.options or {}


def canonical_decimal(value: Decimal) -> str:
    """The stored form of a decimal: no exponent, no trailing zeros, no negative zero."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


# --------------------------------------------------------------------------------------------
# text


class TextField(FieldType):
    key = "text"
    label = "Text"
    options_schema = schemas.TextOptions
    ops = ("eq", "contains", "isnull")
    default_max: ClassVar[int] = schemas.TEXT_DEFAULT_MAX

    def max_length(self, definition: FieldDefinition) -> int:
        return int(_options(definition).get("max_length") or self.default_max)

    def marshmallow_field(self, definition: FieldDefinition) -> ma.fields.Field:
        limit = self.max_length(definition)
        return schemas.Stripped(validate=validate.Length(max=limit, error=f"Use at most {limit} characters."))

    def filter_field(self, definition: FieldDefinition, op: str) -> ma.fields.Field:
        if op == "contains":
            return schemas.Stripped(validate=validate.Length(min=1, max=500))
        return self.marshmallow_field(definition)

    def from_storage(self, raw: Any) -> Any:
        return None if raw is None else str(raw)

    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        return text_input(definition, value, name=name, maxlength=self.max_length(definition))

    def sql_filter(self, column: Any, definition: FieldDefinition, op: str, value: Any) -> ColumnElement[bool]:
        if op == "contains":
            return json_text_contains(column, definition.key, value)
        return super().sql_filter(column, definition, op, value)


class LongTextField(TextField):
    key = "long_text"
    label = "Long text"
    options_schema = schemas.LongTextOptions
    default_max = schemas.LONG_TEXT_DEFAULT_MAX

    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        attrs = {**control_attrs(definition, name), "rows": 4, "maxlength": self.max_length(definition)}
        control = Markup("<textarea{}>{}</textarea>").format(html_attrs(attrs), "" if value is None else value)
        return wrap_control(definition, control)

    def render_value(self, definition: FieldDefinition, value: Any) -> Markup:
        lines = str(value or "").splitlines()
        return Markup("<br>").join(Markup("{}").format(line) for line in lines)


# --------------------------------------------------------------------------------------------
# numbers


class _NumberType(FieldType):
    ops = ("eq", *RANGE_OPS, "isnull")
    #: the marshmallow field class of the values, without bounds (filter operands)
    plain_field: ClassVar[type[ma.fields.Field]] = schemas.StrictDecimal

    def _range(self, definition: FieldDefinition) -> list[validate.Validator]:
        options = _options(definition)
        low, high = options.get("min"), options.get("max")
        if low is None and high is None:
            return []
        low = None if low is None else self._bound(low)
        high = None if high is None else self._bound(high)
        if low is not None and high is not None:
            message = f"Use a number from {low} to {high}."
        elif low is not None:
            message = f"Use a number of at least {low}."
        else:
            message = f"Use a number of at most {high}."
        return [validate.Range(min=low, max=high, error=message)]

    def _bound(self, raw: Any) -> Any:
        return Decimal(str(raw))

    def filter_field(self, definition: FieldDefinition, op: str) -> ma.fields.Field:
        """Filter operands are not held to the field's min/max (``gt 0`` with ``min=1`` is fine)."""
        return self.plain_field()

    def sql_filter(self, column: Any, definition: FieldDefinition, op: str, value: Any) -> ColumnElement[bool]:
        if op in RANGE_OPS:
            return json_compare(column, definition.key, op, value, "number")
        return super().sql_filter(column, definition, op, value)

    def _input(self, definition: FieldDefinition, value: Any, name: str, step: str) -> Markup:
        options = _options(definition)
        return text_input(definition, "" if value is None else value, name=name, type_="number", step=step,
                          min=options.get("min"), max=options.get("max"))


class IntegerField(_NumberType):
    key = "integer"
    label = "Whole number"
    options_schema = schemas.IntegerOptions
    plain_field = schemas.StrictInteger

    def _bound(self, raw: Any) -> Any:
        return int(raw)

    def marshmallow_field(self, definition: FieldDefinition) -> ma.fields.Field:
        return schemas.StrictInteger(validate=self._range(definition))

    def from_storage(self, raw: Any) -> Any:
        return None if raw is None else int(raw)

    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        return self._input(definition, value, name, "1")

    def render_value(self, definition: FieldDefinition, value: Any) -> Markup:
        return Markup("{}").format(format_decimal(value, locale=current_env().babel_locale))


class DecimalField(_NumberType):
    """Stored as a canonical decimal string; filters compare numerically on both databases
    (``eq`` too, so "12.50" matches "12.5"; it cannot use the GIN index for that reason)."""

    key = "decimal"
    label = "Decimal number"
    options_schema = schemas.DecimalOptions

    def marshmallow_field(self, definition: FieldDefinition) -> ma.fields.Field:
        return schemas.StrictDecimal(validate=self._range(definition))

    def to_storage(self, value: Any) -> Any:
        return canonical_decimal(value)

    def from_storage(self, raw: Any) -> Any:
        return None if raw is None else Decimal(str(raw))

    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        return self._input(definition, value, name, "any")

    def render_value(self, definition: FieldDefinition, value: Any) -> Markup:
        return Markup("{}").format(format_decimal(value, locale=current_env().babel_locale,
                                                  decimal_quantization=False))

    def sql_filter(self, column: Any, definition: FieldDefinition, op: str, value: Any) -> ColumnElement[bool]:
        if op == "eq":
            return json_compare(column, definition.key, "eq", value, "number")
        return super().sql_filter(column, definition, op, value)


class _PlacesDecimal(schemas.StrictDecimal):
    """A decimal with at most ``places`` digits after the point (a currency's minor unit)."""

    def __init__(self, max_places: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_places = max_places

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        number = super()._deserialize(value, attr, data, **kwargs)
        exponent = number.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > self.max_places:
            raise ma.ValidationError(f"Use at most {self.max_places} decimal places.")
        return number


class AmountField(DecimalField):
    """A money amount in the field's currency (``options.currency``, default the business's)."""

    key = "amount"
    label = "Amount"
    options_schema = schemas.AmountOptions

    def prepare_options(self, options: dict[str, Any], *, env: Any) -> dict[str, Any]:
        return {**options, "currency": options.get("currency") or env.currency}

    def currency(self, definition: FieldDefinition) -> str:
        return str(_options(definition).get("currency") or current_env().currency)

    def marshmallow_field(self, definition: FieldDefinition) -> ma.fields.Field:
        return _PlacesDecimal(get_currency_precision(self.currency(definition)), validate=self._range(definition))

    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        places = get_currency_precision(self.currency(definition))
        step = "1" if places == 0 else "0." + "0" * (places - 1) + "1"
        options = _options(definition)
        attrs = {"type": "number", **control_attrs(definition, name), "value": "" if value is None else value,
                 "step": step, "min": options.get("min"), "max": options.get("max")}
        control = Markup('<span class="amount"><input{}> <span class="currency">{}</span></span>').format(
            html_attrs(attrs), self.currency(definition))
        return wrap_control(definition, control)

    def render_value(self, definition: FieldDefinition, value: Any) -> Markup:
        return Markup("{}").format(format_currency(value, self.currency(definition),
                                                   locale=current_env().babel_locale))


# --------------------------------------------------------------------------------------------
# dates


class StrictDate(fields.Date):
    """A calendar date; a datetime is refused rather than silently cut."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.date:
        if isinstance(value, dt.datetime):
            raise self.make_error("invalid")
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            value = value.strip()
        return super()._deserialize(value, attr, data, **kwargs)


class AwareDateTime(fields.DateTime):
    """An instant, stored in UTC to the second. A time without a zone is read in the business's
    time zone (what a person typing into a form means)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        if isinstance(value, dt.datetime):
            parsed = value
        elif isinstance(value, str):
            parsed = super()._deserialize(value.strip(), attr, data, **kwargs)
        else:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=current_env().tzinfo)
        try:
            return parsed.astimezone(dt.UTC).replace(microsecond=0)
        except OverflowError as exc:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from exc


class DateField(FieldType):
    key = "date"
    label = "Date"
    ops = ("eq", *RANGE_OPS, "isnull")

    def marshmallow_field(self, definition: FieldDefinition) -> ma.fields.Field:
        return StrictDate()

    def to_storage(self, value: Any) -> Any:
        return value.isoformat()

    def from_storage(self, raw: Any) -> Any:
        return None if raw is None else dt.date.fromisoformat(str(raw))

    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        shown = value.isoformat() if isinstance(value, dt.date) else value
        return text_input(definition, shown, name=name, type_="date")

    def render_value(self, definition: FieldDefinition, value: Any) -> Markup:
        return Markup("{}").format(format_date(value, format="medium", locale=current_env().babel_locale))

    def sql_filter(self, column: Any, definition: FieldDefinition, op: str, value: Any) -> ColumnElement[bool]:
        if op in RANGE_OPS:
            return json_compare(column, definition.key, op, value, "date")
        return super().sql_filter(column, definition, op, value)


class DateTimeField(FieldType):
    key = "datetime"
    label = "Date and time"
    ops = ("eq", *RANGE_OPS, "isnull")

    def marshmallow_field(self, definition: FieldDefinition) -> ma.fields.Field:
        return AwareDateTime()

    def to_storage(self, value: Any) -> Any:
        return iso_utc(value)

    def from_storage(self, raw: Any) -> Any:
        if raw is None:
            return None
        value = dt.datetime.fromisoformat(str(raw))
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        shown = value
        if isinstance(value, dt.datetime):
            shown = value.astimezone(current_env().tzinfo).replace(tzinfo=None).isoformat(timespec="minutes")
        return text_input(definition, shown, name=name, type_="datetime-local")

    def render_value(self, definition: FieldDefinition, value: Any) -> Markup:
        env = current_env()
        return Markup("{}").format(format_datetime(value, format="medium", tzinfo=env.tzinfo,
                                                   locale=env.babel_locale))

    def sql_filter(self, column: Any, definition: FieldDefinition, op: str, value: Any) -> ColumnElement[bool]:
        if op in RANGE_OPS:
            return json_compare(column, definition.key, op, value, "datetime")
        return super().sql_filter(column, definition, op, value)


# --------------------------------------------------------------------------------------------
# checkbox and choices


class CheckboxField(FieldType):
    """Yes/no. ``eq false`` matches rows never ticked as well as rows set to false. The input
    carries a hidden "0" before the box so an unticked box still submits a value; it has no
    ``required`` attribute (that would force it ticked)."""

    key = "checkbox"
    label = "Checkbox"

    def marshmallow_field(self, definition: FieldDefinition) -> ma.fields.Field:
        return fields.Boolean()

    def from_storage(self, raw: Any) -> Any:
        return None if raw is None else bool(raw)

    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        attrs = {"type": "checkbox", **control_attrs(definition, name, required=False), "value": "1",
                 "checked": value is True}
        control = Markup('<input type="hidden" name="{}" value="0"><input{}>').format(name, html_attrs(attrs))
        return wrap_control(definition, control)

    def render_value(self, definition: FieldDefinition, value: Any) -> Markup:
        return Markup("{}").format("Yes" if value else "No")

    def sql_filter(self, column: Any, definition: FieldDefinition, op: str, value: Any) -> ColumnElement[bool]:
        if op == "eq" and value is False:
            return json_is_not_true(column, definition.key)
        return super().sql_filter(column, definition, op, value)


def _choices(definition: FieldDefinition) -> list[dict[str, str]]:
    return list(_options(definition).get("choices") or [])


def _choice_labels(definition: FieldDefinition) -> dict[str, str]:
    return {c["value"]: c.get("label") or c["value"] for c in _choices(definition)}


def _one_of(definition: FieldDefinition) -> validate.OneOf:
    values = [c["value"] for c in _choices(definition)]
    return validate.OneOf(values, error="Choose one of: {choices}.")


class ChoiceField(FieldType):
    """One value of ``options.choices``. Values of a choice removed later stay stored and are
    shown as they are; they can no longer be written."""

    key = "choice"
    label = "Choice"
    options_schema = schemas.ChoiceOptions

    def marshmallow_field(self, definition: FieldDefinition) -> ma.fields.Field:
        return schemas.Stripped(validate=_one_of(definition))

    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        options = [Markup('<option value=""></option>')]
        for choice in _choices(definition):
            options.append(Markup("<option{}>{}</option>").format(
                html_attrs({"value": choice["value"], "selected": choice["value"] == value}), choice["label"]))
        control = Markup("<select{}>{}</select>").format(html_attrs(control_attrs(definition, name)),
                                                         Markup("").join(options))
        return wrap_control(definition, control)

    def render_value(self, definition: FieldDefinition, value: Any) -> Markup:
        return Markup("{}").format(_choice_labels(definition).get(value, value))


class ChoiceList(fields.List):
    """Choice values: a single string counts as one; duplicates dropped; kept in choice order."""

    def __init__(self, definition: FieldDefinition, **kwargs: Any) -> None:
        super().__init__(schemas.Stripped(validate=_one_of(definition)), **kwargs)
        self.order = {c["value"]: i for i, c in enumerate(_choices(definition))}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        items = super()._deserialize(value, attr, data, **kwargs)
        return sorted(set(items), key=lambda item: self.order.get(item, len(self.order)))


class MultiChoiceField(FieldType):
    """Several values of ``options.choices``. ``contains`` finds rows holding one value; ``eq``
    finds rows holding exactly the given set."""

    key = "multi_choice"
    label = "Multiple choice"
    options_schema = schemas.ChoiceOptions
    ops = ("eq", "contains", "isnull")

    def marshmallow_field(self, definition: FieldDefinition) -> ma.fields.Field:
        return ChoiceList(definition)

    def filter_field(self, definition: FieldDefinition, op: str) -> ma.fields.Field:
        if op == "contains":
            return schemas.Stripped(validate=_one_of(definition))
        return ChoiceList(definition, validate=validate.Length(min=1))

    def from_storage(self, raw: Any) -> Any:
        if raw is None:
            return None
        return [str(item) for item in raw] if isinstance(raw, list) else [str(raw)]

    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        chosen = set(value or [])
        options = [
            Markup("<option{}>{}</option>").format(
                html_attrs({"value": c["value"], "selected": c["value"] in chosen}), c["label"])
            for c in _choices(definition)
        ]
        attrs = {**control_attrs(definition, name), "multiple": True}
        control = Markup("<select{}>{}</select>").format(html_attrs(attrs), Markup("").join(options))
        return wrap_control(definition, control)

    def render_value(self, definition: FieldDefinition, value: Any) -> Markup:
        labels = _choice_labels(definition)
        return Markup(", ").join(Markup("{}").format(labels.get(item, item)) for item in value or [])

    def sql_filter(self, column: Any, definition: FieldDefinition, op: str, value: Any) -> ColumnElement[bool]:
        if op == "contains":
            return json_has_item(column, definition.key, value)
        if op == "eq":
            return json_same_items(column, definition.key, list(value))
        return json_isnull(column, definition.key, bool(value))


# --------------------------------------------------------------------------------------------
# references


class PartyReferenceField(FieldType):
    """The id of a party of the same business (the service checks it exists there)."""

    key = "party_ref"
    label = "Party"
    references = "party"

    def marshmallow_field(self, definition: FieldDefinition) -> ma.fields.Field:
        return schemas.StrictInteger(validate=validate.Range(min=1, error="Give a party id."))

    def from_storage(self, raw: Any) -> Any:
        return None if raw is None else int(raw)

    def render_input(self, definition: FieldDefinition, value: Any, *, name: str) -> Markup:
        return text_input(definition, value, name=name, inputmode="numeric", **{"data-lookup": "party"})

    def render_value(self, definition: FieldDefinition, value: Any) -> Markup:
        name = current_env().party_names.get(value) if isinstance(value, int) else None
        return Markup('<span class="party-ref" data-party-id="{}">{}</span>').format(
            value, name if name is not None else f"#{value}")

    def sql_filter(self, column: Any, definition: FieldDefinition, op: str, value: Any) -> ColumnElement[bool]:
        if op == "eq":
            return json_eq(column, definition.key, int(value))
        return super().sql_filter(column, definition, op, value)


BUILTIN_TYPES: tuple[type[FieldType], ...] = (
    TextField, LongTextField, IntegerField, DecimalField, AmountField, DateField, DateTimeField,
    CheckboxField, ChoiceField, MultiChoiceField, PartyReferenceField,
)
