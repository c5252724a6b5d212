"""Input schemas: field definitions, and the options of each built-in field type."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
#: text fields: the default and the largest max_length
TEXT_DEFAULT_MAX = 255
TEXT_LIMIT = 2000
LONG_TEXT_DEFAULT_MAX = 10_000
LONG_TEXT_LIMIT = 100_000
#: decimals and amounts: beyond this magnitude a value is refused (Numeric(18, 4) holds it)
NUMBER_LIMIT = Decimal("1e14")
#: integers: the range every JSON reader (and JavaScript) holds exactly
INTEGER_LIMIT = 2**53 - 1


class Stripped(fields.String):
    """A string with surrounding whitespace removed; NUL is refused (PostgreSQL cannot store it)."""

    default_error_messages = {"nul": "Remove the NUL character."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise self.make_error("nul")
        return text.strip()


class OptionalText(Stripped):
    """A stripped string of at most ``max_length`` characters where blank means "none"."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        super().__init__(allow_none=True, **kwargs)
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > self.max_length:
            raise ma.ValidationError(f"Use at most {self.max_length} characters.")
        return text or None


class StrictInteger(fields.Integer):
    """An integer within +-(2**53 - 1) that refuses booleans and numbers with a fraction
    (marshmallow's own truncates 5.5 to 5)."""

    default_error_messages = {"too_large": f"Use a whole number between -{INTEGER_LIMIT} and {INTEGER_LIMIT}."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid")
        if isinstance(value, Decimal) and (not value.is_finite() or value != value.to_integral_value()):
            raise self.make_error("invalid")
        if isinstance(value, str):
            value = value.strip()
        number = super()._deserialize(value, attr, data, **kwargs)
        if abs(number) > INTEGER_LIMIT:
            raise self.make_error("too_large")
        return number


class StrictDecimal(fields.Decimal):
    """A finite decimal, not a boolean, within :data:`NUMBER_LIMIT`."""

    default_error_messages = {"too_large": "Use a number smaller than 100,000,000,000,000 in magnitude."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, str):
            value = value.strip()
        number = super()._deserialize(value, attr, data, **kwargs)
        if abs(number) >= NUMBER_LIMIT:
            raise self.make_error("too_large")
        return number


# --------------------------------------------------------------------------------------------
# field definitions


class FieldDefinitionSchema(ma.Schema):
    key = Stripped(required=True, validate=validate.Regexp(
        KEY_RE, error="Use a lowercase letter, then up to 62 lowercase letters, digits or underscores."))
    label = Stripped(required=True, validate=validate.Length(min=1, max=200))
    type = Stripped(required=True, validate=validate.Length(min=1, max=64))
    options = fields.Dict(keys=fields.String(), load_default=dict)
    required = fields.Boolean(load_default=False)
    position = StrictInteger(validate=validate.Range(min=0, max=1_000_000))
    help_text = OptionalText(500, load_default=None)


class FieldUpdateSchema(FieldDefinitionSchema):
    """Every field optional; ``key`` and ``type`` are accepted only unchanged (the service checks)."""

    options = fields.Dict(keys=fields.String())
    required = fields.Boolean()
    help_text = OptionalText(500)


# --------------------------------------------------------------------------------------------
# options of the built-in types


class _RangeMixin:
    @ma.validates_schema
    def _min_below_max(self, data: dict[str, Any], **_kwargs: Any) -> None:
        low, high = data.get("min"), data.get("max")
        if low is not None and high is not None and low > high:
            raise ma.ValidationError("min must not be greater than max", "max")


class TextOptions(ma.Schema):
    max_length = StrictInteger(validate=validate.Range(min=1, max=TEXT_LIMIT))


class LongTextOptions(ma.Schema):
    max_length = StrictInteger(validate=validate.Range(min=1, max=LONG_TEXT_LIMIT))


class IntegerOptions(_RangeMixin, ma.Schema):
    min = StrictInteger(allow_none=True)
    max = StrictInteger(allow_none=True)


class DecimalOptions(_RangeMixin, ma.Schema):
    min = StrictDecimal(allow_none=True)
    max = StrictDecimal(allow_none=True)


class AmountOptions(DecimalOptions):
    currency = Stripped(validate=validate.Regexp(CURRENCY_RE, error="Use a three-letter ISO 4217 code such as EUR."))

    @ma.pre_load
    def _upper_currency(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("currency"), str):
            return {**data, "currency": data["currency"].strip().upper()}
        return data


class ChoiceSchema(ma.Schema):
    value = Stripped(required=True, validate=validate.Length(min=1, max=64))
    label = Stripped(validate=validate.Length(min=1, max=200))

    @ma.post_load
    def _label_defaults_to_value(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        return {"value": data["value"], "label": data.get("label") or data["value"]}


class ChoiceOptions(ma.Schema):
    choices = fields.List(fields.Nested(ChoiceSchema), required=True,
                          validate=validate.Length(min=1, max=500, error="Give 1 to 500 choices."))

    @ma.validates_schema
    def _unique_values(self, data: dict[str, Any], **_kwargs: Any) -> None:
        seen: set[str] = set()
        for choice in data.get("choices", []):
            if choice["value"] in seen:
                raise ma.ValidationError(f"the choice value {choice['value']!r} appears twice", "choices")
            seen.add(choice["value"])
