"""Append-only rows written at commit in one statement (crmcore.journal), and on PostgreSQL
transactions begun in their first statement's message (crmcore.db)."""

import dataclasses
import datetime as dt
import decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    MetaData,
    Numeric,
    Table,
    Text,
    event,
    func,
    insert,
    select,
)

from crmcore import journal
from crmcore.audit import service as audit
from crmcore.audit.models import AuditEntry
from crmcore.context import use_case
from crmcore.db import Database
from crmcore.outbox.models import OutboxMessage
from crmcore.outbox.service import enqueue, enqueue_hook
from crmcore.parties.service import create_party
from crmcore.tenancy.models import Role
from crmcore.timeline.models import TimelineEvent


class _Statements:
    def __init__(self, engine):
        self.seen: list[str] = []
        self.engine = engine

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self.seen

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, *_args):
        self.seen.append(statement)


def _count(ctx, model, **where):
    stmt = select(func.count()).select_from(model)
    for key, value in where.items():
        stmt = stmt.where(getattr(model, key) == value)
    return ctx.session.scalar(stmt)


def test_a_create_writes_its_audit_entry_and_timeline_event_at_commit_together(ctx):
    with _Statements(ctx.crm.db.engine) as seen:
        party = create_party(ctx, {"kind": "organisation", "name": "Journal Ltd"})
    writes = [s for s in seen if "audit_log" in s or "timeline_events" in s]
    if ctx.crm.db.dialect == "postgresql":
        assert len(writes) == 1 and "audit_log" in writes[0] and "timeline_events" in writes[0]
    else:
        assert len(writes) == 2
    assert _count(ctx, AuditEntry, entity_type="party", entity_id=party.id, action="party.created") == 1
    assert _count(ctx, TimelineEvent, party_id=party.id, kind="party_created") == 1


@use_case(Role.MEMBER)
def _record_then_read(ctx):
    audit.record(ctx, "probe.done", entity_type="probe", entity_id=7)
    waiting = journal.pending(ctx.session)
    seen = _count(ctx, AuditEntry, action="probe.done")
    return waiting, seen, journal.pending(ctx.session)


def test_a_query_later_in_the_transaction_sees_the_queued_rows(ctx):
    assert _record_then_read(ctx) == (1, 1, 0)


class _Boom(Exception):
    pass


@use_case(Role.MEMBER)
def _record_then_fail(ctx):
    audit.record(ctx, "probe.failed", entity_type="probe", entity_id=1)
    raise _Boom


def test_a_rolled_back_use_case_writes_nothing_and_leaves_no_queue(ctx):
    with pytest.raises(_Boom):
        _record_then_fail(ctx)
    assert journal.pending(ctx.session) == 0
    assert _count(ctx, AuditEntry, action="probe.failed") == 0
    _record_then_read(ctx)  # the next use case of the same context starts clean
    assert _count(ctx, AuditEntry, action="probe.failed") == 0


def test_rows_of_a_closed_uncommitted_session_are_dropped(crm, business, ctx):
    audit.record(ctx, "probe.unsaved", entity_type="probe", entity_id=1)
    assert journal.pending(ctx.session) == 1
    ctx.close()
    assert _count(ctx, AuditEntry, action="probe.unsaved") == 0


@use_case(Role.MEMBER)
def _around_a_savepoint(ctx):
    audit.record(ctx, "probe.before", entity_type="probe", entity_id=1)
    savepoint = ctx.session.begin_nested()
    audit.record(ctx, "probe.inside", entity_type="probe", entity_id=2)
    assert journal.pending(ctx.session) == 0  # inside a savepoint rows go at once
    savepoint.rollback()
    audit.record(ctx, "probe.after", entity_type="probe", entity_id=3)


def test_a_savepoint_rollback_takes_its_own_rows_only(ctx):
    _around_a_savepoint(ctx)
    assert _count(ctx, AuditEntry, action="probe.before") == 1
    assert _count(ctx, AuditEntry, action="probe.inside") == 0
    assert _count(ctx, AuditEntry, action="probe.after") == 1


@use_case(Role.MEMBER)
def _queue_jobs(ctx):
    enqueue_hook(ctx, "crm_after_party_save", ["a", "b"], {})
    enqueue(ctx, "probe", "probe", {}, idempotency_key="probe:1")
    enqueue_hook(ctx, "crm_after_party_save", ["c"], {})


def test_queued_hook_jobs_keep_their_order_and_are_run_after_commit(crm, ctx):
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)
    _queue_jobs(ctx)
    rows = ctx.session.execute(select(OutboxMessage.plugin, OutboxMessage.kind).order_by(OutboxMessage.id)).all()
    assert [tuple(r) for r in rows] == [("a", "hook"), ("b", "hook"), (None, "probe"), ("c", "hook")]
    assert ctx._pending == []  # handed to the workers after commit


def test_the_queued_hook_jobs_ids_reach_the_context_at_commit(crm, ctx):
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)
    handed = []
    ctx._run_pending = lambda: handed.extend(ctx._pending)  # see what the use case hands on
    _queue_jobs(ctx)
    ids = ctx.session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)).all()
    assert sorted(handed) == ids


@use_case(Role.MEMBER)
def _many_rows(ctx, n):
    for i in range(n):
        audit.record(ctx, "probe.many", entity_type="probe", entity_id=i)
        if i % 50 == 0:
            enqueue_hook(ctx, "crm_after_party_save", [f"p{i}"], {})
    enqueue(ctx, "probe", "probe", {}, idempotency_key="probe:many")
    enqueue_hook(ctx, "crm_after_party_save", ["last"], {})


def test_more_rows_than_one_statement_takes_arrive_whole_and_in_order(crm, ctx):
    """A use case that audits thousands of rows (a plugin's loop) is cut into statements of at
    most ``journal.CHUNK`` rows per table: PostgreSQL refuses more than 65,535 parameters, SQLite
    32,766; each table's rows keep their order across the statements."""
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)
    n = 10_003  # 70,021 parameters of audit rows in one statement would be refused; 201 jobs
    handed = []
    ctx._run_pending = lambda: handed.extend(ctx._pending)
    with _Statements(ctx.crm.db.engine) as seen:
        _many_rows(ctx, n)
    writes = [s for s in seen if s.lstrip().upper().startswith(("INSERT", "WITH"))]
    assert all(s.count("audit_log") <= 1 for s in writes)
    entity_ids = ctx.session.scalars(select(AuditEntry.entity_id).where(AuditEntry.action == "probe.many")
                                     .order_by(AuditEntry.id)).all()
    assert entity_ids == list(range(n))
    jobs = ctx.session.execute(select(OutboxMessage.id, OutboxMessage.plugin, OutboxMessage.kind)
                               .order_by(OutboxMessage.id)).all()
    expected = [(f"p{i}", "hook") for i in range(0, n, 50)] + [(None, "probe"), ("last", "hook")]
    assert [(plugin, kind) for _id, plugin, kind in jobs] == expected
    assert sorted(handed) == [job_id for job_id, _p, _k in jobs]


def test_rounds_keep_one_group_per_table_and_one_wanting_ids_per_statement():
    meta = MetaData()
    a, b = (Table(name, meta, Column("id", BigInteger, primary_key=True)) for name in ("a", "b"))
    def wants(_ids):
        pass
    groups = [(a, [{}], []), (a, [{}], []), (b, [{}], [wants]), (b, [{}], [wants]), (a, [{}], [wants])]
    rounds = journal._rounds(groups)
    assert [[(g[0].name, bool(g[2])) for g in r] for r in rounds] == [
        [("a", False), ("b", True)], [("a", False), ("b", True)], [("a", True)]]


# --------------------------------------------------------------------------------------------
# PostgreSQL: BEGIN travels with the transaction's first statement


def _postgresql(crm):
    if crm.db.dialect != "postgresql":
        pytest.skip("PostgreSQL only (CRM_TEST_DATABASE_URL)")


_probe_meta = MetaData()
_probe = Table(
    "journal_probe", _probe_meta,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("text", Text), Column("doc", JSON), Column("amount", Numeric(18, 4)),
    Column("at", DateTime(timezone=True)),
)


@pytest.fixture
def probe_db(crm):
    _postgresql(crm)
    db = Database(crm.config.database_url, pool_size=1, max_overflow=0)
    _probe_meta.create_all(db.engine)
    yield db
    _probe_meta.drop_all(db.engine)
    db.dispose()


def _rows(db):
    with db.engine.connect() as conn:
        return conn.execute(select(_probe.c.text, _probe.c.doc, _probe.c.amount, _probe.c.at)).all()


def test_first_statement_opens_a_transaction_that_a_rollback_undoes(probe_db):
    with probe_db.engine.connect() as conn:
        conn.execute(insert(_probe).values(text="kept?"))
        driver = conn.connection.dbapi_connection
        # psycopg in autocommit sends no BEGIN of its own: the open transaction is the fused one
        assert driver.autocommit is True and driver.info.transaction_status.name == "INTRANS"
        conn.rollback()
    with probe_db.engine.connect() as conn:  # an executemany as first statement, too
        conn.execute(insert(_probe), [{"text": "a"}, {"text": "b"}])
        conn.rollback()
    assert _rows(probe_db) == []


def test_a_failing_first_statement_leaves_the_connection_usable(probe_db):
    with probe_db.engine.connect() as conn:
        with pytest.raises(Exception, match="division by zero"):
            conn.exec_driver_sql("SELECT 1 / 0")
        conn.rollback()
        assert conn.exec_driver_sql("SELECT 2").scalar() == 2
        conn.commit()


def test_autocommit_work_runs_outside_a_transaction_and_the_connection_comes_back(probe_db):
    with probe_db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM journal_probe")  # refused inside a transaction block
    with probe_db.engine.connect() as conn:  # the same pooled connection (pool_size=1)
        assert conn.connection.dbapi_connection.autocommit is True
        conn.execute(insert(_probe).values(text="rolled back"))
        conn.rollback()
    assert _rows(probe_db) == []


_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_texts, key=_texts, amount=st.decimals(min_value=-10**9, max_value=10**9, places=4,
                                                    allow_nan=False, allow_infinity=False))
def test_values_bound_into_the_first_statement_arrive_unchanged(probe_db, text, key, amount):
    at = dt.datetime(2026, 11, 24, 12, 30, 15, 123456, tzinfo=dt.UTC)
    doc = {key: [text, None, 1.5, True], "percent": "100%", "quote": "it's"}
    with probe_db.engine.begin() as conn:
        new_id = conn.execute(insert(_probe).values(text=text, doc=doc, amount=amount, at=at)
                              .returning(_probe.c.id)).scalar_one()
    with probe_db.engine.begin() as conn:
        row = conn.execute(select(_probe.c.text, _probe.c.doc, _probe.c.amount, _probe.c.at)
                           .where(_probe.c.id == new_id)).one()
        conn.execute(_probe.delete())
    assert tuple(row) == (text, doc, decimal.Decimal(amount), at)
