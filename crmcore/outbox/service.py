"""Enqueueing outbox rows and running them: the call path the worker (``crm worker``) reuses.

A react-hook becomes one row per enabled plugin implementing it, so one plugin's failure is
retried on its own and never blocks another. Model instances in the hook's arguments are stored
by reference (``{"$model": "Party", "id": 5}``) and loaded again, within the business, when the
job runs; everything else must be JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, update

from crmcore.db import dumps, tenant_classes, utcnow
from crmcore.outbox.models import OutboxMessage, OutboxStatus

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.runtime import Crm

log = logging.getLogger("crmcore.outbox")

MAX_ERROR_CHARS = 2000


def serialize_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        mapper = getattr(type(value), "__mapper__", None)
        if mapper is not None:
            out[key] = {"$model": type(value).__name__, "id": value.id}
        else:
            out[key] = json.loads(dumps(value))
    return out


def _model_by_name(name: str) -> type:
    for cls in tenant_classes():
        if cls.__name__ == name:
            return cls
    raise LookupError(f"no tenant-owned model named {name!r}")


def hydrate_args(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, dict) and "$model" in value:
            out[key] = ctx.session.get(_model_by_name(value["$model"]), value["id"])
            if out[key] is None:
                raise LookupError(f"{value['$model']} {value['id']} no longer exists")
        else:
            out[key] = value
    return out


_INSERT = OutboxMessage.__table__.insert().returning(OutboxMessage.__table__.c.id)


def enqueue_hook(ctx: Context, hook_name: str, plugins: list[str], kwargs: dict[str, Any]) -> list[int]:
    """Queue ``hook_name`` for each of ``plugins`` in the current transaction; returns the new
    rows' ids.

    All rows go in one Core INSERT (a stage change with five plugins wrote five ORM rows before,
    each with the unit of work's overhead). Core statements bypass the tenant scope, so
    ``business_id`` is set here from the context.
    """
    if not plugins:
        return []
    payload = serialize_args(kwargs)
    now = utcnow()
    rows = [{
        "business_id": ctx.business_id,  # explicit: Core INSERT, outside the tenant scope
        "kind": "hook",
        "topic": hook_name,
        "plugin": plugin,
        "payload": payload,
        "idempotency_key": f"hook:{hook_name}:{plugin}:{ctx.new_key()}",
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "max_attempts": ctx.crm.config.outbox_max_attempts,
        "next_attempt_at": now,
        "user_id": ctx.user_id,
        "created_at": now,
        "updated_at": now,
    } for plugin in plugins]
    return list(ctx.session.connection().execute(_INSERT, rows).scalars())


def backoff(attempts: int, base: float = 2.0, cap: float = 3600.0) -> float:
    """Seconds before the next try: exponential with full jitter, capped."""
    return random.uniform(0, min(cap, base * (2 ** attempts)))


class JobDiscarded(Exception):
    """A job that must not run any more (its plugin was disabled): recorded as discarded, not retried."""


def run_messages(crm: Crm, message_ids: list[int]) -> dict[int, str]:
    """Claim, run and record a batch of outbox rows: one claim transaction, each job in its own
    transaction, one transaction recording every outcome. Returns ``{id: status}``; a row that
    another runner already claimed (or finished) is ``"skipped"``."""
    if not message_ids:
        return {}
    messages = _claim(crm, message_ids)
    outcomes = {message_id: "skipped" for message_id in message_ids}
    results = []
    contexts: dict[tuple[int, int | None], Any] = {}
    try:
        for message in messages:
            results.append((message, *_run_one(crm, message, contexts)))
    finally:
        for ctx in contexts.values():
            ctx.close()
    for message, status, _values, _ms in results:
        outcomes[message.id] = status.value
    _record(crm, results)
    return outcomes


def run_message(crm: Crm, message_id: int) -> str:
    """Claim, run and record one outbox row. Returns its new status. Never raises for a job's
    own failure: the outcome is recorded on the row."""
    return run_messages(crm, [message_id])[message_id]


def _claim(crm: Crm, message_ids: list[int]) -> list[OutboxMessage]:
    """Mark due rows running and return them: ONE conditional ``UPDATE ... RETURNING``, so a row
    is claimed by exactly one runner (a row another runner took no longer matches)."""
    claimable = [OutboxStatus.PENDING.value, OutboxStatus.FAILED.value]
    with crm.db.transaction(unscoped=True) as session:
        messages = sorted(session.scalars(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(message_ids), OutboxMessage.status.in_(claimable))
            .values(status=OutboxStatus.RUNNING.value, locked_until=utcnow() + dt.timedelta(minutes=5),
                    attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage)
            .execution_options(synchronize_session=False)
        ), key=lambda m: m.id)
        session.expunge_all()
    return messages


def _run_one(crm: Crm, message: OutboxMessage, contexts: dict) -> tuple[OutboxStatus, dict[str, Any], float]:
    started = time.perf_counter()
    error: str | None = None
    discarded = False
    try:
        handler = HANDLERS[message.kind]
        if message.kind == "hook":
            handler(crm, message, contexts=contexts)
        else:
            handler(crm, message)
    except JobDiscarded as exc:
        discarded, error = True, str(exc)
    except Exception as exc:  # recorded on the row; never propagates into the caller's request
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        log.warning("outbox job %s (%s %s) failed: %s", message.id, message.topic, message.plugin, error)
    duration_ms = (time.perf_counter() - started) * 1000
    if discarded:
        return OutboxStatus.DISCARDED, {"last_error": error}, duration_ms
    if error is None:
        return OutboxStatus.DONE, {"done_at": utcnow(), "last_error": None}, duration_ms
    if message.attempts >= message.max_attempts:
        return OutboxStatus.PARKED, {"last_error": error}, duration_ms
    return OutboxStatus.FAILED, {
        "last_error": error,
        "next_attempt_at": utcnow() + dt.timedelta(seconds=backoff(message.attempts)),
    }, duration_ms


_outbox = OutboxMessage.__table__
# every outcome in one executemany; columns an outcome does not set keep their value
_RECORD = (
    update(_outbox)
    .where(_outbox.c.id == bindparam("message_id"))
    .values(status=bindparam("new_status"), locked_until=None, last_duration_ms=bindparam("duration_ms"),
            last_error=bindparam("error"),
            done_at=func.coalesce(bindparam("done", type_=_outbox.c.done_at.type), _outbox.c.done_at),
            next_attempt_at=func.coalesce(bindparam("retry_at", type_=_outbox.c.next_attempt_at.type),
                                          _outbox.c.next_attempt_at),
            updated_at=bindparam("now", type_=_outbox.c.updated_at.type))
)


def _record(crm: Crm, results: list[tuple[OutboxMessage, OutboxStatus, dict[str, Any], float]]) -> None:
    if not results:
        return
    now = utcnow()
    rows = [{"message_id": message.id, "new_status": status.value, "duration_ms": duration_ms,
             "error": values.get("last_error"), "done": values.get("done_at"),
             "retry_at": values.get("next_attempt_at"), "now": now}
            for message, status, values, duration_ms in results]
    with crm.db.transaction(unscoped=True) as session:  # install-wide: rows are named by id
        session.connection().execute(_RECORD, rows)


def run_hook_message(crm: Crm, message: OutboxMessage, contexts: dict | None = None) -> None:
    """Run one plugin's react-hook in its own transaction. ``contexts`` reuses one Context per
    (business, user) across a batch; a failing job's transaction is rolled back before the next."""
    impl = next((i for i in getattr(crm.registry.pm.hook, message.topic).get_hookimpls()
                 if i.plugin_name == message.plugin), None)
    if impl is None:
        raise LookupError(f"plugin {message.plugin!r} is not installed or no longer implements {message.topic}")
    own = contexts is None
    contexts = {} if contexts is None else contexts
    ctx = _context_for(crm, message, contexts)
    try:
        if message.topic != "crm_after_plugin_disabled" and message.plugin not in ctx.hooks.enabled:
            raise JobDiscarded(f"plugin {message.plugin!r} was disabled for this business before the job ran")
        kwargs = hydrate_args(ctx, message.payload)
        kwargs["ctx"] = ctx
        impl.function(*[kwargs[name] for name in impl.argnames])
        if ctx.session.in_transaction():
            ctx.session.commit()
    except BaseException:
        ctx.session.rollback()
        ctx._pending.clear()
        raise
    finally:
        if own:
            ctx.close()


def _context_for(crm: Crm, message: OutboxMessage, contexts: dict) -> Any:
    from crmcore.context import Context
    from crmcore.errors import PermissionDenied

    key = (message.business_id, message.user_id)
    ctx = contexts.get(key)
    if ctx is None:
        try:
            ctx = Context.open(crm, message.business_id, message.user_id, system=True)
        except PermissionDenied:  # the user was deactivated after the change: the job still runs
            ctx = Context.open(crm, message.business_id, None, system=True)
        contexts[key] = ctx
    return ctx


#: handlers by ``OutboxMessage.kind``; later features (email, sms, webhooks) add theirs
HANDLERS: dict[str, Any] = {"hook": run_hook_message}
