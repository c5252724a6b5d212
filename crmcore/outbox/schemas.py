"""Input of the outbox's admin views: which rows to list."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from crmcore.errors import ValidationFailed
from crmcore.paging import MAX_LIMIT

#: the views of the admin page and the API, by the status they show ("queued" is pending)
VIEWS: dict[str, str] = {
    "queued": "pending", "running": "running", "failed": "failed", "parked": "parked",
    "done": "done", "discarded": "discarded",
}


class OutboxListQuery(Schema):
    """``view`` (queued, running, failed, parked, done, discarded), ``cursor``, ``limit``."""

    class Meta:
        unknown = EXCLUDE

    view = fields.String(load_default="queued", validate=validate.OneOf(list(VIEWS)))
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    limit = fields.Integer(load_default=None, allow_none=True, strict=False,
                           validate=validate.Range(min=1, max=MAX_LIMIT))


def load_list_query(data: dict[str, Any]) -> dict[str, Any]:
    try:
        return OutboxListQuery().load({k: v for k, v in data.items() if v not in (None, "")})
    except ValidationError as exc:
        raise ValidationFailed("invalid outbox list", exc.messages) from exc  # type: ignore[arg-type]
