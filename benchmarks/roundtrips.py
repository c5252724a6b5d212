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
import time

from sqlalchemy import event

from benchmarks.core import _Statements, bench_installation
from crmcore import journal

_appended = journal.append


def _append_at_once(session, table, rows, *, on_ids=None):  # noqa: ANN001, ANN202
    """The "off" mode: each call's rows are written at once, as before crmcore.journal."""
    _appended(session, table, rows, on_ids=on_ids)
    journal.write(session)


def run(database: str | None, blocks: int, per_block: int) -> None:
    from crmcore.parties.service import create_party
    from crmcore.pipelines.service import list_pipelines
    from crmcore.plugins.service import enable_plugin
    from crmcore.records.service import create_record, move_stage

    crm, ctx = bench_installation(database)
    postgresql = crm.db.dialect == "postgresql"
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
