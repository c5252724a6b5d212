"""Input schemas for list options, and the stripped-text field the party schemas reuse."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

#: option values are stable slugs starting with a letter, so a digit string always means an id
VALUE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LIST_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")
COLOR_RE = re.compile(r"^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|[a-z]{3,16})$")


class Text(fields.String):
    """A string that is stripped, limited to ``max_length`` and, when empty, None (or an error
    when ``required``/``not_empty``)."""

    def __init__(self, max_length: int, *, not_empty: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", not (kwargs.get("required") or not_empty))
        super().__init__(**kwargs)
        self.max_length = max_length
        self.not_empty = not_empty or bool(kwargs.get("required"))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | None:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            if self.not_empty:
                raise ValidationError("must not be empty")
            return None
        if len(text) > self.max_length:
            raise ValidationError(f"at most {self.max_length} characters")
        return text


class WholeNumber(fields.Integer):
    """An integer from JSON or a form ("12"), refusing booleans and fractions."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise self.make_error("invalid")
        if isinstance(value, str):
            value = value.strip()
        return super()._deserialize(value, attr, data, **kwargs)


class OptionSchema(Schema):
    value = Text(64, required=True, validate=validate.Regexp(
        VALUE_RE, error="use lowercase letters, digits and _, starting with a letter (at most 64)"))
    label = Text(200, required=True)
    color = Text(16, validate=validate.Regexp(COLOR_RE, error="use #rgb, #rrggbb or a colour name"))
    position = WholeNumber(validate=validate.Range(min=0, max=1_000_000))


class OptionUpdateSchema(Schema):
    """``value`` is the stable key other rows and plugins refer to: it cannot change."""

    label = Text(200, not_empty=True)
    color = Text(16, validate=validate.Regexp(COLOR_RE, error="use #rgb, #rrggbb or a colour name"))
    position = WholeNumber(validate=validate.Range(min=0, max=1_000_000))
    is_active = fields.Boolean()
