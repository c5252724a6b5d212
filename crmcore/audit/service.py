"""Writing and reading the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmcore.audit.models import AuditEntry
from crmcore.db import dumps

if TYPE_CHECKING:
    from crmcore.context import Context


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(dumps(value))


def record(ctx: Context, action: str, entity: Any = None, *, entity_type: str | None = None,
           entity_id: int | None = None, changes: dict[str, Any] | None = None) -> AuditEntry:
    """Add an audit entry to the current transaction (call inside a use case)."""
    if entity is not None:
        entity_type = entity_type or type(entity).__name__.lower()
        entity_id = entity_id if entity_id is not None else entity.id
    entry = AuditEntry(
        business_id=ctx.business_id,
        user_id=ctx.user_id,
        action=action,
        entity_type=entity_type or "",
        entity_id=entity_id,
        changes=_jsonable(changes or {}),
    )
    ctx.session.add(entry)
    return entry


def history(ctx: Context, entity_type: str, entity_id: int, limit: int = 100) -> list[AuditEntry]:
    """Newest first."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.entity_type == entity_type, AuditEntry.entity_id == entity_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return list(ctx.session.scalars(stmt))
