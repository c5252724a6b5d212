"""The per-business configuration cache.

Most writes read some of their business's configuration: the default prospect status, the
numbering rule of a target, the custom field definitions, the stages of a pipeline, who is a
member. Admins change these rarely, and reading them costs a statement each time (0.3-0.5 ms of
ORM work, more than the database's own). So they are cached per process, per database and per
business, keyed by ``Business.config_version`` -- the pattern plugin enablement already uses
(``Business.plugins_version``, :func:`crmcore.plugins.service.hooks_for`):

* a flush that writes a row of a *config model* (:data:`CONFIG_MODELS`: list options, numbering
  rules, field definitions, pipelines, stages, memberships, and what a plugin registers with
  :func:`register_config_model`) bumps its business's ``config_version`` in the same transaction
  (``before_flush``); so does an INSERT, UPDATE or DELETE statement on one of their tables run
  through the session (``do_orm_execute``). Nothing has to remember to invalidate. A statement
  run on a raw connection is not seen: call :func:`config_changed` beside it;
* :func:`read_versions` reads both versions in one Core statement once per transaction, so a
  change committed by any process (another gunicorn worker) or any other open context is seen by
  the next transaction everywhere;
* a transaction that changed the configuration itself reads it uncached, from its own
  uncommitted rows, and never stores what it read (a rollback must not leave it in the cache).

Cached values are immutable snapshots (frozen dataclasses, tuples, frozensets), never ORM
objects: one entry is shared by every context and thread of the process.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import bindparam, event, select, update

from crmcore.db import CrmSession
from crmcore.errors import NotFound
from crmcore.tenancy.models import Business, Membership

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.db import Database

T = TypeVar("T")

#: mapped classes whose rows are business configuration (completed lazily, see _models)
CONFIG_MODELS: set[type] = {Membership}
_tables: dict[str, frozenset[str]] = {}
_ALL = "*"  # marker: an unscoped statement changed the configuration of every business

_businesses = Business.__table__
#: ``crm_begins`` marks it as a statement that may open the transaction in its own message on
#: PostgreSQL (crmcore.db): small, and the first of every use case
_READ_VERSIONS = select(_businesses.c.plugins_version, _businesses.c.config_version).where(
    _businesses.c.id == bindparam("business_id")).execution_options(crm_begins=True)


def register_config_model(cls: type) -> type:
    """Make changes to ``cls``'s rows invalidate the configuration cache of their business (a
    plugin whose cached lookups read its own tables). Usable as a class decorator."""
    CONFIG_MODELS.add(cls)
    _tables.clear()
    return cls


def _models() -> tuple[type, ...]:
    if not _tables:
        from crmcore.fields.models import FieldDefinition
        from crmcore.lists.models import ChoiceOption
        from crmcore.numbering.models import NumberingRule
        from crmcore.pipelines.models import Pipeline, Stage

        CONFIG_MODELS.update((ChoiceOption, NumberingRule, FieldDefinition, Pipeline, Stage))
        _tables["names"] = frozenset(cls.__table__.name for cls in CONFIG_MODELS)
    return tuple(CONFIG_MODELS)


def _table_names() -> frozenset[str]:
    _models()
    return _tables["names"]


# --------------------------------------------------------------------------------------------
# invalidation


def config_changed(session: CrmSession, business_ids: set[Any] | None = None) -> None:
    """Bump ``config_version`` of these businesses (default: the session's; an unscoped session:
    every business) in the session's transaction, once per transaction and business."""
    if business_ids is None:
        scope = session.info.get("business_id")
        business_ids = {scope if scope is not None else _ALL}
    connection = session.connection()
    tx = session.get_transaction()
    marked = session.info.get("crm_config_tx")
    if marked is None or marked[0] is not tx:
        marked = (tx, set(), set())  # (transaction, businesses changed, businesses bumped)
        session.info["crm_config_tx"] = marked
    marked[1].update(business_ids)
    todo = set(business_ids) - marked[2]
    if todo:
        stmt = update(_businesses).values(config_version=_businesses.c.config_version + 1)
        if _ALL not in todo:
            stmt = stmt.where(_businesses.c.id.in_(sorted(todo)))
        connection.execute(stmt)
        marked[2].update(todo)
    session.info["crm_config_local"] = None  # this transaction's own reads start again


@event.listens_for(CrmSession, "after_soft_rollback")
def _on_rollback(session: CrmSession, _previous: Any) -> None:
    # a rolled-back savepoint may have taken a bump with it: the next change bumps again (the
    # transaction stays marked as a changer, so it keeps reading uncached)
    marked = session.info.get("crm_config_tx")
    if marked is not None:
        marked[2].clear()


def _changed_in_this_transaction(session: CrmSession, business_id: int) -> bool:
    marked = session.info.get("crm_config_tx")
    return (marked is not None and marked[0] is session.get_transaction()
            and (business_id in marked[1] or _ALL in marked[1]))


@event.listens_for(CrmSession, "before_flush")
def _on_flush(session: CrmSession, _flush_context: Any, _instances: Any) -> None:
    models = _models()
    scope = session.info.get("business_id")
    touched = {getattr(obj, "business_id", None) or scope
               for obj in itertools.chain(session.new, session.dirty, session.deleted)
               if isinstance(obj, models)}
    touched.discard(None)
    if touched:
        config_changed(session, touched)


@event.listens_for(CrmSession, "do_orm_execute")
def _on_statement(state: Any) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in _table_names():
        config_changed(state.session)


def _pending_change(session: CrmSession) -> bool:
    """True while the session holds config rows it has not flushed yet."""
    models = _models()
    return any(isinstance(obj, models) for obj in itertools.chain(session.new, session.dirty, session.deleted))


# --------------------------------------------------------------------------------------------
# reading


def read_versions(ctx: Context) -> None:
    """Read the business's ``plugins_version`` and ``config_version`` into ``ctx.business``, once
    per transaction of ``ctx.session`` (a use case's, or the read transaction that code outside
    use cases opens and the next use case ends). One Core statement: businesses is install-wide
    (no tenant scope to apply) and this runs in every use case."""
    session = ctx.session
    tx = session.get_transaction()
    if tx is not None and ctx._versions_read_in is tx:
        return
    row = session.connection().execute(_READ_VERSIONS, {"business_id": ctx.business_id}).first()
    if row is None:
        raise NotFound(f"business {ctx.business_id} no longer exists")
    ctx.business.plugins_version, ctx.business.config_version = row
    ctx._versions_read_in = session.get_transaction()


class BusinessConfig:
    """The cached configuration of one business at one ``config_version``: named parts, each
    loaded on first use by its feature's loader."""

    __slots__ = ("_parts", "version")

    def __init__(self, version: int | None) -> None:
        self.version = version
        self._parts: dict[str, Any] = {}

    def part(self, ctx: Context, name: str, loader: Callable[[Context], T]) -> T:
        try:
            return self._parts[name]
        except KeyError:
            pass
        # two threads may load the same part at once: both read the same version's rows
        return self._parts.setdefault(name, loader(ctx))


_caches: weakref.WeakKeyDictionary[Database, dict[int, BusinessConfig]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _cache(db: Database) -> dict[int, BusinessConfig]:
    cache = _caches.get(db)
    if cache is None:
        with _lock:
            cache = _caches.setdefault(db, {})
    return cache


def business_config(ctx: Context) -> BusinessConfig:
    """ctx's business's configuration as of this transaction."""
    session = ctx.session
    if _pending_change(session):
        session.flush()  # bumps the version and marks this transaction as a changer
    read_versions(ctx)
    if _changed_in_this_transaction(session, ctx.business_id):
        tx = session.get_transaction()
        local = session.info.get("crm_config_local")
        if local is None or local[0] is not tx:
            local = (tx, BusinessConfig(None))
            session.info["crm_config_local"] = local
        return local[1]
    version = ctx.business.config_version
    cache = _cache(ctx.crm.db)
    found = cache.get(ctx.business_id)
    if found is not None and found.version == version:
        return found
    fresh = BusinessConfig(version)
    with _lock:
        current = cache.get(ctx.business_id)
        if current is None or (current.version or 0) < version:
            cache[ctx.business_id] = fresh
    return fresh


def cached(ctx: Context, name: str, loader: Callable[[Context], T]) -> T:
    """The part ``name`` of ctx's business's configuration, loaded by ``loader(ctx)`` (which
    must return an immutable snapshot) when this version does not have it yet."""
    return business_config(ctx).part(ctx, name, loader)


def member_ids(ctx: Context) -> frozenset[int]:
    """Ids of the users who are members of ctx's business (any role)."""
    return cached(ctx, "members", _load_member_ids)


def _load_member_ids(ctx: Context) -> frozenset[int]:
    return frozenset(ctx.session.scalars(select(Membership.user_id)))


__all__ = ["CONFIG_MODELS", "BusinessConfig", "business_config", "cached", "config_changed", "member_ids",
           "read_versions", "register_config_model"]
