"""Writing and reading the audit log.

Entries never hold secrets: values under a key that names one (password, secret, token, API or
private key, credential) are replaced by ``"[redacted]"`` when written, whatever the caller
passed; plugin settings changes record field names only (see ``crmcore.plugins.service``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmcore import journal
from crmcore.audit.models import AuditEntry
from crmcore.context import use_case
from crmcore.db import dumps, utcnow
from crmcore.errors import ValidationFailed
from crmcore.paging import Page, keyset_page
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)|secret|token|api_?key|private_?key|credential|signing_?key",
                         re.IGNORECASE)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    return _redact(json.loads(dumps(value)))


_TABLE = AuditEntry.__table__


def record(ctx: Context, action: str, entity: Any = None, *, entity_type: str | None = None,
           entity_id: int | None = None, changes: dict[str, Any] | None = None) -> AuditEntry:
    """Add an audit entry to the current transaction (call inside a use case); returns a
    detached copy of the row, without its id.

    Written at commit with the transaction's other append-only rows, in one statement
    (:mod:`crmcore.journal`): every write use case audits, and a round trip of its own cost more
    than the row. Core statements bypass the tenant scope, so ``business_id`` is set here
    explicitly from the context.
    """
    if entity is not None:
        entity_type = entity_type or type(entity).__name__.lower()
        entity_id = entity_id if entity_id is not None else entity.id
    values = {
        "business_id": ctx.business_id,  # explicit: Core INSERT, outside the tenant scope
        "at": utcnow(),
        "user_id": ctx.user_id,
        "action": action,
        "entity_type": entity_type or "",
        "entity_id": entity_id,
        "changes": _jsonable(changes or {}),
    }
    journal.append(ctx.session, _TABLE, [values])
    return AuditEntry(**values)


def history(ctx: Context, entity_type: str, entity_id: int, limit: int = 100) -> list[AuditEntry]:
    """Newest first."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.entity_type == entity_type, AuditEntry.entity_id == entity_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return list(ctx.session.scalars(stmt))


def _whole(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationFailed(f"invalid {name}", {name: ["must be a whole number"]})
    try:
        return int(value)
    except ValueError as exc:
        raise ValidationFailed(f"invalid {name}", {name: ["must be a whole number"]}) from exc


@use_case(Role.ADMIN, write=False)
def list_entries(ctx: Context, *, entity_type: str | None = None, entity_id: int | None = None,
                 user_id: int | None = None, cursor: str | None = None, limit: int | None = 50) -> Page[AuditEntry]:
    """One page of the business's audit log, newest first (keyset on id), optionally for one
    entity (``entity_type`` and ``entity_id``), one entity type, or one user."""
    entity_id = _whole(entity_id, "entity_id")
    user_id = _whole(user_id, "user_id")
    if entity_id is not None and not entity_type:
        raise ValidationFailed("give the entity type with an entity id",
                               {"entity_type": ["required when entity_id is given"]})
    stmt = select(AuditEntry)
    if entity_type:
        stmt = stmt.where(AuditEntry.entity_type == entity_type.strip())
    if entity_id is not None:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if user_id is not None:
        stmt = stmt.where(AuditEntry.user_id == user_id)
    return keyset_page(ctx.session, stmt, [AuditEntry.id], cursor=cursor, limit=limit, descending=True)
