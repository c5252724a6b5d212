"""What fewer round trips buy a write: ``create_party`` and ``move_stage`` (5 plugins, react-hooks
queued) with the two round-trip savings on and off, measured in one process, in alternating
blocks, so that a noisy machine weighs on both the same.

"off" is the code as it was before: append-only rows (audit entry, timeline event, hook jobs)
written as they come, one statement each, and psycopg's own ``BEGIN`` as a message of its own.
"on" is the code as it is: those rows written at commit in one statement (crmcore.journal) and
``BEGIN`` sent with the transaction's first statement (crmcore.db). Round trips per call are
counted: statements seen by the engine, plus ``COMMIT``, plus ``BEGIN`` where it goes alone.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import event

from benchmarks.core import _Statements, bench_registry
from crmcore import journal
from crmcore.config import Config
from crmcore.db import Base, Database, import_models
from crmcore.runtime import Crm

_appended = journal.append


def _append_at_once(session, table, rows, *, on_ids=None):  # noqa: ANN001, ANN202
    """The "off" mode: each call's rows are written at once, as before crmcore.journal."""
    if not session.in_transaction():
        session.connection()
    journal._write(session, [journal._Rows(table, [dict(r) for r in rows], on_ids)])


def run(database: str | None, blocks: int, per_block: int) -> None:
    from crmcore.auth.service import create_user
    from crmcore.parties.service import create_party
    from crmcore.pipelines.service import list_pipelines
    from crmcore.plugins.service import enable_plugin
    from crmcore.records.service import create_record, move_stage
    from crmcore.tenancy.service import create_business

    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    url = database or f"sqlite:///{tmp / 'bench.sqlite'}"
    config = Config(instance_path=tmp, database_url=url, secrets_key=Fernet.generate_key().decode())
    crm = Crm(config=config, db=Database(url), registry=bench_registry())
    import_models()
    Base.metadata.drop_all(crm.db.engine)
    Base.metadata.create_all(crm.db.engine)
    postgresql = crm.db.dialect == "postgresql"
    slug = f"bench{uuid.uuid4().hex[:6]}"
    create_user(crm, f"owner@{slug}.example", "benchmark password")
    create_business(crm, slug, "Bench", owner_email=f"owner@{slug}.example")
    ctx = crm.context(slug, f"owner@{slug}.example")
    party = create_party(ctx, {"kind": "organisation", "name": "Stage bench"})
    for i in range(5):
        enable_plugin(ctx, f"bench-{i:02d}")
    deal = create_record(ctx, "deal", {"title": "Bench deal", "party_id": party.id})
    deal_id, pipeline_id = deal.id, deal.pipeline_id
    pipeline = next(p for p in list_pipelines(ctx, "deal") if p.id == pipeline_id)
    stages = [s.id for s in sorted(pipeline.stages, key=lambda s: s.position) if s.kind == "open"]
    crm.config = dataclasses.replace(crm.config, outbox_inline=False)

    mode = {"off": False}

    @event.listens_for(crm.db.engine, "checkout")
    def _psycopg_begins(dbapi_conn, _record, _proxy):  # noqa: ANN001, ANN202
        if mode["off"] and postgresql and dbapi_conn.info.transaction_status == 0:
            dbapi_conn.autocommit = False  # psycopg's own BEGIN, alone, before the first statement

    def use(off: bool) -> None:
        mode["off"] = off
        journal.append = _append_at_once if off else _appended
        ctx.close()

    counter = _Statements(crm.db.engine)
    samples: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], int] = {}
    k = 0
    try:
        for block in range(blocks):
            for name in (("off", "on") if block % 2 == 0 else ("on", "off")):
                use(name == "off")
                for what in ("create_party", "move_stage, 5 plugins"):
                    before = counter.count
                    for _ in range(per_block):
                        k += 1
                        started = time.perf_counter()
                        if what == "create_party":
                            create_party(ctx, {"kind": "organisation", "name": f"Party {k}", "tags": ["bench"]})
                        else:
                            move_stage(ctx, deal_id, stages[k % len(stages)])
                        samples.setdefault((what, name), []).append(time.perf_counter() - started)
                    counts[(what, name)] = counts.get((what, name), 0) + counter.count - before
    finally:
        counter.close()
        use(False)
        journal.append = _appended
        ctx.close()
    print(f"database: {crm.db.dialect}; {blocks} alternating blocks of {per_block} calls per mode")
    for (what, name), values in samples.items():
        values.sort()
        statements = counts[(what, name)] / len(values)
        trips = statements + 1 + (1 if name == "off" else 0) if postgresql else None
        trip_note = f", {trips:.0f} round trips" if trips is not None else ""
        print(f"{what:<24}{name:<5}median {statistics.median(values) * 1000:.3f} ms  "
              f"p95 {values[int(len(values) * 0.95)] * 1000:.3f} ms  {statements:.1f} statements{trip_note}")
