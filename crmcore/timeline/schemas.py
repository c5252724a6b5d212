"""Input schemas of the timeline use cases (marshmallow 4: unknown fields are errors)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

NOTE_BODY_MAX = 20_000
REMINDER_TITLE_MAX = 300
DESCRIPTION_MAX = 20_000
FILENAME_INPUT_MAX = 4096
CONTENT_TYPE_MAX = 127


class Trimmed(fields.String):
    """A string with surrounding whitespace removed before length checks."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


class Id(fields.Integer):
    """A positive row id (booleans are not ids)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(min=1), **kwargs)


def _require_target(data: dict[str, Any]) -> None:
    if data.get("party_id") is None and data.get("record_id") is None:
        raise ValidationError("give a party or a record", "party_id")


class NoteCreate(Schema):
    body = Trimmed(required=True, validate=validate.Length(1, NOTE_BODY_MAX))
    party_id = Id(allow_none=True, load_default=None)
    record_id = Id(allow_none=True, load_default=None)
    pinned = fields.Boolean(load_default=False)

    @validates_schema
    def _target(self, data: dict[str, Any], **_: Any) -> None:
        _require_target(data)


class NoteUpdate(Schema):
    body = Trimmed(validate=validate.Length(1, NOTE_BODY_MAX))
    pinned = fields.Boolean()


class AttachmentCreate(Schema):
    filename = fields.String(required=True, validate=validate.Length(max=FILENAME_INPUT_MAX))
    content_type = Trimmed(allow_none=True, load_default=None, validate=validate.Length(max=CONTENT_TYPE_MAX))
    party_id = Id(allow_none=True, load_default=None)
    record_id = Id(allow_none=True, load_default=None)

    @validates_schema
    def _target(self, data: dict[str, Any], **_: Any) -> None:
        _require_target(data)


class ReminderCreate(Schema):
    title = Trimmed(required=True, validate=validate.Length(1, REMINDER_TITLE_MAX))
    due_at = fields.AwareDateTime(required=True)
    assigned_to_id = Id(allow_none=True, load_default=None)
    party_id = Id(allow_none=True, load_default=None)
    record_id = Id(allow_none=True, load_default=None)
    description = Trimmed(allow_none=True, load_default=None, validate=validate.Length(max=DESCRIPTION_MAX))


class ReminderUpdate(Schema):
    title = Trimmed(validate=validate.Length(1, REMINDER_TITLE_MAX))
    due_at = fields.AwareDateTime()
    assigned_to_id = Id(allow_none=True)
    description = Trimmed(allow_none=True, validate=validate.Length(max=DESCRIPTION_MAX))


class FeedQuery(Schema):
    party_id = Id(allow_none=True, load_default=None)
    record_id = Id(allow_none=True, load_default=None)
    kinds = fields.List(Trimmed(validate=validate.Length(1, 40)), allow_none=True, load_default=None)

    @validates_schema
    def _one_target(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("party_id") is None) == (data.get("record_id") is None):
            raise ValidationError("give exactly one of party_id and record_id", "party_id")


def load(schema: type[Schema], data: dict[str, Any], what: str) -> dict[str, Any]:
    """Validate ``data``; a bad value becomes ValidationFailed naming ``what`` and the fields."""
    from crmcore.errors import ValidationFailed

    try:
        return schema().load(data)
    except ValidationError as exc:
        fields_ = ", ".join(sorted(exc.messages)) if isinstance(exc.messages, dict) else ""
        raise ValidationFailed(f"invalid {what}" + (f": check {fields_}" if fields_ else ""),
                               exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}) from exc
