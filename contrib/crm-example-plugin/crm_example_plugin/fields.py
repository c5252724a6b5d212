"""A custom-field type: vehicle identification number (entry point ``crmcore.field_types: vin``).

Equipment and vehicle dealers track machines by VIN or serial. Values are stored normalized
(upper case, no blanks), so an equality filter is one JSON containment test on the indexed
``custom`` column, and "contains" finds a machine by the serial part a customer reads out.
The type is usable in a business only while the example plugin is enabled there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import marshmallow as ma
from markupsafe import Markup

from crm_example_plugin import vin
from crmcore.fields.base import FieldType, json_eq, json_text_contains, text_input

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement


class VinOptions(ma.Schema):
    """Options of a VIN field: whether the North American check digit is required."""

    check_digit = ma.fields.Boolean(
        load_default=True,
        metadata={"label": "Verify the check digit (9th character)",
                  "help": "Turn off for vehicles built for markets without a check digit."},
    )


class VinValue(ma.fields.String):
    """A VIN: normalized, then checked for length, alphabet and (optionally) check digit."""

    def __init__(self, *, verify_check_digit: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verify_check_digit = verify_check_digit

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        normalized = vin.normalize(super()._deserialize(value, attr, data, **kwargs))
        problem = vin.problem(normalized, verify_check_digit=self.verify_check_digit)
        if problem:
            raise ma.ValidationError(problem)
        return normalized


class VinFragment(ma.fields.String):
    """Part of a VIN to search for (e.g. the last six characters, the serial number)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        fragment = vin.normalize(super()._deserialize(value, attr, data, **kwargs))
        if not 1 <= len(fragment) <= vin.LENGTH or any(ch not in vin.ALPHABET for ch in fragment):
            raise ma.ValidationError(f"search for 1 to {vin.LENGTH} characters of a VIN "
                                     "(digits and letters other than I, O, Q)")
        return fragment


class VinField(FieldType):
    """Vehicle identification number (ISO 3779), 17 characters."""

    key: ClassVar[str] = "vin"
    label: ClassVar[str] = "Vehicle identification number (VIN)"
    options_schema: ClassVar[type[ma.Schema] | None] = VinOptions
    ops: ClassVar[tuple[str, ...]] = ("eq", "contains", "isnull")

    def marshmallow_field(self, definition: Any) -> ma.fields.Field:
        options = definition.options or {}
        return VinValue(verify_check_digit=bool(options.get("check_digit", True)))

    def filter_field(self, definition: Any, op: str) -> ma.fields.Field:
        if op == "contains":
            return VinFragment()
        if op == "eq":  # looking one up: the alphabet must be right, the check digit need not be
            return VinValue(verify_check_digit=False)
        return super().filter_field(definition, op)

    def to_storage(self, value: Any) -> Any:
        return None if value is None else vin.normalize(str(value))

    def from_storage(self, raw: Any) -> Any:
        return raw if raw is None else str(raw)

    def render_input(self, definition: Any, value: Any, *, name: str) -> Markup:
        return text_input(definition, value, name=name, maxlength=25, autocomplete="off",
                          spellcheck="false", autocapitalize="characters", **{"class": "vin"})

    def render_value(self, definition: Any, value: Any) -> Markup:
        if value is None:
            return Markup("")
        return Markup('<code class="vin">{}</code>').format(value)

    def sql_filter(self, column: Any, definition: Any, op: str, value: Any) -> ColumnElement[bool]:
        if op == "eq":
            return json_eq(column, definition.key, self.to_storage(value))
        if op == "contains":
            return json_text_contains(column, definition.key, vin.normalize(str(value)))
        return super().sql_filter(column, definition, op, value)
