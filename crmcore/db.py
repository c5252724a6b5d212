"""Database plumbing: the declarative base, engines and the mandatory tenant scope.

Tenancy is enforced HERE, once, for every model, rather than by each query:

* any mapped class whose table has a ``business_id`` column is *tenant-owned*; nothing has to
  opt in, so a new model cannot forget it;
* every ORM statement run through a :class:`CrmSession` gets ``business_id = :scope`` added for
  every tenant-owned entity it touches (``with_loader_criteria``; this covers joins, relationship
  loads, ``Session.get`` and ORM-enabled UPDATE/DELETE);
* a statement touching a tenant-owned entity in a session without a scope raises
  :class:`~crmcore.errors.ScopeError` (deny by default); only code that says so explicitly
  (``unscoped=True``: migrations, the CLI's install-wide listings, the outbox claimer) runs unscoped;
* on flush, a new tenant-owned row gets the session's business, and a row of another business
  raises.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    sessionmaker,
    with_loader_criteria,
)
from sqlalchemy.types import TypeDecorator

from crmcore import journal
from crmcore.errors import ScopeError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Primary keys: BIGINT on PostgreSQL (a million parties times their children outgrows
#: nothing, but ids are forever), INTEGER on SQLite so it stays the rowid alias.
BigId = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")
#: JSON stored as JSONB on PostgreSQL (indexable with GIN), JSON text on SQLite.
JsonDoc = JSON().with_variant(postgresql.JSONB(), "postgresql")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both databases (SQLite keeps no zone itself)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of the core. Plugins use their own ``MetaData`` (see docs/plugins.md)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UtcDateTime(), dict[str, Any]: JsonDoc}


class IdMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def json_default(value: Any) -> Any:
    """JSON encoder for stored documents: Decimal as string (never float), dates as ISO."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    return json.dumps(value, default=json_default, separators=(",", ":"), sort_keys=True)


# --------------------------------------------------------------------------------------------
# engines


def make_engine(url: str, *, echo: bool = False, **kwargs: Any) -> Engine:
    """Create an engine with the settings the core relies on.

    SQLite: WAL journal, a busy timeout, foreign keys on, and transactions begun by us so that
    a writing use case takes ``BEGIN IMMEDIATE`` (it waits for the write lock up front instead
    of failing with SQLITE_BUSY when it upgrades a read lock later).
    """
    is_sqlite = url.startswith("sqlite")
    if is_sqlite:
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
    engine = create_engine(url, echo=echo, json_serializer=dumps, **kwargs)
    if is_sqlite:
        _setup_sqlite(engine)
    elif engine.dialect.name == "postgresql":
        _setup_postgresql(engine)
    return engine


def _setup_postgresql(engine: Engine) -> None:
    """Connection settings for an OLTP workload, and transactions begun without a round trip.

    No parallel query: a list page's deep keyset page was planned as a Gather Merge over two
    workers, whose start-up (~25 ms) cost more than the whole 50-row scan (~4 ms); under
    concurrent requests extra workers only compete for the same cores. Set once per connection.

    ``BEGIN``: psycopg sends it as a message of its own, and waits for the answer, before a
    transaction's first statement; a create was 8 round trips of which this was one, and every
    use case paid it. As on SQLite, we begin transactions ourselves: the driver connection is in
    autocommit mode (psycopg sends no ``BEGIN``; its commit and rollback still end a transaction
    the server has open). A first statement marked ``crm_begins`` (the business's versions,
    which every use case reads first) goes as ``BEGIN; <statement>`` in one simple-protocol
    message, its parameters bound by psycopg's own client-side quoting
    (``ClientCursor.mogrify``); any other first statement gets a ``BEGIN`` of its own as before.
    Only small statements are worth it: a statement sent this way is planned on every call,
    where psycopg prepares a repeated one after its fifth run (fusing a record load, measured,
    cost more planning than the round trip saved). A connection SQLAlchemy runs with
    ``isolation_level="AUTOCOMMIT"`` (``VACUUM``) is left alone.
    """
    import psycopg

    idle = psycopg.pq.TransactionStatus.IDLE

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.autocommit = True
        dbapi_conn.execute("SET max_parallel_workers_per_gather = 0")

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        # SQLAlchemy turns driver autocommit off when it resets a connection that ran with
        # isolation_level="AUTOCOMMIT"
        if not dbapi_conn.autocommit and dbapi_conn.info.transaction_status == idle:
            dbapi_conn.autocommit = True

    def _begins(cursor: Any, context: Any) -> bool:
        dbapi_conn = cursor.connection
        return (dbapi_conn.autocommit and dbapi_conn.info.transaction_status == idle
                and context.execution_options.get("isolation_level") != "AUTOCOMMIT")

    def _execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        if not _begins(cursor, context):
            return False
        if type(cursor) is not psycopg.Cursor or not context.execution_options.get("crm_begins"):
            cursor.connection.execute("BEGIN")
            return False
        if parameters is not None:
            statement = psycopg.ClientCursor(cursor.connection).mogrify(statement, parameters)
        cursor.execute("BEGIN;" + statement)
        cursor.nextset()
        return True

    @event.listens_for(engine, "do_execute")
    def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        return _execute(cursor, statement, parameters, context)

    @event.listens_for(engine, "do_execute_no_params")
    def _do_execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
        return _execute(cursor, statement, None, context)

    @event.listens_for(engine, "do_executemany")
    def _do_executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        if _begins(cursor, context):
            cursor.connection.execute("BEGIN")
        return False


#: SQLite reads the database through a memory map of up to this size (SQLite's own ceiling is
#: 2 GiB): pages come from the OS page cache without a read() each. Counting a filtered list of a
#: million parties visits ~7,000 scattered rows; with the default 2 MB page cache and no map it
#: took 46 ms, with the map 26 ms (docs/performance.md).
SQLITE_MMAP_BYTES = 2 * 1024**3
#: the per-connection page cache in KiB (SQLite's default is 2,000)
SQLITE_CACHE_KIB = 32 * 1024


def _setup_sqlite(engine: Engine) -> None:
    memory = engine.url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, see _on_begin
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("crm_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# --------------------------------------------------------------------------------------------
# the tenant scope


def tenant_classes() -> list[type]:
    """Every mapped class (core and plugins) whose table carries ``business_id``."""
    out = []
    for registry in _registries():
        for mapper in registry.mappers:
            if "business_id" in mapper.columns and not mapper.inherits:
                out.append(mapper.class_)
    return out


_extra_registries: list[Any] = []


def register_model_base(base: type[DeclarativeBase]) -> None:
    """Make a plugin's declarative base subject to the tenant scope (done by the loader)."""
    if base.registry not in _extra_registries:
        _extra_registries.append(base.registry)
        _scope_cache.clear()


def _registries() -> list[Any]:
    return [Base.registry, *_extra_registries]


_scope_cache: dict[str, Any] = {}


def _tenant_mapper_set() -> frozenset[Any]:
    cached = _scope_cache.get("mappers")
    if cached is None:
        cached = frozenset(c.__mapper__ for c in tenant_classes())
        _scope_cache["mappers"] = cached
    return cached


class CrmSession(Session):
    """A session bound to at most one business.

    ``info["business_id"]`` is the scope; ``info["unscoped"]`` marks an explicit install-wide
    session. Create one with :func:`scoped_session` or :meth:`Database.session`.
    """

    @property
    def business_id(self) -> int | None:
        return self.info.get("business_id")

    def begin_nested(self) -> Any:
        """A savepoint; rows queued for commit (:mod:`crmcore.journal`) are written first, so
        that rolling back to the savepoint cannot take them along."""
        journal.write(self)
        return super().begin_nested()


journal.install(CrmSession)


@event.listens_for(CrmSession, "do_orm_execute")
def _apply_scope(state: Any) -> None:
    session = state.session
    if session.info.get("unscoped"):
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    tenant = _tenant_mapper_set()
    touched = [m for m in state.all_mappers if m in tenant]
    if not touched and state.is_select:
        # ``select(func.count()).select_from(Party)`` names its entity only in FROM
        touched = _from_mappers(state.statement, tenant, first=session.info.get("business_id") is not None)
    if not touched and not state.is_relationship_load:
        return
    business_id = session.info.get("business_id")
    if business_id is None:
        if touched:
            names = ", ".join(sorted(m.class_.__name__ for m in touched))
            raise ScopeError(f"query on tenant-owned {names} outside a business scope")
        return
    state.statement = state.statement.options(*_scope_options(business_id))


def _scope_options(business_id: int) -> tuple[Any, ...]:
    """The loader-criteria options of one business, built once (profiling showed rebuilding one
    option per tenant class on every statement cost ~40% of a simple write use case)."""
    per_business = _scope_cache.setdefault("options", {})
    options = per_business.get(business_id)
    if options is None:
        if len(per_business) > 4096:
            per_business.clear()
        options = tuple(
            with_loader_criteria(cls, _criteria(business_id), include_aliases=True, propagate_to_loaders=True)
            for cls in _scoped_classes()
        )
        per_business[business_id] = options
    return options


def _from_mappers(statement: Any, tenant: frozenset[Any], *, first: bool = False) -> list[Any]:
    """Mappers of the ORM entities anywhere in a statement whose top level names none:
    ``select(func.count()).select_from(Party)``, a count over a subquery of a page query, a CTE,
    a scalar subquery. Walks the expression tree (only for these statements: an ordinary ORM
    select names its entities at the top and never gets here); ``first`` stops at the first
    tenant mapper (enough to know the scope applies)."""
    from sqlalchemy.sql.visitors import iterate

    out = []
    seen: set[int] = set()
    for element in iterate(statement):
        mapper = getattr(element, "_annotations", {}).get("parententity")
        if mapper is not None and mapper in tenant and id(mapper) not in seen:
            seen.add(id(mapper))
            out.append(mapper)
            if first:
                break
    return out


def _scoped_classes() -> list[type]:
    cached = _scope_cache.get("classes")
    if cached is None:
        cached = tenant_classes()
        _scope_cache["classes"] = cached
    return cached


def _criteria(business_id: int) -> Any:
    return lambda cls: cls.business_id == business_id


@event.listens_for(CrmSession, "before_flush")
def _stamp_business(session: Session, _ctx: Any, _instances: Any) -> None:
    if session.info.get("unscoped"):
        return
    business_id = session.info.get("business_id")
    tenant = _tenant_mapper_set()
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        mapper = type(obj).__mapper__
        base_mapper = mapper.base_mapper
        if base_mapper not in tenant:
            continue
        if business_id is None:
            raise ScopeError(f"write of tenant-owned {type(obj).__name__} outside a business scope")
        current = getattr(obj, "business_id", None)
        if current is None and obj in session.new:
            obj.business_id = business_id
        elif current != business_id:
            raise ScopeError(
                f"{type(obj).__name__} of business {current} written in the scope of business {business_id}"
            )


class Database:
    """An engine plus the session factory bound to it."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._factory = sessionmaker(bind=self.engine, class_=CrmSession, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self, business_id: int | None = None, *, unscoped: bool = False) -> CrmSession:
        return self._factory(info={"business_id": business_id, "unscoped": unscoped})

    @contextmanager
    def transaction(self, business_id: int | None = None, *, unscoped: bool = False,
                    write: bool = True) -> Iterator[CrmSession]:
        """One unit of work: commit on success, roll back on any exception."""
        session = self.session(business_id, unscoped=unscoped)
        try:
            begin_write(session, write)
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def create_all(self) -> None:
        """Create the core schema directly (tests); installations use ``crm db upgrade``."""
        import_models()
        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


def begin_write(session: Session, write: bool = True) -> None:
    """Start the session's transaction, as a write transaction (SQLite: BEGIN IMMEDIATE) if asked."""
    if session.in_transaction():
        return
    session.connection(execution_options={"crm_write": write})


def import_models() -> None:
    """Import every core model module so that ``Base.metadata`` is complete."""
    from crmcore import models  # noqa: F401


def core_column(ref: str) -> Any:
    """The core's column ``"table.column"`` (e.g. ``"businesses.id"``) for a plugin's ``ForeignKey``.

    A plugin's models live in their own ``MetaData``, which cannot resolve a core table by name;
    ``ForeignKey(core_column("businesses.id"), ondelete="CASCADE")`` points at the column itself.
    """
    import_models()
    table_name, _, column_name = ref.partition(".")
    table = Base.metadata.tables.get(table_name)
    if table is None or column_name not in table.c:
        raise LookupError(f"the core has no column {ref!r}")
    return table.c[column_name]
