"""Input schema of a numbering rule."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from crmcore.numbering.pattern import MAX_PATTERN_LENGTH


class _Stripped(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


class RuleSchema(ma.Schema):
    target = _Stripped(required=True, validate=validate.Length(min=1, max=64))
    pattern = _Stripped(required=True, validate=validate.Length(
        min=1, max=MAX_PATTERN_LENGTH, error=f"Use 1 to {MAX_PATTERN_LENGTH} characters."))
    is_active = fields.Boolean(load_default=True)


class PreviewSchema(ma.Schema):
    pattern = _Stripped(required=True)
    count = fields.Integer(load_default=3, strict=True, validate=validate.Range(min=1, max=20))
