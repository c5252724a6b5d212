"""Enqueueing outbox rows and running them: the one call path of the worker and of inline runs.

A react-hook becomes one row per enabled plugin implementing it, so one plugin's failure is
retried on its own and never blocks another. Model instances in the hook's arguments are stored
by reference (``{"$model": "Party", "id": 5}``) and loaded again, within the business, when the
job runs; everything else must be JSON.

Running a job is three steps, each its own short transaction: **claim** (one conditional
``UPDATE ... RETURNING`` marks rows running with a lease and counts the attempt), **execute**
(the handler, in its own transaction, outside any lock), **record** (the outcomes of a batch in
one statement, fenced by the attempt number, so a worker whose lease ran out cannot overwrite
the outcome of the worker that claimed the row after it). :mod:`crmcore.outbox.worker` loops over
these; :func:`run_messages` runs given rows right after commit when ``outbox_inline`` is on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import json
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from sqlalchemy import bindparam, case, delete, func, literal, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from crmcore import journal
from crmcore.db import dumps, tenant_classes, utcnow
from crmcore.outbox.models import CLAIMABLE, OutboxMessage, OutboxStatus

if TYPE_CHECKING:
    from crmcore.config import Config
    from crmcore.context import Context
    from crmcore.runtime import Crm

log = logging.getLogger("crmcore.outbox")

MAX_ERROR_CHARS = 2000
REDACTED = "[redacted]"
#: written on a row claimed again after its lease ran out (shown to admins while it runs again)
RECLAIMED = "the worker running the previous attempt stopped before recording an outcome (its lease ran out)"

_outbox = OutboxMessage.__table__
# the subqueries that pick rows read the table under another name (never correlated with the
# UPDATE or DELETE around them), and spell the statuses out as literals, exactly as the partial
# indexes ``ix_outbox_due`` and ``ix_outbox_finished`` do, so that both databases use them
_due = _outbox.alias("due")
_DUE_SQL = text("due.status IN ('pending', 'failed', 'running')")
_gone = _outbox.alias("gone")
_GONE_SQL = text("gone.status IN ('done', 'discarded')")


# --------------------------------------------------------------------------------------------
# enqueueing


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


def enqueue_hook(ctx: Context, hook_name: str, plugins: list[str], kwargs: dict[str, Any]) -> None:
    """Queue ``hook_name`` for each of ``plugins`` in the current transaction.

    The rows are written at commit with the transaction's other append-only rows, in one
    statement (:mod:`crmcore.journal`), and their ids join ``ctx``'s jobs to run after commit.
    Core statements bypass the tenant scope, so ``business_id`` is set here from the context.
    """
    if not plugins:
        return
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
    journal.append(ctx.session, _outbox, rows, on_ids=ctx._pending.extend)


def enqueue(ctx: Context, kind: str, topic: str, payload: dict[str, Any], *, idempotency_key: str,
            plugin: str | None = None, delay: float = 0.0, max_attempts: int | None = None) -> int | None:
    """Queue one job of ``kind`` (a registered handler) in the current transaction.

    ``idempotency_key`` is unique across the table: queueing the same effect again (a retried
    request, a second click) is a no-op and returns None; otherwise the new row's id. The row
    runs after commit (inline when ``outbox_inline`` is on, else by a worker, woken at once when
    it runs in this process). ``payload`` must be JSON and must not hold secrets: handlers read
    credentials from the business's settings when they run.
    """
    now = utcnow()
    values = {
        "business_id": ctx.business_id,  # explicit: Core INSERT, outside the tenant scope
        "kind": kind, "topic": topic, "plugin": plugin, "payload": json.loads(dumps(payload)),
        "idempotency_key": idempotency_key, "status": OutboxStatus.PENDING.value, "attempts": 0,
        "max_attempts": max_attempts or ctx.crm.config.outbox_max_attempts,
        "next_attempt_at": now + dt.timedelta(seconds=max(0.0, delay)),
        "user_id": ctx.user_id, "created_at": now, "updated_at": now,
    }
    journal.write(ctx.session)  # queued hook jobs first: rows keep the order they were queued in
    dialect = ctx.session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_outbox)
    stmt = insert.values(values).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(_outbox.c.id)
    new_id = ctx.session.connection().execute(stmt).scalar()
    if new_id is not None and delay <= 0:
        ctx._pending.append(new_id)
    return new_id


# --------------------------------------------------------------------------------------------
# handlers


@dataclass(frozen=True)
class Handler:
    kind: str
    fn: Callable[..., Any]
    #: seconds the job may run; None: the installation's ``outbox_job_timeout``
    timeout: float | None = None


#: handler functions by ``OutboxMessage.kind``; add to it with :func:`register_handler`
HANDLERS: dict[str, Callable[..., Any]] = {}
_TIMEOUTS: dict[str, float | None] = {}
_PARAMS: dict[Any, frozenset[str]] = {}


def register_handler(kind: str, fn: Callable[..., Any], *, timeout: float | None = None,
                     replace: bool = False) -> None:
    """Make ``fn`` run the outbox rows of ``kind``.

    ``fn(crm, message)`` runs one job; it may also take ``deadline`` (a ``time.monotonic()``
    value: finish, or give up, before it) and ``contexts`` (a dict to reuse one Context per
    ``(business_id, user_id)`` across a batch). Return normally when done; raise to fail (the job
    is retried with backoff, then parked); raise :class:`JobDiscarded` when it must never run
    again, :class:`ParkJob` when retrying is pointless but an admin should see it. The worker
    abandons a job after ``timeout`` seconds (default: ``outbox_job_timeout``), so pass the time
    left (:func:`time_left`) to every network call. Error messages are shown to admins: secrets
    the business configured are redacted from them, but write none in the first place.
    """
    if not kind or len(kind) > 32:
        raise ValueError("an outbox kind is 1 to 32 characters")
    if timeout is not None and not timeout > 0:
        raise ValueError("a handler timeout must be a positive number of seconds")
    if kind in HANDLERS and HANDLERS[kind] is not fn and not replace:
        raise ValueError(f"an outbox handler for kind {kind!r} is registered already")
    HANDLERS[kind] = fn
    _TIMEOUTS[kind] = timeout


def unregister_handler(kind: str) -> None:
    """Forget the handler of ``kind`` (tests; the core's ``hook`` kind stays)."""
    if kind == "hook":
        raise ValueError("the core's hook handler cannot be unregistered")
    HANDLERS.pop(kind, None)
    _TIMEOUTS.pop(kind, None)


#: tasks every worker runs on a schedule (name -> (fn(crm) -> rows handled, interval in s))
PERIODIC: dict[str, tuple[Callable[[Any], int], float]] = {}


def register_periodic(name: str, fn: Callable[[Any], int], *, interval: float) -> None:
    """Make every ``crm worker`` call ``fn(crm)`` about every ``interval`` seconds (e.g. turning
    reminders that fell due into notifications). ``fn`` must be safe with several workers running
    it at once (claim its rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and write its
    effects as outbox rows in its own transaction; it returns how many rows it handled."""
    if not interval > 0:
        raise ValueError("a periodic task's interval is a positive number of seconds")
    PERIODIC[name] = (fn, float(interval))


def handlers() -> list[Handler]:
    """The registered kinds (what ``crm worker`` says it runs when it starts)."""
    return [Handler(kind, fn, _TIMEOUTS.get(kind)) for kind, fn in sorted(HANDLERS.items())]


def job_timeout(config: Config, kind: str) -> float:
    """Seconds a job of ``kind`` may run."""
    return _TIMEOUTS.get(kind) or float(config.outbox_job_timeout)


def lease_seconds(config: Config, kind: str) -> float:
    """How long a claim holds a row of ``kind``: its job timeout plus the margin (the worker's
    time to start it, and to record its outcome)."""
    return job_timeout(config, kind) + float(config.outbox_lease_margin)


def _params(fn: Callable[..., Any]) -> frozenset[str]:
    params = _PARAMS.get(fn)
    if params is None:
        try:
            params = frozenset(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            params = frozenset()
        _PARAMS[fn] = params
    return params


_local = threading.local()


def current_deadline() -> float | None:
    """The ``time.monotonic()`` by which the running job must finish (None outside a job)."""
    return getattr(_local, "deadline", None)


def time_left(default: float = 30.0, minimum: float = 0.1) -> float:
    """Seconds the running job has left: the timeout to give a network call."""
    deadline = current_deadline()
    if deadline is None:
        return default
    return max(minimum, deadline - time.monotonic())


class JobDiscarded(Exception):
    """A job that must not run any more (its plugin was disabled): recorded as discarded, not retried."""


class ParkJob(Exception):
    """A job that retrying cannot fix (a rejected recipient, bad credentials): parked at once for
    an admin to see, retry after fixing the cause, or discard."""


# --------------------------------------------------------------------------------------------
# secrets out of errors


#: functions ``(session, business_id) -> secret strings`` whose values never reach an error text
_SECRET_SOURCES: list[Callable[[Any, int], Iterable[str]]] = []


def register_secret_source(fn: Callable[[Any, int], Iterable[str]]) -> None:
    """Add a source of a business's secrets (decrypted) to redact from job errors and logs; the
    plugins' secret settings are one already. ``fn(session, business_id)`` runs in an unscoped
    session: filter by ``business_id`` yourself."""
    if fn not in _SECRET_SOURCES:
        _SECRET_SOURCES.append(fn)


def _plugin_secrets(session: Any, business_id: int, config: Config) -> list[str]:
    """Every encrypted setting of the business's plugins, decrypted, and every ``$env:`` value."""
    from cryptography.fernet import Fernet, InvalidToken

    from crmcore.plugins.models import PluginEnablement
    from crmcore.plugins.settings import ENV_PREFIX

    out: list[str] = []
    fernet = None
    for settings in session.scalars(select(PluginEnablement.settings)
                                    .where(PluginEnablement.business_id == business_id)):
        for value in (settings or {}).values():
            if isinstance(value, dict) and "$enc" in value:
                try:
                    fernet = fernet or Fernet(config.secrets_key.encode())
                    out.append(fernet.decrypt(str(value["$enc"]).encode()).decode())
                except (InvalidToken, ValueError, TypeError):
                    continue
            elif isinstance(value, str) and value.startswith(ENV_PREFIX):
                out.append(os.environ.get(value[len(ENV_PREFIX):], ""))
    return out


def _instance_secrets(crm: Crm) -> list[str]:
    url = getattr(getattr(getattr(crm, "db", None), "engine", None), "url", None)
    out = [crm.config.secret_key, crm.config.secrets_key, getattr(url, "password", None)]
    return [str(s) for s in out if s]


def business_secrets(crm: Crm, business_id: int | None) -> list[str]:
    """The secrets to keep out of a job's error: the business's (plugin settings and registered
    sources) and the installation's own keys."""
    secrets = _instance_secrets(crm)
    if business_id is not None:
        try:
            with crm.db.session(unscoped=True) as session:  # install-wide session, filtered by hand
                secrets += _plugin_secrets(session, business_id, crm.config)
                for source in _SECRET_SOURCES:
                    secrets += [str(s) for s in source(session, business_id) or () if s]
        except Exception as exc:  # never lose the outcome because the secrets could not be read
            log.warning("could not read the secrets of business %s to redact an error: %s",
                        business_id, type(exc).__name__)
    return secrets


def redact(message: str, secrets: Iterable[str]) -> str:
    """``message`` with every secret (and its URL-encoded forms) replaced by ``[redacted]``.
    Values under four characters are left: they would blank out ordinary words."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        forms.add(secret)
        with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate: no URL could carry it
            forms.update({quote(secret, safe=""), quote_plus(secret)})
    for form in sorted(forms, key=len, reverse=True):  # longest first: a secret inside another
        message = message.replace(form, REDACTED)
    return message


# --------------------------------------------------------------------------------------------
# outcomes


def backoff(attempts: int, base: float = 2.0, cap: float = 3600.0) -> float:
    """Seconds before the next try: exponential with jitter, capped.

    "Equal jitter": between half and all of ``base * 2**attempts``. Each delay is at least the
    previous one's maximum, so a failing provider is tried less and less often, while workers
    that failed together still spread out (full jitter could retry the 7th failure at once).
    """
    window = min(cap, base * (2 ** min(attempts, 64)))
    return random.uniform(window / 2, window)


@dataclass
class Outcome:
    """What became of one claimed row: recorded by :func:`record`, fenced by ``attempts``."""

    message_id: int
    attempts: int
    status: OutboxStatus
    error: str | None = None
    duration_ms: float = 0.0
    done_at: dt.datetime | None = None
    retry_at: dt.datetime | None = None


def _failure(crm: Crm, message: Any, error: str, duration_ms: float) -> Outcome:
    """A failed try: retried after the backoff, or parked once the attempts are used up."""
    if message.attempts >= message.max_attempts:
        return Outcome(message.id, message.attempts, OutboxStatus.PARKED, error, duration_ms)
    delay = backoff(message.attempts, crm.config.outbox_backoff_base, crm.config.outbox_backoff_cap)
    return Outcome(message.id, message.attempts, OutboxStatus.FAILED, error, duration_ms,
                   retry_at=utcnow() + dt.timedelta(seconds=delay))


def _error_text(crm: Crm, message: Any, exc: BaseException | str) -> str:
    raw = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return redact(raw, business_secrets(crm, message.business_id))[:MAX_ERROR_CHARS]


def execute(crm: Crm, message: Any, *, contexts: dict | None = None, deadline: float | None = None) -> Outcome:
    """Run one claimed row's handler and say what became of it. Never raises for the job's own
    failure; the error (secrets redacted) goes on the outcome."""
    started = time.perf_counter()
    if message.attempts > message.max_attempts:  # claimed again after its worker died, too often
        error = f"gave up after {message.attempts - 1} attempts: {RECLAIMED}"
        log.warning("outbox job %s (%s %s) parked: %s", message.id, message.topic, message.plugin or message.kind,
                    error)
        return Outcome(message.id, message.attempts, OutboxStatus.PARKED, error, 0.0)
    fn = HANDLERS.get(message.kind)
    error: str | None = None
    status: OutboxStatus | None = None
    _local.deadline = deadline
    try:
        if fn is None:
            raise LookupError(f"no handler for outbox jobs of kind {message.kind!r} in this process "
                              "(is the module that registers it imported? see `crm worker --import`)")
        params = _params(fn)
        kwargs: dict[str, Any] = {}
        if "contexts" in params and contexts is not None:
            kwargs["contexts"] = contexts
        if "deadline" in params:
            kwargs["deadline"] = deadline
        fn(crm, message, **kwargs)
    except JobDiscarded as exc:
        status, error = OutboxStatus.DISCARDED, _error_text(crm, message, str(exc))
    except ParkJob as exc:
        status, error = OutboxStatus.PARKED, _error_text(crm, message, str(exc))
    except Exception as exc:  # recorded on the row; never propagates into the caller's request
        error = _error_text(crm, message, exc)
    finally:
        _local.deadline = None
    duration_ms = (time.perf_counter() - started) * 1000
    if status is not None:
        log.warning("outbox job %s (%s %s) %s: %s", message.id, message.topic, message.plugin or message.kind,
                    status.value, error)
        return Outcome(message.id, message.attempts, status, error, duration_ms,
                       done_at=utcnow() if status is OutboxStatus.DISCARDED else None)
    if error is None:
        return Outcome(message.id, message.attempts, OutboxStatus.DONE, None, duration_ms, done_at=utcnow())
    log.warning("outbox job %s (%s %s) failed: %s", message.id, message.topic, message.plugin or message.kind, error)
    return _failure(crm, message, error, duration_ms)


def timed_out(crm: Crm, message: Any, timeout: float) -> Outcome:
    """The outcome of a job the worker stopped waiting for."""
    error = (f"timed out after {timeout:g} s: the worker stopped waiting for it (the handler may "
             "still finish in the background; a retry must not send twice)")
    log.warning("outbox job %s (%s %s) %s", message.id, message.topic, message.plugin or message.kind, error)
    return _failure(crm, message, error, timeout * 1000)


# --------------------------------------------------------------------------------------------
# claim, record, release, prune


def _lease_end(crm: Crm, now: dt.datetime) -> Any:
    """The lease end of a claimed row, by its kind (an email's timeout is not a hook's): one
    ``CASE kind WHEN ...`` over the handlers with their own timeout."""
    column_type = _outbox.c.locked_until.type

    def until(kind: str) -> Any:
        return literal(now + dt.timedelta(seconds=lease_seconds(crm.config, kind)), column_type)

    default = until("")
    own = {kind: until(kind) for kind, timeout in sorted(_TIMEOUTS.items()) if timeout}
    return case(own, value=_outbox.c.kind, else_=default) if own else default


def _claim_values(crm: Crm, now: dt.datetime) -> dict[str, Any]:
    until = _lease_end(crm, now)
    return {
        "status": OutboxStatus.RUNNING.value,
        "locked_until": until,
        "next_attempt_at": until,  # a running row is due again only when its lease ends
        "attempts": _outbox.c.attempts + 1,
        # SET sees the row as it was: a row that was running already lost its worker
        "last_error": case((_outbox.c.status == OutboxStatus.RUNNING.value, RECLAIMED), else_=_outbox.c.last_error),
        "updated_at": now,
    }


_COLUMNS = tuple(c.key for c in _outbox.c)


class Job:
    """A claimed outbox row as a handler receives it: every column of :class:`OutboxMessage` as
    an attribute, in a plain object (building ORM instances cost a third of a no-op job)."""

    __slots__ = _COLUMNS

    def __init__(self, row: Any) -> None:
        for name, value in zip(_COLUMNS, row, strict=True):
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"<outbox job {self.id} {self.kind} {self.topic} attempt {self.attempts}>"


def _messages(rows: Iterable[Any]) -> list[Job]:
    return [Job(row) for row in rows]


def claim_ids(crm: Crm, message_ids: list[int]) -> list[Job]:
    """Claim the given rows if they are pending or failed (the inline path, right after commit):
    ONE conditional ``UPDATE ... RETURNING``, so a row is claimed by exactly one runner."""
    claimable = [OutboxStatus.PENDING.value, OutboxStatus.FAILED.value]
    with crm.db.transaction(unscoped=True) as session:
        rows = session.connection().execute(
            update(_outbox)
            .where(_outbox.c.id.in_(message_ids), _outbox.c.status.in_(claimable))
            .values(_claim_values(crm, utcnow()))
            .returning(*_outbox.c)
        )
        return sorted(_messages(rows), key=lambda m: m.id)


def claim_due(crm: Crm, limit: int) -> list[Job]:
    """Claim up to ``limit`` due rows, oldest due first: pending and failed rows whose time has
    come, and running rows whose lease ran out (their worker died).

    PostgreSQL: ``UPDATE ... WHERE id IN (SELECT id ... ORDER BY next_attempt_at LIMIT n FOR
    UPDATE SKIP LOCKED) RETURNING``: concurrent workers skip each other's rows instead of waiting
    for them. SQLite: the same statement without the row lock; the write transaction
    (``BEGIN IMMEDIATE``) serialises claims, and one worker runs at a time anyway.
    """
    now = utcnow()
    due = (select(_due.c.id)
           .where(_DUE_SQL, _due.c.next_attempt_at <= now)
           .order_by(_due.c.next_attempt_at)
           .limit(limit))
    if crm.db.dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    with crm.db.transaction(unscoped=True) as session:
        rows = session.connection().execute(
            update(_outbox).where(_outbox.c.id.in_(due.scalar_subquery()))
            .values(_claim_values(crm, now)).returning(*_outbox.c)
        )
        return sorted(_messages(rows), key=lambda m: m.id)


# every outcome in one executemany; columns an outcome does not set keep their value. The
# ``attempts`` fence: only the claim that is still current may record.
_RECORD = (
    update(_outbox)
    .where(_outbox.c.id == bindparam("message_id"), _outbox.c.status == OutboxStatus.RUNNING.value,
           _outbox.c.attempts == bindparam("claimed_attempts"))
    .values(status=bindparam("new_status"), locked_until=None, last_duration_ms=bindparam("duration_ms"),
            last_error=bindparam("error"),
            done_at=func.coalesce(bindparam("done", type_=_outbox.c.done_at.type), _outbox.c.done_at),
            # a retry's due time; otherwise the lease end written by the claim goes
            next_attempt_at=func.coalesce(bindparam("retry_at", type_=_outbox.c.next_attempt_at.type),
                                          bindparam("now2", type_=_outbox.c.next_attempt_at.type)),
            updated_at=bindparam("now", type_=_outbox.c.updated_at.type))
)


# PostgreSQL: the same as one statement over arrays (one plan, one round trip; constant text,
# so the driver prepares it once)
_RECORD_PG = text("""
UPDATE outbox SET status = v.status, locked_until = NULL, last_duration_ms = v.ms, last_error = v.error,
       done_at = COALESCE(v.done_at, outbox.done_at), next_attempt_at = COALESCE(v.retry_at, :now),
       updated_at = :now
FROM unnest(CAST(:ids AS BIGINT[]), CAST(:attempts AS INTEGER[]), CAST(:statuses AS VARCHAR[]),
            CAST(:ms AS DOUBLE PRECISION[]), CAST(:errors AS TEXT[]), CAST(:done AS TIMESTAMPTZ[]),
            CAST(:retry AS TIMESTAMPTZ[])) AS v(id, attempts, status, ms, error, done_at, retry_at)
WHERE outbox.id = v.id AND outbox.status = 'running' AND outbox.attempts = v.attempts
""")


def record(crm: Crm, outcomes: list[Outcome]) -> None:
    """Write the outcomes of claimed rows in one transaction: one executemany (SQLite), one
    ``UPDATE ... FROM unnest(...)`` (PostgreSQL)."""
    if not outcomes:
        return
    now = utcnow()
    with crm.db.transaction(unscoped=True) as session:  # install-wide: rows are named by id
        if crm.db.dialect == "postgresql":
            session.connection().execute(_RECORD_PG, {
                "now": now, "ids": [o.message_id for o in outcomes], "attempts": [o.attempts for o in outcomes],
                "statuses": [o.status.value for o in outcomes], "ms": [o.duration_ms for o in outcomes],
                "errors": [o.error for o in outcomes], "done": [o.done_at for o in outcomes],
                "retry": [o.retry_at for o in outcomes]})
            return
        session.connection().execute(_RECORD, [
            {"message_id": o.message_id, "claimed_attempts": o.attempts, "new_status": o.status.value,
             "duration_ms": o.duration_ms, "error": o.error, "done": o.done_at, "retry_at": o.retry_at,
             "now": now, "now2": now} for o in outcomes])


_RELEASE = (
    update(_outbox)
    .where(_outbox.c.id == bindparam("message_id"), _outbox.c.status == OutboxStatus.RUNNING.value,
           _outbox.c.attempts == bindparam("claimed_attempts"))
    .values(status=case((_outbox.c.last_error.is_(None), OutboxStatus.PENDING.value),
                        else_=OutboxStatus.FAILED.value),
            attempts=_outbox.c.attempts - 1, locked_until=None,
            next_attempt_at=bindparam("now", type_=_outbox.c.next_attempt_at.type),
            updated_at=bindparam("now2", type_=_outbox.c.updated_at.type))
)


def release(crm: Crm, messages: list[Any]) -> None:
    """Hand claimed rows that were never started back (due now, the attempt not counted): a
    stopping worker, or a batch whose lease would run out before the next job could finish."""
    if not messages:
        return
    now = utcnow()
    with crm.db.transaction(unscoped=True) as session:
        session.connection().execute(_RELEASE, [
            {"message_id": m.id, "claimed_attempts": m.attempts, "now": now, "now2": now} for m in messages])


def prune(crm: Crm, *, older_than: float | None = None, batch: int | None = None,
          budget: float = 1.0) -> int:
    """Delete done and discarded rows finished more than ``older_than`` seconds ago (default:
    ``outbox_retention``), ``batch`` rows per statement (default ``outbox_prune_batch``), for at
    most ``budget`` seconds, so pruning never holds up the jobs. Returns how many went."""
    older_than = crm.config.outbox_retention if older_than is None else older_than
    batch = batch or crm.config.outbox_prune_batch
    cutoff = utcnow() - dt.timedelta(seconds=older_than)
    victims = (select(_gone.c.id)
               .where(_GONE_SQL, _gone.c.done_at < cutoff)
               .order_by(_gone.c.done_at)
               .limit(batch))
    if crm.db.dialect == "postgresql":
        victims = victims.with_for_update(skip_locked=True)
    stmt = delete(_outbox).where(_outbox.c.id.in_(victims.scalar_subquery()))
    total = 0
    stop_at = time.monotonic() + budget
    while True:
        with crm.db.transaction(unscoped=True) as session:
            deleted = session.connection().execute(stmt).rowcount or 0
        total += deleted
        if deleted < batch or time.monotonic() >= stop_at:
            return total


def vacuum(crm: Crm) -> bool:
    """PostgreSQL: ``VACUUM (SKIP_LOCKED) outbox`` so that the space of pruned rows is reused
    (every job leaves three dead row versions: claimed, recorded, deleted), whether or not
    autovacuum is on and keeps up. Skipped when another worker's VACUUM runs. True when run."""
    if crm.db.dialect != "postgresql":
        return False
    with crm.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (SKIP_LOCKED) outbox")
    return True


# --------------------------------------------------------------------------------------------
# the inline path


def run_messages(crm: Crm, message_ids: list[int]) -> dict[int, str]:
    """Claim, run and record a batch of outbox rows in this thread: one claim transaction, each
    job in its own transaction, one transaction recording every outcome. Returns ``{id:
    status}``; a row that another runner already claimed (or finished) is ``"skipped"``.

    Used right after commit when ``outbox_inline`` is on, and by tests. Handlers get their
    deadline but are not abandoned here (that takes the worker's threads)."""
    if not message_ids:
        return {}
    messages = claim_ids(crm, message_ids)
    outcomes_by_id = {message_id: "skipped" for message_id in message_ids}
    outcomes: list[Outcome] = []
    contexts: dict[tuple[int, int | None], Any] = {}
    try:
        for message in messages:
            deadline = time.monotonic() + job_timeout(crm.config, message.kind)
            outcomes.append(execute(crm, message, contexts=contexts, deadline=deadline))
    finally:
        for ctx in contexts.values():
            ctx.close()
    for outcome in outcomes:
        outcomes_by_id[outcome.message_id] = outcome.status.value
    record(crm, outcomes)
    return outcomes_by_id


def run_message(crm: Crm, message_id: int) -> str:
    """Claim, run and record one outbox row. Returns its new status. Never raises for a job's
    own failure: the outcome is recorded on the row."""
    return run_messages(crm, [message_id])[message_id]


_wakers: weakref.WeakSet[threading.Event] = weakref.WeakSet()


def notify_workers() -> None:
    """Wake the workers running in this process (``crm serve --with-worker``, ``crm demo``): a
    commit queued rows. Workers elsewhere find them at their next poll."""
    for event in list(_wakers):
        event.set()


def waker() -> threading.Event:
    """An event :func:`notify_workers` sets: what an in-process worker sleeps on between polls."""
    event = threading.Event()
    _wakers.add(event)
    return event


# --------------------------------------------------------------------------------------------
# the core's handler: plugins' react-hooks


def run_hook_message(crm: Crm, message: Job, contexts: dict | None = None) -> None:
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


def _context_for(crm: Crm, message: Job, contexts: dict) -> Any:
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


register_handler("hook", run_hook_message)

__all__ = ["CLAIMABLE", "HANDLERS", "JobDiscarded", "Outcome", "ParkJob", "backoff", "claim_due", "claim_ids",
           "current_deadline", "enqueue", "enqueue_hook", "execute", "notify_workers", "prune", "record",
           "redact", "register_handler", "register_secret_source", "release", "run_message", "run_messages",
           "time_left", "unregister_handler"]
