"""Append-only rows written at commit, in one statement.

Every write use case appends an audit entry and a timeline event, and a stage change queues one
outbox job per plugin: INSERTs whose results nothing in the transaction reads. Written as they
came, each was one round trip to the database, and on PostgreSQL the round trips of a write are
most of its time (a create was 8: ``BEGIN``, 6 statements, ``COMMIT``). Appended here instead,
they are written when the session commits, all of them in one statement: on PostgreSQL one
``INSERT`` per table joined as data-modifying CTEs, on SQLite (no round trips to save, no DML in
``WITH``) one multi-row ``INSERT`` per table. At most :data:`CHUNK` rows of a table go in one
statement.

What stays true:

* **Read your writes.** Any ORM statement on the session (``session.execute``, ``scalars``,
  ``get``, a relationship load, an ORM ``DELETE``) writes the queue first, so a query later in
  the same transaction sees the rows; so does :meth:`CrmSession.begin_nested`, so rows appended
  before a savepoint survive the savepoint's rollback. Rows appended inside a savepoint are
  written at once (they must go with the savepoint).
* **All or nothing.** The rows are part of the transaction: a rollback drops the queue.
* **Order.** Rows keep the order they were appended in, per table.

Only Core ``INSERT`` rows with an explicit ``business_id`` belong here (they bypass the tenant
scope like any Core statement); a caller that needs a row's id at once writes it itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Table, bindparam, event, insert
from sqlalchemy.orm import Session

#: ``session.info`` key of the queue: a list of :class:`_Rows`
_KEY = "crm_journal"


class _Rows:
    """Rows of one table appended by one call, and what wants their new ids."""

    __slots__ = ("on_ids", "rows", "table")

    def __init__(self, table: Table, rows: list[dict[str, Any]], on_ids: Callable[[list[int]], None] | None) -> None:
        self.table = table
        self.rows = rows
        self.on_ids = on_ids


def append(session: Session, table: Table, rows: list[Mapping[str, Any]], *,
           on_ids: Callable[[list[int]], None] | None = None) -> None:
    """Write ``rows`` into ``table`` when ``session`` commits (or before its next ORM statement).

    ``on_ids`` receives the new rows' primary keys once written (in no promised order). Every
    row of one call must have the same keys.
    """
    if not rows:
        return
    batch = _Rows(table, [dict(r) for r in rows], on_ids)
    if not session.in_transaction():
        session.connection()  # the rows belong to a transaction: begin it as a write would
    if session.in_nested_transaction():
        _write(session, [batch])
        return
    session.info.setdefault(_KEY, []).append(batch)


def pending(session: Session) -> int:
    """How many rows wait to be written (tests, diagnostics)."""
    return sum(len(b.rows) for b in session.info.get(_KEY, ()))


def write(session: Session) -> None:
    """Write what is queued now (the session's events call this; code rarely needs to)."""
    queued = session.info.get(_KEY)
    if not queued:
        return
    session.info[_KEY] = []
    _write(session, queued)


def discard(session: Session) -> None:
    session.info.pop(_KEY, None)


#: rows of one table per statement: bounds a statement's parameters (PostgreSQL takes 65,535,
#: SQLite 32,766) and the number of statement shapes compiled and cached
CHUNK = 100

Group = tuple[Table, list[dict[str, Any]], list[Callable[[list[int]], None]]]


def _write(session: Session, batches: list[_Rows]) -> None:
    conn = session.connection()
    groups = _by_table(batches)
    if conn.dialect.name == "postgresql":
        rounds = _rounds(groups)
    else:  # no DML in WITH: one statement per table
        rounds = [[group] for group in groups]
    for statement_groups in rounds:
        _execute(conn, statement_groups)


def _by_table(batches: list[_Rows]) -> list[Group]:
    """One group per table and key set, in the order of first appearance, cut into groups of at
    most :data:`CHUNK` rows."""
    groups: dict[tuple[str, tuple[str, ...]], list[Group]] = {}
    for batch in batches:
        chunks = groups.setdefault((batch.table.fullname, tuple(batch.rows[0])), [])
        for row in batch.rows:
            if not chunks or len(chunks[-1][1]) >= CHUNK:
                chunks.append((batch.table, [], []))
            chunks[-1][1].append(row)
            if batch.on_ids is not None and batch.on_ids not in chunks[-1][2]:
                chunks[-1][2].append(batch.on_ids)
    return [group for chunks in groups.values() for group in chunks]


def _rounds(groups: list[Group]) -> list[list[Group]]:
    """Groups put into as few statements as keep the promises: one group per table in a statement
    (PostgreSQL runs the CTEs of one statement in no set order, and a table's rows must keep
    theirs) and one group whose ids are wanted (only the main statement's ``RETURNING`` is
    returned)."""
    rounds: list[list[Group]] = []
    after: dict[str, int] = {}
    for group in groups:
        at = after.get(group[0].fullname, -1) + 1
        while at < len(rounds) and group[2] and any(g[2] for g in rounds[at]):
            at += 1
        if at == len(rounds):
            rounds.append([])
        rounds[at].append(group)
        after[group[0].fullname] = at
    return rounds


def _execute(conn: Any, groups: list[Group]) -> None:
    """One statement for ``groups``: a multi-row ``INSERT``, on PostgreSQL the others joined as
    data-modifying CTEs (``WITH j0 AS (INSERT ...), j1 AS (INSERT ...) INSERT ...``; PostgreSQL
    runs every one to completion whether or not the main statement reads it). The group whose ids
    are wanted is the main statement: its ``RETURNING`` is what the statement returns."""
    wanting = [g for g in groups if g[2]]
    ordered = [g for g in groups if not g[2]] + wanting
    shape = tuple((t, tuple(rows[0]), len(rows)) for t, rows, _c in ordered)
    sql, processors, positions = _statement(conn.dialect, shape, returning=bool(wanting))
    params = {}
    for i, (_t, rows, _c) in enumerate(ordered):
        for n, row in enumerate(rows):
            for key, value in row.items():
                process = processors[i][key]
                params[f"j{i}_{n}_{key}"] = value if process is None or value is None else process(value)
    result = conn.exec_driver_sql(sql, tuple(params[name] for name in positions) if positions else params)
    if wanting:
        ids = list(result.scalars())
        for callback in wanting[0][2]:
            callback(ids)


#: compiled statements by shape (tables, their columns and row counts): SQLAlchemy does not cache
#: a multi-row ``VALUES``, and compiling one on every commit cost more than the round trip saved;
#: executed as the driver's SQL, which also skips SQLAlchemy's per-statement compile-cache lookup
_statements: dict[tuple[Any, ...], tuple[str, list[dict[str, Any]], tuple[str, ...] | None]] = {}


def _statement(dialect: Any, shape: tuple[tuple[Table, tuple[str, ...], int], ...], *,
               returning: bool) -> tuple[str, list[dict[str, Any]], tuple[str, ...] | None]:
    """The SQL of one shape, the bind processors (JSON, dates, ...) of each table's columns, and
    for a positional driver (sqlite3's ``?``) the parameter names in their order."""
    key = (dialect.name, shape, returning)
    cached = _statements.get(key)
    if cached is not None:
        return cached
    inserts = []
    for i, (table, columns, count) in enumerate(shape):
        rows = [{c: bindparam(f"j{i}_{n}_{c}", type_=table.c[c].type) for c in columns} for n in range(count)]
        inserts.append(insert(table).values(rows))
    stmt = inserts[-1]
    if len(inserts) > 1:
        stmt = stmt.add_cte(*(ins.cte(f"j{i}") for i, ins in enumerate(inserts[:-1])))
    if returning:
        stmt = stmt.returning(*shape[-1][0].primary_key.columns)
    processors = [{c: table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns}
                  for table, columns, _n in shape]
    compiled = stmt.compile(dialect=dialect)
    positions = tuple(compiled.positiontup) if compiled.positional else None
    if len(_statements) > 512:
        _statements.clear()
    cached = _statements[key] = (str(compiled), processors, positions)
    return cached


def install(session_class: type[Session]) -> None:
    """Write the queue before commit and before any ORM statement; drop it when the transaction
    ends otherwise (rollback, close)."""

    @event.listens_for(session_class, "before_commit")
    def _before_commit(session: Session) -> None:
        write(session)

    @event.listens_for(session_class, "do_orm_execute")
    def _before_orm_statement(state: Any) -> None:
        if state.session.info.get(_KEY):
            write(state.session)

    @event.listens_for(session_class, "after_transaction_end")
    def _after_transaction_end(session: Session, transaction: Any) -> None:
        if transaction.parent is None and not transaction.nested:
            discard(session)
