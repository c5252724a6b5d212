"""Input schemas of the record use cases (marshmallow 4: unknown fields are errors)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate

from crmcore.errors import ValidationFailed

TITLE_MAX = 300
TEXT_MAX = 50_000
AMOUNT_INTEGER_DIGITS = 14
AMOUNT_PLACES = 4
CURRENCY_RE = re.compile(r"[A-Z]{3}")
RECORD_STATUSES = ("open", "won", "lost")
#: what only the stage moves change
MOVE_FIELDS = ("pipeline_id", "stage_id", "status", "closed_at", "lost_reason_id")


class Trimmed(fields.String):
    """A string stripped of surrounding space and limited to ``max_length``.

    A blank value is None where None is allowed, else an error (so " " never becomes a title).
    """

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            if self.allow_none:
                return None
            raise ValidationError("must not be blank")
        if len(text) > self.max_length:
            raise ValidationError(f"must be at most {self.max_length} characters")
        return text


class Id(fields.Integer):
    """A row id: a positive whole number (strict: 1.5 or True are refused)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("strict", True)
        kwargs.setdefault("validate", validate.Range(min=1, error="must be a positive id"))
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        return super()._deserialize(value, attr, data, **kwargs)


def check_amount(value: Decimal) -> None:
    """An amount is >= 0, has at most 14 integer digits and 4 decimals (Numeric(18, 4))."""
    if value < 0:
        raise ValidationError("must not be negative")
    sign, digits, exponent = value.normalize().as_tuple()
    if not isinstance(exponent, int):
        raise ValidationError("must be a number")
    decimals = max(0, -exponent)
    if decimals > AMOUNT_PLACES:
        raise ValidationError(f"use at most {AMOUNT_PLACES} decimals")
    integer_digits = len(digits) - decimals if exponent <= 0 else len(digits) + exponent
    if integer_digits > AMOUNT_INTEGER_DIGITS:
        raise ValidationError(f"must have at most {AMOUNT_INTEGER_DIGITS} digits before the decimal point")


class Amount(fields.Decimal):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_nan", False)
        kwargs.setdefault("validate", check_amount)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float):
            value = repr(value)  # 0.1 means "0.1", not its binary approximation
        return super()._deserialize(value, attr, data, **kwargs)


class Currency(fields.String):
    """An ISO 4217 code; case is normalised (``eur`` -> ``EUR``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        code = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if not code and self.allow_none:
            return None
        if not CURRENCY_RE.fullmatch(code):
            raise ValidationError("use a three-letter ISO 4217 code such as EUR")
        return code


class _RecordFields(Schema):
    description = Trimmed(TEXT_MAX, allow_none=True)
    party_id = Id(allow_none=True)
    contact_id = Id(allow_none=True)
    owner_id = Id(allow_none=True)
    amount = Amount(allow_none=True)
    currency = Currency(allow_none=True)
    expected_close_date = fields.Date(allow_none=True)
    proposed_solution = Trimmed(TEXT_MAX, allow_none=True)
    custom = fields.Dict(keys=fields.String(), allow_none=True)


class RecordCreateSchema(_RecordFields):
    title = Trimmed(TITLE_MAX, required=True)
    pipeline_id = Id(allow_none=True)
    stage_id = Id(allow_none=True)


class RecordUpdateSchema(_RecordFields):
    title = Trimmed(TITLE_MAX)

    @pre_load
    def _no_moves(self, data: Any, **_kwargs: Any) -> Any:
        """Say how to change the stage, rather than just "unknown field"."""
        if isinstance(data, Mapping):
            moved = sorted(k for k in MOVE_FIELDS if k in data)
            if moved:
                raise ValidationError({k: ["change the stage with move_stage, close_won, close_lost or reopen"]
                                       for k in moved})
        return data


class RecordFilterSchema(Schema):
    status = fields.String(validate=validate.OneOf(RECORD_STATUSES), allow_none=True)
    pipeline_id = Id(allow_none=True)
    stage_id = Id(allow_none=True)
    party_id = Id(allow_none=True)
    contact_id = Id(allow_none=True)
    owner_id = Id(allow_none=True)
    q = Trimmed(TITLE_MAX, allow_none=True)
    custom = fields.Dict(keys=fields.String(), allow_none=True)
    include_archived = fields.Boolean(load_default=False)


class StakeholderSchema(Schema):
    role = fields.Raw(allow_none=True)
    notes = Trimmed(TEXT_MAX, allow_none=True)


class CompetitorSchema(Schema):
    competitor = fields.Raw(allow_none=True)
    notes = Trimmed(TEXT_MAX, allow_none=True)


class NoteSchema(Schema):
    note = Trimmed(TEXT_MAX, allow_none=True)


def load(schema: Schema, data: Any, message: str, *, partial: bool = False) -> dict[str, Any]:
    """Validate ``data``; a marshmallow error becomes ValidationFailed(message, field -> messages)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValidationFailed(message, {"_schema": ["expected an object of fields"]})
    try:
        return schema.load(dict(data), partial=partial)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise ValidationFailed(message, messages) from exc


def clean_note(note: Any) -> str | None:
    """A move's optional note, stripped and length-checked."""
    return load(NoteSchema(), {"note": note}, "invalid note")["note"] if note is not None else None
