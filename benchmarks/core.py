"""Core service paths, measured the way a form or an API call takes them.

1. creating a party through ``create_party`` (validation, numbering, audit, timeline, hooks);
2. a stage change through ``move_stage`` with 0, 5 and 20 enabled plugins, each implementing a
   veto-hook and a react-hook: react-hooks only queued in the outbox (production: the worker runs
   them), and run inline after commit (tests, the single-process demo);
3. the dispatch overhead of one hook call through ``ctx.hooks`` with 20 plugins installed.

Each line also gives the SQL statements per call (counted on the engine, ``BEGIN`` and ``COMMIT``
not included): on PostgreSQL every statement is a round trip.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import Engine, event, select

from crmcore import hookimpl
from crmcore.config import Config
from crmcore.db import Base, Database, import_models
from crmcore.plugins.info import PluginInfo
from crmcore.plugins.manager import build_registry
from crmcore.runtime import Crm


def _stats(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[int(len(samples) * 0.95) - 1]
    return f"median {statistics.median(samples) * 1000:.3f} ms  p95 {p95 * 1000:.3f} ms  (n={len(samples)})"


class _Statements:
    """Counts the statements an engine sends (``BEGIN`` aside; ``COMMIT`` is no statement)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._seen)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip()[:5].upper() != "BEGIN":
            self.count += 1


def _timed(fn: Callable[[int], object], n: int, counter: _Statements) -> tuple[list[float], float]:
    """``n`` timed calls, and the statements sent per call."""
    out = []
    before = counter.count
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - started)
    return out, (counter.count - before) / n


class _BenchPlugin:
    """A veto-hook that allows everything and a react-hook that counts."""

    def __init__(self, i: int) -> None:
        self.PLUGIN = PluginInfo(title=f"bench {i}")
        self.calls = 0

    @hookimpl
    def crm_before_stage_change(self, ctx, record, from_stage, to_stage):
        self.calls += 1

    @hookimpl
    def crm_after_stage_change(self, ctx, record, from_stage, to_stage):
        self.calls += 1


def bench_registry() -> object:
    """A registry with the 20 benchmark plugins installed (enabled per business as measured)."""
    registry = build_registry(discover=False)
    for i in range(20):
        registry.register(f"bench-{i:02d}", _BenchPlugin(i))
    return registry


Measured = tuple[str, list[float] | None, str]


def measure_writes(crm: Crm, ctx: object, n: int) -> Iterator[Measured]:
    """``(label, samples or None, note)`` for each write path; ``crm`` must have been built with
    :func:`bench_registry`. Leaves the benchmark plugins disabled again."""
    from crmcore.parties.service import create_party
    from crmcore.pipelines.service import list_pipelines
    from crmcore.plugins.service import disable_plugin, enable_plugin
    from crmcore.records.service import create_record, move_stage

    counter = _Statements(crm.db.engine)
    try:
        samples, per_call = _timed(lambda i: create_party(ctx, {"kind": "organisation", "name": f"Party {i}",
                                                                "tags": ["bench"], "custom": {}}), n, counter)
        yield "3. create_party (one by one, the form's path)", samples, f"{per_call:.1f} statements per call"
        raw, how = measure_raw_create(crm, ctx, n)
        ratio = statistics.median(samples) / statistics.median(raw)
        yield ("3. its statements replayed by the raw driver", raw,
               f"{how}; create_party / raw = {ratio:.2f}x")
        party = create_party(ctx, {"kind": "organisation", "name": "Stage bench"})
        deal = None
        for enabled in (0, 5, 20):
            for i in range(enabled):
                if not ctx.is_enabled(f"bench-{i:02d}"):
                    enable_plugin(ctx, f"bench-{i:02d}")
            deal = create_record(ctx, "deal", {"title": "Bench deal", "party_id": party.id})
            pipeline = next(p for p in list_pipelines(ctx, "deal") if p.id == deal.pipeline_id)
            open_ids = [s.id for s in sorted(pipeline.stages, key=lambda s: s.position) if s.kind == "open"]
            modes = [("react-hooks queued", False)] + ([("react-hooks run inline", True)] if enabled else [])
            for mode, inline in modes:
                crm.config = dataclasses.replace(crm.config, outbox_inline=inline)
                samples, per_call = _timed(lambda i, deal=deal, open_ids=open_ids:
                                           move_stage(ctx, deal.id, open_ids[(i + 1) % len(open_ids)]),
                                           max(50, n // 2), counter)
                yield (f"4. move_stage, {enabled} plugins, {mode}", samples,
                       f"{per_call:.1f} statements per call")
                if enabled == 5 and not inline:
                    raw, how = measure_raw_move(crm, ctx, deal.id, open_ids, max(50, n // 2))
                    ratio = statistics.median(samples) / statistics.median(raw)
                    yield ("4. its statements replayed by the raw driver", raw,
                           f"{how}; move_stage / raw = {ratio:.2f}x")
            crm.config = dataclasses.replace(crm.config, outbox_inline=True)
        caller = ctx.hooks.crm_before_stage_change
        kwargs = {"ctx": ctx, "record": deal, "from_stage": None, "to_stage": None}
        loops = 20_000
        started = time.perf_counter()
        for _ in range(loops):
            caller(**kwargs)
        per_call = (time.perf_counter() - started) / loops
        per_impl = per_call / max(1, len(caller.get_hookimpls()))
        yield ("4. hook dispatch (pluggy relay), 20 plugins", None,
               f"{per_call * 1e6:.1f} µs per call ({per_impl * 1e6:.2f} µs per implementation)")
        started = time.perf_counter()
        for _ in range(loops):
            ctx.validate("crm_before_stage_change", **kwargs)
        per_call = (time.perf_counter() - started) / loops
        yield "4. ctx.validate (each plugin isolated), 20 plugins", None, f"{per_call * 1e6:.1f} µs per call"
    finally:
        counter.close()
        for i in range(20):
            if ctx.is_enabled(f"bench-{i:02d}"):
                disable_plugin(ctx, f"bench-{i:02d}")


def _captured(crm: Crm, call: Callable[[], object]) -> list[tuple[str, object, bool]]:
    """The statements ``call`` sends (``BEGIN`` aside), with their parameters as the driver got
    them."""
    seen: list[tuple[str, object, bool]] = []

    def capture(_conn, _cursor, statement, parameters, _context, executemany):  # noqa: ANN001
        # SQLAlchemy's "insertmanyvalues" (a multi-row INSERT ... RETURNING) reports executemany
        # with one flat parameter tuple: the driver runs it as one execute
        many = executemany and isinstance(parameters, list | tuple) and bool(parameters) \
            and isinstance(parameters[0], list | tuple | dict)
        seen.append((statement, parameters, many))

    event.listen(crm.db.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(crm.db.engine, "before_cursor_execute", capture)
    return [s for s in seen if not s[0].lstrip().upper().startswith("BEGIN")]


def _substitute(value: object, mapping: dict[object, object]) -> object:
    """``value`` with every part found in ``mapping`` replaced (booleans kept: True == 1)."""
    if isinstance(value, dict):
        return {k: _substitute(v, mapping) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_substitute(v, mapping) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        return value
    return mapping.get(value, value)


Replacements = Callable[[int, int | None], dict[object, object]]


def _replay(crm: Crm, transactions: list[list[tuple[str, object, bool]]], n: int,
            replacements: Replacements) -> tuple[list[float], str]:
    """``n`` transactions through the driver's own connection, cycling through the captured
    ``transactions``, in one transaction each (sqlite3: ``BEGIN IMMEDIATE``; psycopg: its own
    ``BEGIN``). ``replacements(i, new_party_id)`` gives the values to vary in call ``i`` (unique
    keys, the id of a party inserted earlier in the same transaction)."""
    raw = crm.db.engine.raw_connection()
    driver = raw.driver_connection
    postgresql = crm.db.dialect == "postgresql"
    if postgresql:
        driver.autocommit = False  # psycopg's own transaction handling: BEGIN before the first statement
    out = []
    try:
        for i in range(n):
            statements = transactions[i % len(transactions)]
            started = time.perf_counter()
            cursor = driver.cursor()
            if not postgresql:
                cursor.execute("BEGIN IMMEDIATE")
            new_id = None
            for statement, parameters, many in statements:
                args = _substitute(parameters, replacements(i, new_id))
                (cursor.executemany if many else cursor.execute)(statement, args)
                if statement.lstrip().upper().startswith("INSERT INTO PARTIES"):
                    new_id = cursor.fetchone()[0] if postgresql else cursor.lastrowid
            driver.commit()
            out.append(time.perf_counter() - started)
    finally:
        if postgresql:
            driver.autocommit = True
        raw.close()
    count = "/".join(sorted({str(len(t)) for t in transactions}))
    return out, f"{count} statements + {'BEGIN, ' if postgresql else 'BEGIN IMMEDIATE, '}COMMIT"


def measure_raw_create(crm: Crm, ctx: object, n: int) -> tuple[list[float], str]:
    """The database's part of a create: the statements ``create_party`` sends, replayed ``n``
    times by the raw driver with the party's id and reference varied. What is left of a create's
    time above this is crmcore's Python: validation, hooks, the ORM."""
    from crmcore.parties.service import create_party

    made = []
    statements = _captured(crm, lambda: made.append(create_party(
        ctx, {"kind": "organisation", "name": "Raw template", "tags": ["bench"], "custom": {}})))
    party_id, reference = made[0].id, made[0].reference

    def replacements(i: int, new_id: int | None) -> dict[object, object]:
        return {party_id: new_id or party_id, reference: f"RAW-{i}-{uuid.uuid4().hex[:6]}"}

    return _replay(crm, [statements], n, replacements)


def measure_raw_move(crm: Crm, ctx: object, record_id: int, stage_ids: list[int], n: int) -> tuple[list[float], str]:
    """The database's part of a stage change: the statements of two ``move_stage`` calls (there
    and back), replayed ``n`` times in turn by the raw driver with the queued hook jobs'
    idempotency keys made unique."""
    from crmcore.outbox.models import OutboxMessage
    from crmcore.records.service import move_stage

    def keys() -> set[str]:
        return set(ctx.session.scalars(select(OutboxMessage.idempotency_key).where(OutboxMessage.business_id == ctx.business_id)))

    move_stage(ctx, record_id, stage_ids[0])
    before = keys()
    there = _captured(crm, lambda: move_stage(ctx, record_id, stage_ids[1]))
    back = _captured(crm, lambda: move_stage(ctx, record_id, stage_ids[0]))
    captured = keys() - before
    ctx.session.rollback()

    def replacements(i: int, _new_id: int | None) -> dict[object, object]:
        return {key: f"{key}-raw{i}" for key in captured}

    return _replay(crm, [there, back], n, replacements)


def bench_installation(database: str | None) -> tuple[Crm, object]:
    """A fresh schema on ``database`` (default: a temporary SQLite file) with the benchmark
    plugins installed, one business, and a context acting as its owner."""
    from crmcore.auth.service import create_user
    from crmcore.tenancy.service import create_business

    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    url = database or f"sqlite:///{tmp / 'bench.sqlite'}"
    config = Config(instance_path=tmp, database_url=url, secrets_key=Fernet.generate_key().decode())
    crm = Crm(config=config, db=Database(url), registry=bench_registry())
    import_models()
    Base.metadata.drop_all(crm.db.engine)
    Base.metadata.create_all(crm.db.engine)
    slug = f"bench{uuid.uuid4().hex[:6]}"
    create_user(crm, f"owner@{slug}.example", "benchmark password")
    create_business(crm, slug, "Bench", owner_email=f"owner@{slug}.example")
    return crm, crm.context(slug, f"owner@{slug}.example")


def run(database: str | None, n: int) -> None:
    crm, ctx = bench_installation(database)
    print(f"database: {crm.db.dialect}")
    for label, samples, note in measure_writes(crm, ctx, n):
        print(f"{label:<52}{_stats(samples) + '  ' if samples else ''}{note}")
    ctx.close()
