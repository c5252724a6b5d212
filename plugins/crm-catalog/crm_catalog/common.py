"""Small helpers the catalog's use cases share: input loading, keys, the business's today."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, ValidationError

from crmcore.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from crmcore.context import Context


def load(schema: type[Schema], data: Any, what: str, *, partial: bool = False) -> dict[str, Any]:
    """Validate ``data``; a bad value becomes ValidationFailed naming ``what`` and each field."""
    if not isinstance(data, Mapping):
        raise ValidationFailed(f"invalid {what}", {"_schema": ["expected an object"]})
    try:
        return schema().load(dict(data), partial=partial)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise ValidationFailed(f"invalid {what}: check {', '.join(sorted(messages))}", messages) from None


def fail(field: str, message: str) -> ValidationFailed:
    """A one-field ValidationFailed (the message is also the headline)."""
    return ValidationFailed(message, {field: [message]})


def key(text: str) -> str:
    """The case-insensitive key of a SKU, a name or a part number."""
    return text.casefold()


def today(ctx: Context) -> dt.date:
    """Today in the business's time zone: prices valid "today" change at its midnight."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(ctx.business.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return dt.datetime.now(zone).date()


def valid_on(valid_from: dt.date | None, valid_to: dt.date | None, day: dt.date) -> bool:
    """Both ends inclusive; a missing end is open."""
    return (valid_from is None or valid_from <= day) and (valid_to is None or day <= valid_to)


def party_or_fail(ctx: Context, party_id: int, field: str = "party_id") -> Any:
    """The party of this business (not merged away), else a field error: another business's
    party looks exactly like one that does not exist."""
    from crmcore.parties.service import get_party

    try:
        party = get_party(ctx, party_id)
    except NotFound:
        party = None
    if party is None or getattr(party, "merged_into_id", None) is not None:
        raise fail(field, f"no party {party_id} in this business")
    return party


def collect_read_only(ctx: Context, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """``ctx.collect`` inside a savepoint that is always rolled back: other plugins' answers are
    read-only, and one whose SQL failed (PostgreSQL then refuses every later statement of the
    transaction) leaves the caller's transaction usable. ``ctx.collect`` itself logs and skips
    an implementation that raises."""
    savepoint = ctx.session.begin_nested()
    try:
        return ctx.collect(hook_name, **kwargs)
    finally:
        if savepoint.is_active:
            savepoint.rollback()


@dataclass(frozen=True)
class Removal:
    """What a delete did: ``deleted``, or kept but deactivated because something refers to it
    (``reason`` says what)."""

    deleted: bool
    reason: str | None = None
