"""The outbox worker: claims due rows in batches, runs each within its timeout, records outcomes,
retries with growing delays, parks, prunes, reclaims rows of a dead worker, shares the rows with
other workers on PostgreSQL (SKIP LOCKED) and stands by on SQLite while another one runs.

Handlers here are real: they call a local HTTP server, block on events, raise. Nothing is patched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.request import Request, urlopen

import marshmallow as ma
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update

from crmcore import PluginInfo, hookimpl
from crmcore.config import Config
from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.errors import ValidationFailed
from crmcore.outbox import service
from crmcore.outbox.models import OutboxMessage, OutboxStatus
from crmcore.outbox.service import (
    RECLAIMED,
    REDACTED,
    JobDiscarded,
    Outcome,
    ParkJob,
    backoff,
    claim_due,
    enqueue,
    prune,
    record,
    redact,
    register_handler,
    release,
    time_left,
    unregister_handler,
)
from crmcore.outbox.worker import Worker, WorkerLock, WorkerThread
from crmcore.parties.models import Party
from crmcore.tenancy.models import Role

# -- helpers ----------------------------------------------------------------------------------


def setup(crm, **config):
    """Jobs wait for the worker (no inline runs); short leases unless a test says otherwise."""
    values = {"outbox_inline": False, "outbox_job_timeout": 5.0, "outbox_lease_margin": 5.0, **config}
    crm.config = dataclasses.replace(crm.config, **values)


@pytest.fixture
def handler():
    """``handler(kind, fn, timeout=None)``: a handler for this test only."""
    kinds = []

    def add(kind, fn, **options):
        register_handler(kind, fn, **options)
        kinds.append(kind)
        return kind

    yield add
    for kind in kinds:
        unregister_handler(kind)


@use_case(Role.MEMBER)
def queue_jobs(ctx, kind, n=1, *, topic="test.topic", payload=None, key_prefix=None, fail=False):
    prefix = key_prefix or f"{kind}-{ctx.new_key()}"
    ids = [enqueue(ctx, kind, topic, {"n": i, **(payload or {})}, idempotency_key=f"{prefix}-{i}")
           for i in range(n)]
    if fail:
        raise ValidationFailed("changed my mind")
    return ids


def jobs(crm, **where):
    with crm.db.session(unscoped=True) as session:
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        for key, value in where.items():
            stmt = stmt.where(getattr(OutboxMessage, key) == value)
        return list(session.scalars(stmt))


def job(crm, job_id):
    with crm.db.session(unscoped=True) as session:
        return session.get(OutboxMessage, job_id)


def make_due(crm, *ids):
    """What the passing of time does: the rows' next attempt (or lease end) is now in the past."""
    past = utcnow() - dt.timedelta(seconds=1)
    with crm.db.transaction(unscoped=True) as session:
        stmt = update(OutboxMessage).values(next_attempt_at=past)
        if ids:
            stmt = stmt.where(OutboxMessage.id.in_(ids))
        session.execute(stmt)


class Sink:
    """A local HTTP server that keeps what it was sent."""

    def __init__(self):
        self.received = []
        sink = self

        class Handle(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def post_to_sink(crm, message, deadline):
    """A handler that sends its job to the URL in the payload, within the job's deadline."""
    data = json.dumps({"key": message.idempotency_key, "n": message.payload["n"]}).encode()
    request = Request(message.payload["url"], data=data, headers={"Content-Type": "application/json",
                                                                   "Idempotency-Key": message.idempotency_key})
    assert deadline is not None and time_left() > 0
    with urlopen(request, timeout=time_left()) as response:
        response.read()


# -- the basics ----------------------------------------------------------------------------------


def test_production_default_leaves_jobs_to_the_worker(tmp_path):
    assert Config.load(tmp_path, env={}).outbox_inline is False
    config = Config.load(tmp_path, env={"CRM_OUTBOX_JOB_TIMEOUT": "2.5", "CRM_OUTBOX_MAX_ATTEMPTS": "3"})
    assert config.outbox_job_timeout == 2.5 and config.outbox_max_attempts == 3
    with pytest.raises(ValidationFailed, match="not a number"):
        Config.load(tmp_path, env={"CRM_OUTBOX_LEASE_MARGIN": "soon"})


def test_rollback_of_the_change_enqueues_and_sends_nothing(crm, ctx, handler, sink):
    setup(crm)
    handler("post", post_to_sink)
    with pytest.raises(ValidationFailed):
        queue_jobs(ctx, "post", 3, payload={"url": sink.url}, fail=True)
    assert jobs(crm) == []
    totals = Worker(crm).run(once=True)
    assert totals.claimed == 0 and sink.received == []
    [job_id] = queue_jobs(ctx, "post", payload={"url": sink.url})
    assert sink.received == []  # committed, but not sent in the request: the worker sends it
    assert Worker(crm).run(once=True).done == 1
    assert [r["key"] for r in sink.received] == [job(crm, job_id).idempotency_key]


def test_worker_runs_every_due_row_once_in_batches_and_records_timing(crm, ctx, handler):
    setup(crm)
    seen = []
    handler("count", lambda crm, message: seen.append(message.id))
    ids = queue_jobs(ctx, "count", 250)
    later = queue_jobs(ctx, "count", 1)  # not due yet
    make_due(crm, *ids)
    with crm.db.transaction(unscoped=True) as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(later))
                        .values(next_attempt_at=utcnow() + dt.timedelta(hours=1)))
    totals = Worker(crm, batch=100).run(once=True)
    assert sorted(seen) == ids
    assert (totals.claimed, totals.done, totals.failed) == (250, 250, 0) and totals.batches >= 3
    for row in jobs(crm, kind="count")[:250]:
        assert (row.status, row.attempts, row.last_error, row.locked_until) == ("done", 1, None, None)
        assert row.last_duration_ms is not None and row.last_duration_ms >= 0 and row.done_at is not None
    assert job(crm, later[0]).status == "pending"


def test_enqueue_is_idempotent_by_key(crm, ctx, handler):
    setup(crm)
    handler("count", lambda crm, message: None)
    first = queue_jobs(ctx, "count", 2, key_prefix="same")
    again = queue_jobs(ctx, "count", 2, key_prefix="same")
    assert all(first) and again == [None, None]
    assert len(jobs(crm)) == 2


def test_react_hooks_run_on_the_worker_in_their_business(crm, ctx, other_ctx, register_plugin):
    setup(crm)
    calls = []

    class Plugin:
        @hookimpl
        def crm_after_party_created(self, ctx, party):
            calls.append((ctx.business_id, party.name, ctx.user_id))

    register_plugin(Plugin(), enable_for=[ctx, other_ctx])
    from crmcore.parties.service import create_party

    create_party(ctx, {"kind": "organisation", "name": "Mine"})
    create_party(other_ctx, {"kind": "organisation", "name": "Theirs"})
    assert calls == []  # nothing inline
    assert Worker(crm).run(once=True).done >= 2
    assert sorted(calls) == sorted([(ctx.business_id, "Mine", ctx.user_id),
                                    (other_ctx.business_id, "Theirs", other_ctx.user_id)])


def test_unknown_kind_fails_with_a_clear_error(crm, ctx):
    setup(crm)
    [job_id] = queue_jobs(ctx, "nobody")
    Worker(crm).run(once=True)
    row = job(crm, job_id)
    assert row.status == "failed" and "no handler for outbox jobs of kind 'nobody'" in row.last_error


def test_park_and_discard_from_a_handler(crm, ctx, handler):
    setup(crm)

    def refuse(crm, message):
        raise (ParkJob if message.payload["n"] == 0 else JobDiscarded)(f"no way {message.payload['n']}")

    handler("refuse", refuse)
    parked, discarded = queue_jobs(ctx, "refuse", 2)
    totals = Worker(crm).run(once=True)
    assert (totals.parked, totals.discarded) == (1, 1)
    p, d = job(crm, parked), job(crm, discarded)
    assert (p.status, p.attempts, p.last_error, p.done_at) == ("parked", 1, "no way 0", None)
    assert (d.status, d.last_error) == ("discarded", "no way 1") and d.done_at is not None


def test_a_job_is_woken_at_once_by_a_commit_in_this_process(crm, ctx, handler):
    """An in-process worker sleeping a long poll wakes when a use case commits a job."""
    setup(crm)
    ran = threading.Event()
    handler("wake", lambda crm, message: ran.set())
    thread = WorkerThread(crm, poll=120.0, prune=False)
    thread.start()
    try:
        time.sleep(0.2)  # let it claim nothing and go to sleep
        queue_jobs(ctx, "wake")
        assert ran.wait(20), "the worker slept through the commit"
    finally:
        thread.stop()
    assert not thread.is_alive()


def test_concurrency_runs_jobs_side_by_side(crm, ctx, handler):
    """Four runners: four jobs that each wait for the other three all finish (one runner at a
    time would leave each waiting alone until the barrier gives up)."""
    setup(crm)
    barrier = threading.Barrier(4, timeout=20)
    runners = set()

    def meet(crm, message):
        runners.add(threading.current_thread().name)
        barrier.wait()

    handler("meet", meet)
    ids = queue_jobs(ctx, "meet", 8)
    totals = Worker(crm, batch=8, concurrency=4).run(once=True)
    assert totals.done == 8 and totals.failed == 0
    assert len(runners) == 4 and {job(crm, i).status for i in ids} == {"done"}


# -- retries, parking ---------------------------------------------------------------------------


def test_failing_handler_retries_with_growing_delays_then_parks(crm, ctx, handler, caplog):
    setup(crm, outbox_max_attempts=5, outbox_backoff_base=2.0, outbox_backoff_cap=3600.0)
    calls = []

    def fail(crm, message):
        calls.append(message.attempts)
        raise ConnectionError(f"provider answered 500 (try {message.attempts})")

    handler("flaky", fail)
    [job_id] = queue_jobs(ctx, "flaky")
    delays = []
    for attempt in range(1, 6):
        totals = Worker(crm).run(once=True)
        row = job(crm, job_id)
        assert row.attempts == attempt and row.last_error == f"ConnectionError: provider answered 500 (try {attempt})"
        if attempt < 5:
            assert row.status == "failed" and totals.failed == 1
            delay = (row.next_attempt_at - row.updated_at).total_seconds()
            window = 2.0 * 2 ** attempt
            assert window / 2 - 1 <= delay <= window, (attempt, delay)
            delays.append(delay)
            assert Worker(crm).run(once=True).claimed == 0  # not due before its time
            make_due(crm, job_id)
        else:
            assert row.status == "parked" and totals.parked == 1
    assert calls == [1, 2, 3, 4, 5]
    assert delays == sorted(delays)
    assert "provider answered 500" in caplog.text


@given(attempts=st.integers(min_value=0, max_value=80), base=st.floats(min_value=0.01, max_value=60),
       cap=st.floats(min_value=1, max_value=86_400))
def test_backoff_grows_within_its_window(attempts, base, cap):
    window = min(cap, base * 2 ** attempts)
    delay = backoff(attempts, base, cap)
    assert window / 2 <= delay <= window
    following = backoff(attempts + 1, base, cap)
    assert following >= window / 2  # never shorter than half the last window: delays never shrink far
    if window < cap / 2:
        assert following >= window >= delay


# -- timeouts, leases, crashes -------------------------------------------------------------------


def test_hanging_handler_is_abandoned_at_its_timeout_and_the_other_rows_flow(crm, ctx, handler, caplog):
    setup(crm, outbox_job_timeout=1.0, outbox_lease_margin=1.0)
    release_hang = threading.Event()
    done = []

    def hang(crm, message):
        release_hang.wait(60)  # a provider that never answers (and a handler ignoring its deadline)

    handler("hang", hang, timeout=0.5)
    handler("quick", lambda crm, message: done.append(message.id))
    [hung] = queue_jobs(ctx, "hang")
    quick = queue_jobs(ctx, "quick", 20)
    try:
        totals = Worker(crm, batch=50).run(once=True)
        row = job(crm, hung)
        assert row.status == "failed" and row.attempts == 1
        assert row.last_error.startswith("timed out after 0.5 s")
        assert totals.timed_out == 1 and totals.done == 20 and sorted(done) == quick
        assert all(job(crm, i).status == "done" for i in quick)
    finally:
        release_hang.set()
    deadline = time.monotonic() + 10
    while "result was dropped" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "result was dropped" in caplog.text
    assert job(crm, hung).status == "failed"  # the late return changed nothing


def test_a_job_may_use_the_time_it_has_left(crm, ctx, handler):
    setup(crm, outbox_job_timeout=3.0)
    seen = []

    def look(crm, message, deadline):
        seen.append((deadline - time.monotonic(), time_left(), service.current_deadline() == deadline))

    handler("look", look)
    queue_jobs(ctx, "look")
    Worker(crm).run(once=True)
    [(left, also_left, same)] = seen
    assert 0 < left <= 3.0 and 0 < also_left <= 3.0 and same
    assert service.current_deadline() is None and time_left(7.0) == 7.0


def test_rows_of_a_worker_that_died_are_claimed_again_when_the_lease_ends(crm, ctx, handler):
    setup(crm)
    seen_errors = []

    def look(crm, message):
        seen_errors.append(job(crm, message.id).last_error)  # what an admin sees while it runs

    handler("crash", look)
    [job_id] = queue_jobs(ctx, "crash")
    [claimed] = claim_due(crm, 10)  # a worker claims it ... and is killed before it records
    assert claimed.id == job_id and job(crm, job_id).status == "running"
    assert job(crm, job_id).next_attempt_at == job(crm, job_id).locked_until > utcnow()
    assert Worker(crm).run(once=True).claimed == 0  # leased: nobody else takes it
    make_due(crm, job_id)  # the lease ran out
    assert Worker(crm).run(once=True).done == 1
    row = job(crm, job_id)
    assert (row.status, row.attempts, row.last_error) == ("done", 2, None)
    assert seen_errors == [RECLAIMED]


def test_a_row_whose_workers_keep_dying_is_parked(crm, ctx, handler):
    setup(crm, outbox_max_attempts=2)
    calls = []
    handler("crash", lambda crm, message: calls.append(message.id))
    [job_id] = queue_jobs(ctx, "crash")
    for _ in range(2):  # two workers claim it and die
        assert [m.id for m in claim_due(crm, 10)] == [job_id]
        make_due(crm, job_id)
    totals = Worker(crm).run(once=True)
    row = job(crm, job_id)
    assert totals.parked == 1 and calls == []
    assert row.status == "parked" and row.last_error.startswith("gave up after 2 attempts")


def test_a_stale_worker_cannot_overwrite_the_current_claim(crm, ctx):
    setup(crm)
    [job_id] = queue_jobs(ctx, "nobody")
    [first] = claim_due(crm, 10)
    make_due(crm, job_id)
    [second] = claim_due(crm, 10)  # another worker, after the first one's lease ran out
    assert (first.attempts, second.attempts) == (1, 2)
    record(crm, [Outcome(job_id, first.attempts, OutboxStatus.DONE, done_at=utcnow())])
    assert job(crm, job_id).status == "running"  # fenced off
    record(crm, [Outcome(job_id, second.attempts, OutboxStatus.DONE, done_at=utcnow())])
    assert job(crm, job_id).status == "done"


def test_unstarted_rows_are_handed_back_as_they_were(crm, ctx, handler):
    setup(crm)
    handler("fail", lambda crm, message: 1 / 0)
    a, b = queue_jobs(ctx, "fail", 2)
    Worker(crm).run(once=True)
    make_due(crm, a, b)
    with crm.db.transaction(unscoped=True) as session:  # b never failed: fresh
        session.execute(update(OutboxMessage).where(OutboxMessage.id == b)
                        .values(status="pending", attempts=0, last_error=None))
    claimed = claim_due(crm, 10)
    assert {m.id: m.attempts for m in claimed} == {a: 2, b: 1}
    release(crm, claimed)
    ra, rb = job(crm, a), job(crm, b)
    assert (ra.status, ra.attempts, ra.locked_until) == ("failed", 1, None)
    assert (rb.status, rb.attempts) == ("pending", 0)
    assert ra.next_attempt_at <= utcnow() and rb.next_attempt_at <= utcnow()


def test_stop_finishes_the_running_job_and_hands_back_the_rest(crm, ctx, handler):
    setup(crm)
    started, go_on = threading.Event(), threading.Event()
    ran = []

    def slow(crm, message):
        ran.append(message.id)
        started.set()
        go_on.wait(30)

    handler("slow", slow)
    ids = queue_jobs(ctx, "slow", 10)
    worker = Worker(crm, batch=10, poll=0.05)
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(20)
    worker.stop()
    go_on.set()
    thread.join(20)
    assert not thread.is_alive()
    assert ran == [ids[0]]
    assert job(crm, ids[0]).status == "done"
    rest = [job(crm, i) for i in ids[1:]]
    assert {(r.status, r.attempts, r.locked_until) for r in rest} == {("pending", 0, None)}
    assert worker.totals.released == 9


# -- many workers --------------------------------------------------------------------------------


def test_two_workers_never_run_a_row_twice(crm, ctx, handler):
    """PostgreSQL: both run at once, sharing the rows (SKIP LOCKED). SQLite: one runs, the
    other stands by; either way every row runs exactly once."""
    setup(crm)
    runs = []
    lock = threading.Lock()

    def count(crm, message):
        with lock:
            runs.append((threading.current_thread().name, message.id))
        time.sleep(0.001)

    handler("share", count)
    ids = queue_jobs(ctx, "share", 400)
    workers = [Worker(crm, batch=10, name=f"w{i}", prune=False) for i in range(2)]
    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    ran = [job_id for _name, job_id in runs]
    assert sorted(ran) == ids, "a row ran twice or not at all"
    assert sum(w.totals.done for w in workers) == 400
    if crm.db.dialect == "postgresql":
        assert all(w.totals.claimed > 0 for w in workers), [w.totals.claimed for w in workers]
    assert {r.status for r in jobs(crm)} == {"done"}


def test_claim_skips_rows_another_worker_has_locked(crm, ctx):
    if crm.db.dialect != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite runs one worker at a time")
    setup(crm)
    ids = queue_jobs(ctx, "nobody", 6)
    with crm.db.engine.connect() as other:
        other.begin()
        locked = other.execute(text(
            "SELECT id FROM outbox WHERE status = 'pending' ORDER BY next_attempt_at, id LIMIT 3 FOR UPDATE"
        )).scalars().all()
        claimed = [m.id for m in claim_due(crm, 10)]  # does not wait for the other transaction
        other.rollback()
    assert sorted(locked + claimed) == ids and not set(locked) & set(claimed)


def test_sqlite_runs_one_worker_and_the_second_stands_by(crm, ctx, handler, caplog):
    setup(crm)
    caplog.set_level(logging.INFO, logger="crmcore.outbox")
    seen = []
    handler("solo", lambda crm, message: seen.append((threading.current_thread().name, message.id)))
    first = WorkerLock(crm, "first")
    second = WorkerLock(crm, "second")
    assert first.try_acquire()
    if crm.db.dialect == "postgresql":
        assert second.try_acquire() and not first.exclusive  # any number of workers
        return
    assert not second.try_acquire() and second.holder() == "first"
    first.release()
    assert second.try_acquire()
    second.release()

    one = Worker(crm, poll=0.05, name="one")
    two = Worker(crm, poll=0.05, name="two")
    t1 = threading.Thread(target=one.run)
    t1.start()
    deadline = time.monotonic() + 20
    while not one.lock.held and time.monotonic() < deadline:
        time.sleep(0.01)
    t2 = threading.Thread(target=two.run)
    t2.start()
    while "stands by" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "another worker (one) runs the outbox of this SQLite database" in caplog.text
    ids = queue_jobs(ctx, "solo", 5)
    while len(seen) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert two.totals.claimed == 0 and t2.is_alive()
    one.stop()
    t1.join(20)
    more = queue_jobs(ctx, "solo", 3)
    while len(seen) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    two.stop()
    t2.join(20)
    assert not t1.is_alive() and not t2.is_alive()
    assert "outbox worker two took over" in caplog.text
    assert sorted(i for _n, i in seen) == ids + more
    assert (one.totals.done, two.totals.done) == (5, 3)


# -- pruning ------------------------------------------------------------------------------------


def test_prune_deletes_old_finished_rows_in_batches(crm, ctx, other_ctx):
    setup(crm, outbox_retention=3600.0, outbox_prune_batch=2)
    mine = queue_jobs(ctx, "nobody", 8)
    theirs = queue_jobs(other_ctx, "nobody", 2)
    old = utcnow() - dt.timedelta(hours=2)
    recent = utcnow() - dt.timedelta(minutes=5)
    states = {mine[0]: ("done", old), mine[1]: ("done", old), mine[2]: ("discarded", old),
              mine[3]: ("done", recent), mine[4]: ("parked", None), mine[5]: ("failed", None),
              mine[6]: ("pending", None), mine[7]: ("done", old), theirs[0]: ("done", old),
              theirs[1]: ("discarded", recent)}
    with crm.db.transaction(unscoped=True) as session:
        for job_id, (status, done_at) in states.items():
            session.execute(update(OutboxMessage).where(OutboxMessage.id == job_id)
                            .values(status=status, done_at=done_at))
    assert prune(crm, batch=2) == 5  # three statements of at most two rows
    left = {r.id for r in jobs(crm)}
    assert left == {mine[3], mine[4], mine[5], mine[6], theirs[1]}
    assert prune(crm) == 0
    assert prune(crm, older_than=60) == 2  # recent ones, with a shorter retention
    assert {r.id for r in jobs(crm)} == {mine[4], mine[5], mine[6]}


def test_the_worker_prunes_as_it_goes(crm, ctx, handler):
    setup(crm, outbox_retention=0.0, outbox_prune_interval=0.0)
    handler("count", lambda crm, message: None)
    queue_jobs(ctx, "count", 30)
    worker = Worker(crm, batch=10)
    worker.run(once=True)
    assert worker.totals.done == 30
    Worker(crm).run(once=True)  # the next round prunes what the last one finished
    with crm.db.session(unscoped=True) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_postgresql_vacuums_the_table_after_pruning(crm, ctx, handler):
    if crm.db.dialect != "postgresql":
        pytest.skip("VACUUM is PostgreSQL's; SQLite reuses freed pages itself")
    setup(crm, outbox_retention=0.0, outbox_prune_interval=0.0, outbox_vacuum_interval=0.001)
    handler("count", lambda crm, message: None)
    stats = text("SELECT coalesce(vacuum_count, 0) FROM pg_stat_user_tables WHERE relname = 'outbox'")
    with crm.db.engine.connect() as conn:
        before = conn.execute(stats).scalar()
    queue_jobs(ctx, "count", 20)
    Worker(crm, batch=10).run(once=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with crm.db.engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            if conn.execute(stats).scalar() > before:
                break
        time.sleep(0.1)
    with crm.db.engine.connect() as conn:
        assert conn.execute(stats).scalar() > before
    assert jobs(crm) == []


# -- secrets --------------------------------------------------------------------------------------

SECRET = "sk_live_51HxQyZpL0ngS3cr3tValue"


class GatewaySettings(ma.Schema):
    account = ma.fields.String(required=True)
    api_key = ma.fields.String(required=True, metadata={"secret": True})


class Gateway:
    """A plugin with a secret setting."""


def test_a_secret_in_a_handler_error_is_redacted_from_the_row_and_the_log(crm, ctx, handler, register_plugin,
                                                                           caplog, monkeypatch):
    setup(crm)
    register_plugin(Gateway(), info=PluginInfo(title="Gateway", settings_schema=GatewaySettings),
                    enable_for=ctx, settings={"account": "acme", "api_key": SECRET})

    def leaky(crm, message):
        raise PermissionError(f"401 for https://api.example/v1?key={SECRET}&k2=sk_live_51HxQyZpL0ngS3cr3tValue%21 "
                              f"Authorization: Bearer {SECRET} (instance key {crm.config.secrets_key})")

    handler("leaky", leaky)
    [job_id] = queue_jobs(ctx, "leaky")
    Worker(crm).run(once=True)
    row = job(crm, job_id)
    assert row.status == "failed"
    assert SECRET not in row.last_error and crm.config.secrets_key not in row.last_error
    assert row.last_error.count(REDACTED) >= 3 and "401 for https://api.example/v1?key=" in row.last_error
    assert SECRET not in caplog.text and crm.config.secrets_key not in caplog.text
    assert all(SECRET not in json.dumps(r.payload) for r in jobs(crm))


def test_env_secrets_and_registered_sources_are_redacted_too(crm, ctx, handler, register_plugin, monkeypatch):
    setup(crm)
    monkeypatch.setenv("ACME_GATEWAY_KEY", "env-held-secret-123")
    register_plugin(Gateway(), info=PluginInfo(title="Gateway", settings_schema=GatewaySettings),
                    enable_for=ctx, settings={"account": "acme", "api_key": "$env:ACME_GATEWAY_KEY"})
    service.register_secret_source(_smtp_passwords)
    try:
        def leaky(crm, message):
            raise OSError("login env-held-secret-123 / smtp-pass-of-acme refused")

        handler("leaky", leaky)
        [job_id] = queue_jobs(ctx, "leaky")
        Worker(crm).run(once=True)
    finally:
        service._SECRET_SOURCES.remove(_smtp_passwords)
    assert job(crm, job_id).last_error == f"OSError: login {REDACTED} / {REDACTED} refused"


def _smtp_passwords(session, business_id):
    return ["smtp-pass-of-acme"] if business_id else []


TEXT = st.text(alphabet=st.characters(exclude_characters="\uffff"), max_size=30)


@given(secret=st.text(alphabet=st.characters(exclude_characters="\uffff"), min_size=4, max_size=30),
       before=TEXT, after=TEXT)
def test_redact_never_leaves_a_secret(secret, before, after):
    from urllib.parse import quote

    try:
        encoded = quote(secret, safe="")
    except UnicodeEncodeError:  # a lone surrogate: no URL carries it
        encoded = secret
    message = f"{before}{secret}{after} {encoded}"
    out = redact(message, [secret, "other-secret"]).replace(REDACTED, "\uffff")
    assert secret not in out and encoded not in out


def test_batch_log_lines_carry_counts_not_payloads(crm, ctx, handler, caplog):
    setup(crm)
    caplog.set_level(logging.INFO, logger="crmcore.outbox")
    handler("count", lambda crm, message: None)
    queue_jobs(ctx, "count", 3, payload={"token": "payload-secret-value"})
    Worker(crm).run(once=True)
    assert "3 claimed: 3 done" in caplog.text
    assert "payload-secret-value" not in caplog.text


def test_party_model_is_passed_by_reference(crm, ctx, register_plugin):
    """A hook job's payload names the party by id; the worker loads it again in its business."""
    setup(crm)
    seen = []

    class Plugin:
        @hookimpl
        def crm_after_party_created(self, ctx, party):
            seen.append(isinstance(party, Party) and party.business_id == ctx.business_id)

    register_plugin(Plugin(), enable_for=ctx)
    from crmcore.parties.service import create_party

    create_party(ctx, {"kind": "organisation", "name": "By reference"})
    [row] = [r for r in jobs(crm) if r.topic == "crm_after_party_created"]
    assert row.payload["party"]["$model"] == "Party"
    Worker(crm).run(once=True)
    assert seen == [True]
