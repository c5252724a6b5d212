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
from sqlalchemy import Engine, event

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


def _captured_create(crm: Crm, ctx: object) -> tuple[list[tuple[str, object, bool]], int, str]:
    """The statements one ``create_party`` sends, with their parameters as the driver got them,
    and the new party's id and reference (which a replay must vary)."""
    from crmcore.parties.service import create_party

    seen: list[tuple[str, object, bool]] = []

    def capture(_conn, _cursor, statement, parameters, _context, executemany):  # noqa: ANN001
        seen.append((statement, parameters, executemany))

    event.listen(crm.db.engine, "before_cursor_execute", capture)
    try:
        party = create_party(ctx, {"kind": "organisation", "name": "Raw template", "tags": ["bench"], "custom": {}})
    finally:
        event.remove(crm.db.engine, "before_cursor_execute", capture)
    return [s for s in seen if not s[0].lstrip().upper().startswith("BEGIN")], party.id, party.reference


def _vary(value: object, party_id: int, new_id: int, reference: str, new_reference: str) -> object:
    if isinstance(value, bool):
        return value
    if value == party_id:
        return new_id
    if value == reference:
        return new_reference
    if isinstance(value, dict):
        return {k: _vary(v, party_id, new_id, reference, new_reference) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_vary(v, party_id, new_id, reference, new_reference) for v in value)
    return value


def measure_raw_create(crm: Crm, ctx: object, n: int) -> tuple[list[float], str]:
    """The database's part of a create: the statements ``create_party`` sends, replayed ``n``
    times through the driver's own connection in one transaction each (sqlite3: ``BEGIN
    IMMEDIATE``; psycopg: its own ``BEGIN``), with the party's id and reference varied. What is
    left of a create's time above this is crmcore's Python: validation, hooks, the ORM."""
    statements, party_id, reference = _captured_create(crm, ctx)
    raw = crm.db.engine.raw_connection()
    driver = raw.driver_connection
    postgresql = crm.db.dialect == "postgresql"
    if postgresql:
        driver.autocommit = False  # psycopg's own transaction handling: BEGIN before the first statement
    out = []
    try:
        for i in range(n):
            started = time.perf_counter()
            cursor = driver.cursor()
            if not postgresql:
                cursor.execute("BEGIN IMMEDIATE")
            new_id = None
            for statement, parameters, many in statements:
                args = _vary(parameters, party_id, new_id or party_id, reference, f"RAW-{i}-{uuid.uuid4().hex[:6]}")
                (cursor.executemany if many else cursor.execute)(statement, args)
                if statement.lstrip().upper().startswith("INSERT INTO PARTIES"):
                    new_id = cursor.fetchone()[0] if postgresql else cursor.lastrowid
            driver.commit()
            out.append(time.perf_counter() - started)
    finally:
        if postgresql:
            driver.autocommit = True
        raw.close()
    how = f"{len(statements)} statements + {'BEGIN, ' if postgresql else 'BEGIN IMMEDIATE, '}COMMIT"
    return out, how


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
