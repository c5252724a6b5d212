"""``python -m benchmarks outbox``: how fast the outbox worker drains a queue, and how big the
outbox table gets under a steady load.

1. **Throughput**: ``--jobs`` rows of a no-op kind are queued, then ``crm worker``'s loop
   (:class:`crmcore.outbox.worker.Worker`, in its own process, as ``crm worker`` runs it) drains
   them: jobs/s from the start signal to the empty queue. SQLite: one worker (one is all SQLite
   allows). PostgreSQL: one, then two workers side by side (their ratio is what claiming in
   batches with ``SKIP LOCKED`` buys).
2. **Table size under load**: a producer process queues jobs at a steady rate for a while, one
   worker runs them and prunes rows finished more than ``--retention`` seconds ago; the rows in
   the table are sampled twice a second. A table that keeps growing would show here.

Every handler is a no-op, so the figures are the outbox's own cost: claim, hand to a runner
thread, record, prune. Each process builds its own installation (as separate machines would).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

NOOP = "bench-noop"


def _noop(crm: Any, message: Any) -> None:
    """The job: nothing, so that only the outbox is measured."""


def _crm(url: str, **config: Any) -> Any:
    from cryptography.fernet import Fernet

    from crmcore.config import Config
    from crmcore.outbox.service import register_handler
    from crmcore.runtime import Crm

    instance = Path(tempfile.mkdtemp(prefix="crm-bench-outbox-"))
    cfg = Config(instance_path=instance, database_url=url, secret_key="bench", secrets_key=Fernet.generate_key().decode(),
                 **config)
    register_handler(NOOP, _noop, replace=True)
    return Crm.from_config(cfg)


def _prepare(url: str) -> int:
    """The core schema and one business; returns its id."""
    from crmcore.tenancy.service import create_business

    crm = _crm(url)
    crm.db.create_all()
    business = create_business(crm, "bench", "Bench Ltd")
    crm.db.dispose()
    return business.id


def _queue(url: str, business_id: int, n: int, chunk: int = 5000) -> None:
    """``n`` due rows of the no-op kind, written straight into the table (executemany)."""
    from crmcore.outbox.models import OutboxMessage

    crm = _crm(url)
    now = dt.datetime.now(dt.UTC)
    table = OutboxMessage.__table__
    for start in range(0, n, chunk):
        rows = [{"business_id": business_id, "kind": NOOP, "topic": "bench", "plugin": None, "payload": {"n": i},
                 "idempotency_key": f"bench:{uuid.uuid4().hex}", "status": "pending", "attempts": 0,
                 "max_attempts": 8, "next_attempt_at": now, "user_id": None, "created_at": now,
                 "updated_at": now} for i in range(start, min(n, start + chunk))]
        with crm.db.transaction(unscoped=True) as session:
            session.connection().execute(table.insert(), rows)
    crm.db.dispose()


def _worker_process(url: str, batch: int, ready: Any, go: Any, results: Any, config: dict[str, Any],
                    stop_after: float | None) -> None:
    """A worker process: waits for ``go``, drains the queue (or runs ``stop_after`` seconds)."""
    import threading

    from crmcore.outbox.worker import Worker

    crm = _crm(url, **config)
    worker = Worker(crm, batch=batch, poll=0.05, prune=bool(stop_after))
    with crm.db.engine.connect() as conn:  # open the pool's connection before the clock starts
        conn.execute(text("SELECT 1"))
    ready.set()
    go.wait()
    started = time.perf_counter()
    if stop_after:
        threading.Timer(stop_after, worker.stop).start()
        totals = worker.run()
    else:
        totals = worker.run(once=True)
    results.put((totals.done, started, time.perf_counter(), totals.batches, totals.pruned))
    crm.db.dispose()


def _producer_process(url: str, business_id: int, rate: float, seconds: float, ready: Any, go: Any,
                      results: Any) -> None:
    """Queues ``rate`` jobs a second (in 20 chunks a second) for ``seconds``."""
    from crmcore.outbox.models import OutboxMessage

    crm = _crm(url)
    table = OutboxMessage.__table__
    ready.set()
    go.wait()
    started = time.perf_counter()
    sent = 0
    tick = 0.05
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(rate * (elapsed + tick)) - sent
        if due > 0:
            now = dt.datetime.now(dt.UTC)
            rows = [{"business_id": business_id, "kind": NOOP, "topic": "bench", "plugin": None, "payload": {},
                     "idempotency_key": f"bench:{uuid.uuid4().hex}", "status": "pending", "attempts": 0,
                     "max_attempts": 8, "next_attempt_at": now, "user_id": None, "created_at": now,
                     "updated_at": now} for _ in range(due)]
            with crm.db.transaction(unscoped=True) as session:
                session.connection().execute(table.insert(), rows)
            sent += due
        time.sleep(max(0.0, started + (elapsed // tick + 1) * tick - time.perf_counter()))
    results.put(sent)
    crm.db.dispose()


@dataclass
class Run:
    workers: int
    jobs: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0


def throughput(url: str, business_id: int, jobs: int, workers: int, batch: int) -> Run:
    """Queue ``jobs`` rows, then time ``workers`` worker processes draining them."""
    _queue(url, business_id, jobs)
    ctx = mp.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    procs, readies = [], []
    for _ in range(workers):
        ready = ctx.Event()
        proc = ctx.Process(target=_worker_process, args=(url, batch, ready, go, results, {}, None))
        proc.start()
        procs.append(proc)
        readies.append(ready)
    for ready in readies:
        ready.wait(120)
    started = time.perf_counter()
    go.set()
    outs = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(60)
    done = sum(o[0] for o in outs)
    ended = max(o[2] for o in outs)
    return Run(workers, done, ended - min(started, *(o[1] for o in outs)))


@dataclass
class Load:
    rate: float
    seconds: float
    queued: int
    done: int
    pruned: int
    max_rows: int
    max_waiting: int
    end_rows: int
    table_kib: float


def _table_size(crm: Any) -> float:
    with crm.db.engine.connect() as conn:
        if crm.db.dialect == "postgresql":
            return conn.execute(text("SELECT pg_total_relation_size('outbox')")).scalar() / 1024
        try:
            pages = conn.execute(text(
                "SELECT sum(pgsize) FROM dbstat WHERE name = 'outbox' OR name LIKE 'ix_outbox%' "
                "OR name LIKE 'sqlite_autoindex_outbox%'")).scalar()
            return (pages or 0) / 1024
        except Exception:  # SQLite built without dbstat: the whole file
            return Path(crm.db.engine.url.database).stat().st_size / 1024


def load(url: str, business_id: int, rate: float, seconds: float, retention: float) -> Load:
    """A producer at ``rate`` jobs/s and one pruning worker for ``seconds``; rows sampled."""
    from crmcore.outbox.models import OutboxMessage

    crm = _crm(url)
    with crm.db.transaction(unscoped=True) as session:  # start from an empty table
        session.execute(OutboxMessage.__table__.delete())
    ctx = mp.get_context("spawn")
    go, results, done_q = ctx.Event(), ctx.Queue(), ctx.Queue()
    ready_p, ready_w = ctx.Event(), ctx.Event()
    config = {"outbox_retention": retention, "outbox_prune_interval": min(1.0, retention / 2) if retention else 0.5}
    producer = ctx.Process(target=_producer_process, args=(url, business_id, rate, seconds, ready_p, go, results))
    worker = ctx.Process(target=_worker_process, args=(url, 100, ready_w, go, done_q, config, seconds + 1.0))
    producer.start()
    worker.start()
    ready_p.wait(120)
    ready_w.wait(120)
    go.set()
    started = time.perf_counter()
    max_rows = max_waiting = 0
    count = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    while time.perf_counter() - started < seconds + 1.0:
        time.sleep(0.5)
        with crm.db.session(unscoped=True) as session:
            by_status = dict(session.execute(count).all())
        max_rows = max(max_rows, sum(by_status.values()))
        max_waiting = max(max_waiting, by_status.get("pending", 0) + by_status.get("running", 0))
    queued = results.get(timeout=60)
    done, _s, _e, _b, pruned = done_q.get(timeout=120)
    producer.join(30)
    worker.join(30)
    with crm.db.session(unscoped=True) as session:
        end_rows = session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
    size = _table_size(crm)
    crm.db.dispose()
    return Load(rate, seconds, queued, done, pruned, max_rows, max_waiting, end_rows, size)


def run(database: str | None = None, jobs: int = 20_000, batch: int = 100, load_rate: float = 1000.0,
        load_seconds: float = 10.0, retention: float = 2.0) -> None:
    from benchmarks.run import Databases, machine

    print(f"outbox benchmark: {jobs:,} no-op jobs, batch {batch}; {machine()}", flush=True)
    rows: list[tuple[str, str]] = []
    targets = [("SQLite", None)] + ([("PostgreSQL", database)] if database else [])
    for label, db in targets:
        dbs = Databases(db, keep=False)
        url = dbs.new("outbox")
        try:
            business_id = _prepare(url)
            one = throughput(url, business_id, jobs, 1, batch)
            rows.append((f"{label}: 1 worker drains {one.jobs:,} jobs", f"{one.rate:,.0f} jobs/s ({one.seconds:.2f} s)"))
            print(f"  {rows[-1][0]}: {rows[-1][1]}", flush=True)
            if label == "PostgreSQL":
                two = throughput(url, business_id, jobs, 2, batch)
                rows.append((f"{label}: 2 workers drain {two.jobs:,} jobs",
                             f"{two.rate:,.0f} jobs/s ({two.seconds:.2f} s), {two.rate / one.rate:.2f}x one worker"))
                print(f"  {rows[-1][0]}: {rows[-1][1]}", flush=True)
            steady = load(url, business_id, load_rate, load_seconds, retention)
            rows.append((f"{label}: table under {steady.rate:,.0f} jobs/s for {steady.seconds:g} s, retention {retention:g} s",
                         f"{steady.queued:,} queued, {steady.done:,} done, {steady.pruned:,} pruned; at most "
                         f"{steady.max_rows:,} rows ({steady.max_waiting:,} waiting); {steady.end_rows:,} rows "
                         f"and {steady.table_kib:,.0f} KiB at the end"))
            print(f"  {rows[-1][0]}: {rows[-1][1]}", flush=True)
        finally:
            dbs.drop(url)
    stamp = time.strftime("%Y-%m-%d")
    width = max(len(r[0]) for r in rows)
    print(f"\n{stamp}; {machine()}\n")
    print(f"| {'measurement'.ljust(width)} | result |\n| {'-' * width} | --- |")
    for name, result in rows:
        print(f"| {name.ljust(width)} | {result} |")
