"""Core service paths, measured the way a form or an API call takes them.

1. creating a party through ``create_party`` (validation, numbering, audit, timeline, hooks);
2. a stage change through ``move_stage`` with 0, 5 and 20 enabled plugins, each implementing a
   veto-hook and a react-hook (react-hooks queued in the outbox; run inline here as today);
3. the dispatch overhead of one hook call through ``ctx.hooks`` with 20 plugins installed.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

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


def _timed(fn: Callable[[int], object], n: int) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - started)
    return out


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


def _plugin(i: int) -> _BenchPlugin:
    return _BenchPlugin(i)


def run(database: str | None, n: int) -> None:
    from crmcore.auth.service import create_user
    from crmcore.parties.service import create_party
    from crmcore.plugins.service import enable_plugin
    from crmcore.records.service import create_record, move_stage
    from crmcore.tenancy.service import create_business

    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    url = database or f"sqlite:///{tmp / 'bench.sqlite'}"
    registry = build_registry(discover=False)
    plugins = [_plugin(i) for i in range(20)]
    for i, plugin in enumerate(plugins):
        registry.register(f"bench-{i:02d}", plugin)
    config = Config(instance_path=tmp, database_url=url, secrets_key=Fernet.generate_key().decode())
    crm = Crm(config=config, db=Database(url), registry=registry)
    import_models()
    Base.metadata.drop_all(crm.db.engine)
    Base.metadata.create_all(crm.db.engine)
    print(f"database: {crm.db.dialect}")
    slug = f"bench{uuid.uuid4().hex[:6]}"
    create_user(crm, f"owner@{slug}.example", "benchmark password")
    create_business(crm, slug, "Bench", owner_email=f"owner@{slug}.example")
    ctx = crm.context(slug, f"owner@{slug}.example")

    samples = _timed(lambda i: create_party(ctx, {"kind": "organisation", "name": f"Party {i}",
                                                  "tags": ["bench"], "custom": {}}), n)
    print(f"create_party:                                     {_stats(samples)}")

    party = create_party(ctx, {"kind": "organisation", "name": "Stage bench"})
    for enabled in (0, 5, 20):
        for i in range(enabled):
            enable_plugin(ctx, f"bench-{i:02d}")
        deal = create_record(ctx, "deal", {"title": "Bench deal", "party_id": party.id})
        from crmcore.pipelines.service import list_pipelines

        pipeline = next(p for p in list_pipelines(ctx, "deal") if p.id == deal.pipeline_id)
        open_ids = [s.id for s in sorted(pipeline.stages, key=lambda s: s.position) if s.kind == "open"]
        samples = _timed(lambda i, deal=deal, open_ids=open_ids:
                         move_stage(ctx, deal.id, open_ids[(i + 1) % len(open_ids)]), max(50, n // 2))
        print(f"move_stage, {enabled:2d} plugins, react-hooks run inline:  {_stats(samples)}")
        if enabled:
            crm.config = dataclasses.replace(crm.config, outbox_inline=False)
            samples = _timed(lambda i, deal=deal, open_ids=open_ids:
                             move_stage(ctx, deal.id, open_ids[(i + 1) % len(open_ids)]), max(50, n // 2))
            crm.config = dataclasses.replace(crm.config, outbox_inline=True)
            print(f"move_stage, {enabled:2d} plugins, react-hooks queued only: {_stats(samples)}")

    caller = ctx.hooks.crm_before_stage_change
    kwargs = {"ctx": ctx, "record": deal, "from_stage": None, "to_stage": None}
    loops = 20_000
    started = time.perf_counter()
    for _ in range(loops):
        caller(**kwargs)
    per_call = (time.perf_counter() - started) / loops
    per_impl = per_call / max(1, len(caller.get_hookimpls()))
    print(f"hook dispatch (pluggy relay), 20 plugins: {per_call * 1e6:.1f} µs per call ({per_impl * 1e6:.2f} µs per implementation)")
    started = time.perf_counter()
    for _ in range(loops):
        ctx.validate("crm_before_stage_change", **kwargs)
    per_call = (time.perf_counter() - started) / loops
    print(f"ctx.validate (isolated calls), 20 plugins: {per_call * 1e6:.1f} µs per call")
    ctx.close()
