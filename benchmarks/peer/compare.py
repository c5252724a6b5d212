"""``python -m benchmarks peer --size 100k [--database URL]``: crmcore and Django-CRM side by side.

One run, one machine, the same data, the same engine, one after the other (never at once: they
would share the two cores):

1. crmcore, through the harness of ``benchmarks.run``: a scratch database, the business with its
   ten sales reps, ``import_parties`` of N dataset rows, N/2 seeded deals, ``ANALYZE``; then the
   paths the peer also has, through crmcore's API (Flask test client, bearer token);
2. the deals and the search terms of that run are written out for the peer (the terms are the
   ones ``benchmarks.run.search_terms`` draws from the data, so both search for the same strings);
3. the peer in its own virtualenv (``venv.py``) on a second scratch database of the same engine:
   ``driver.py`` loads the same rows (same generator, same seed) and measures its own paths;
4. one table: each side's median / p95 (and the load average when it was taken) and the ratio.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select, text

from benchmarks.dataset import Dataset
from benchmarks.peer import venv
from benchmarks.peer.driver import BOOT
from benchmarks.peer.figures import Figure, load_average, side_by_side, timings
from benchmarks.run import (
    PASSWORD,
    Databases,
    Installation,
    Table,
    bench_import,
    build,
    counting,
    machine,
    parse_size,
    search_terms,
    seed_deals,
    statuses,
    timed,
)
from crmcore.db import SQLITE_CACHE_KIB, SQLITE_MMAP_BYTES

#: the repository root, put at the end of the peer's ``sys.path`` (so that none of its folders
#: can shadow one of the peer's top-level packages: it installs ``common``, ``tasks``, ``docs``...)
ROOT = Path(__file__).resolve().parents[2]
SEED = 7  # benchmarks.dataset.Dataset's default, which benchmarks.run imports with
#: what crmcore.db sets on its SQLite connections, given to the peer's connections too
SQLITE_PRAGMAS = ["journal_mode=WAL", "synchronous=NORMAL", f"mmap_size={SQLITE_MMAP_BYTES}",
                  f"cache_size=-{SQLITE_CACHE_KIB}", "foreign_keys=ON"]


@dataclasses.dataclass
class Settings:
    calls: int = 30
    creates: int = 300
    api_creates: int = 100


def run(size: str, database: str | None, *, keep: bool = False, settings: Settings | None = None,
        venv_path: Path | None = None) -> str:
    settings = settings or Settings()
    n = parse_size(size)
    python = venv.ensure(venv_path)  # first: a failing install must not cost a crmcore build
    dbs = Databases(database, keep)
    print(f"peer comparison: {n:,} parties; {machine()}; load average {load_average()}", flush=True)
    try:
        started = time.perf_counter()
        core, spec = measure_crmcore(dbs, n, settings)
        print(f"crmcore side done in {time.perf_counter() - started:.0f} s", flush=True)
        started = time.perf_counter()
        peer, about = measure_peer(dbs, python, spec)
        print(f"peer side done in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        if not keep:  # the deals file, the spec, the peer's figures (SQLite files are dropped already)
            shutil.rmtree(dbs.tmp, ignore_errors=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(f"{k} {v}" for k, v in about.items() if k not in ("engine", "executable"))
    out = (f"\n{stamp}; {machine()}; {n:,} parties on {about.get('engine')}\npeer: {versions}\n\n"
           f"{side_by_side(core, peer)}")
    print(out, flush=True)
    return out


# --------------------------------------------------------------------------------------------
# crmcore


def measure_crmcore(dbs: Databases, n: int, settings: Settings) -> tuple[dict[str, Figure], dict[str, Any]]:
    from benchmarks.core import bench_registry
    from crmcore.web import create_app

    url = dbs.new("core")
    inst = build(url, dbs.tmp, registry=bench_registry())
    figures: dict[str, Figure] = {}

    def add(figure: Figure) -> None:
        figures[figure.key] = figure
        shown = (f"{figure.median_ms:.2f} / {figure.p95_ms or 0:.2f} ms" if figure.median_ms is not None
                 else figure.rate)
        print(f"  crmcore: {figure.key:<24} {shown:<24} {figure.note} (load {figure.load})", flush=True)

    rep_emails, status_values = inst.reps, statuses(inst.ctx)
    seconds = bench_import(inst, Dataset(rep_emails, status_values, seed=SEED), n, _Quiet())
    add(Figure("bulk", rate=f"{n / seconds:,.0f} parties/s", load=load_average(),
               note=f"{n:,} parties in {seconds:.1f} s (checks + writes + search index)"))
    seed_deals(inst, n)
    analyze(inst)
    deals = export_deals(inst, dbs.tmp / "deals.jsonl")
    terms = search_terms(inst)
    create_orm(inst, settings, add)
    app = create_app(crm=inst.crm)
    api = ApiClient(inst, app)
    api_figures(inst, api, settings, terms, add)
    inst.crm.db.dispose()
    dbs.drop(url)
    spec = {"n": n, "seed": SEED, "owner": inst.owner, "password": PASSWORD, "reps": rep_emails,
            "statuses": status_values, "deals": str(deals), "terms": {k: v for k, v in terms.items()
                                                                     if k != "exact email"},
            "calls": settings.calls, "creates": settings.creates, "api_creates": settings.api_creates,
            "sqlite_pragmas": SQLITE_PRAGMAS}
    return figures, spec


class _Quiet(Table):
    """``benchmarks.run.Table`` without its printing: this command prints its own lines."""

    def add(self, figure: Any) -> Any:
        self.rows.append(figure)
        return figure


def analyze(inst: Installation) -> None:
    """As ``benchmarks.run.run`` does after its build."""
    if inst.crm.db.dialect == "postgresql":
        with inst.crm.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
    else:
        with inst.crm.db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()


def export_deals(inst: Installation, path: Path) -> Path:
    """The run's deals, one JSON object a line, as ``mapping.map_deal`` reads them: the party by
    its email (unique in the data), the owner by email, open deals by their stage's position
    among the open stages of their pipeline."""
    from crmcore.auth.models import User
    from crmcore.parties.models import ContactMechanism
    from crmcore.pipelines.models import Stage
    from crmcore.records.models import Record

    session = inst.ctx.session
    emails: dict[int, str] = {}
    for party_id, value in session.execute(
            select(ContactMechanism.party_id, ContactMechanism.value)
            .where(ContactMechanism.party_id.is_not(None), ContactMechanism.kind == "email")
            .order_by(ContactMechanism.id.desc())):
        emails[party_id] = value  # descending: the first email of a party wins
    owners = dict(session.execute(select(User.id, User.email)).all())
    open_position: dict[int, int] = {}
    opened: dict[int, int] = {}
    for stage_id, pipeline_id, kind in session.execute(
            select(Stage.id, Stage.pipeline_id, Stage.kind).order_by(Stage.pipeline_id, Stage.position)):
        if kind == "open":
            open_position[stage_id] = opened.get(pipeline_id, 0)
            opened[pipeline_id] = open_position[stage_id] + 1
    with path.open("w") as out:
        for row in session.execute(select(Record.title, Record.party_id, Record.owner_id, Record.amount,
                                          Record.currency, Record.status, Record.stage_id, Record.closed_at)
                                   .where(Record.type == "deal").order_by(Record.id)):
            out.write(json.dumps({
                "title": row.title, "party_email": emails[row.party_id], "owner_email": owners.get(row.owner_id, ""),
                "amount": str(row.amount), "currency": row.currency, "status": row.status,
                "open_position": open_position.get(row.stage_id),
                "closed_at": row.closed_at.isoformat() if row.closed_at else None}) + "\n")
    session.rollback()
    return path


def create_orm(inst: Installation, settings: Settings, add: Any) -> None:
    from benchmarks.core import measure_writes

    writes = measure_writes(inst.crm, inst.ctx, settings.creates)
    try:
        _label, samples, note = next(writes)  # create_party, the first path it measures
    finally:
        writes.close()
    add(timings("create_orm", samples, note="create_party (checks, numbering, audit, timeline, hooks)"))
    add(Figure("create_orm_statements", note=f"{note.split()[0]} statements", load=load_average()))


class ApiClient:
    """crmcore's API through the Flask test client, with a bearer token of the owner."""

    def __init__(self, inst: Installation, app: Any) -> None:
        from crmcore.auth.service import create_api_token

        _row, token = create_api_token(inst.ctx, "peer comparison")
        inst.ctx.session.commit()
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, url: str) -> dict[str, Any]:
        response = self.client.get(url, headers=self.headers)
        if response.status_code != 200:
            raise SystemExit(f"crmcore GET {url}: {response.status_code} {response.get_data(as_text=True)[:300]}")
        return response.get_json()

    def post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(url, json=body, headers=self.headers)
        if response.status_code != 201:
            raise SystemExit(f"crmcore POST {url}: {response.status_code} {response.get_data(as_text=True)[:300]}")
        return response.get_json()


def api_figures(inst: Installation, api: ApiClient, settings: Settings, terms: dict[str, list[str]],
                add: Any) -> None:
    from crmcore.paging import encode_cursor

    def create(i: int) -> None:
        api.post("/api/v1/parties", {
            "kind": "organisation", "name": f"Api party {i}", "tags": ["bench"],
            "mechanisms": [{"kind": "email", "value": f"api{i}@bench.example"}],
            "addresses": [{"line1": "1 Benchstraat", "postal_code": "9000", "city": "Gent", "country": "BE"}]})

    add(timings("create_api", timed(create, settings.api_creates),
                note="POST /api/v1/parties (checks, party, email, address, tag; answers the details)"))
    base = "/api/v1/parties?tag=dealer&custom.segment=smb"
    first = api.get(base + "&limit=10")
    total = first["total"]
    deep = base + f"&limit=10&cursor={quote(encode_cursor(['t', 0]))}"
    for key, url in (("list_first", base + "&limit=10"), ("list_deep", deep), ("list_50", base + "&limit=50")):
        rows = len(api.get(url)["items"])
        add(timings(key, timed(lambda _i, url=url: api.get(url), settings.calls),
                    note=f"{rows} rows, count {total['count']:,}{'+' if total['capped'] else ''} (capped), by name"))
    engine = inst.crm.db.engine
    for limit in (10, 100):
        with counting(engine) as seen:
            api.get(base + f"&limit={limit}")
        add(Figure(f"statements_{limit}", note=f"{seen.count} statements", load=load_average()))
    timings_seen = _StatementTimes(engine)
    try:
        api.get(base + "&limit=10")
    finally:
        timings_seen.close()
    counts = [s for sql, s in timings_seen.seen if "count(" in sql.lower()]
    add(Figure("count", sum(counts) * 1000, None, load=load_average(),
               note=f"{len(counts)} capped count (stops at 1,000 matches)"))
    for label in ("name prefix", "name substring", "email prefix", "email substring"):
        samples, hits = [], []
        for term in terms[label]:
            url = f"/api/v1/parties?q={quote(term)}&limit=10"
            api.get(url)
            began = time.perf_counter()
            answer = api.get(url)
            samples.append(time.perf_counter() - began)
            hits.append(answer["total"]["count"] if answer["total"] else len(answer["items"]))
        add(timings(f"search_{label.replace(' ', '_')}", samples,
                    note=f"{len(samples)} terms, FTS5/trigram over names, emails and phones of parties and "
                         f"contacts, matches median {statistics.median(hits):,.0f} (capped)"))


class _StatementTimes:
    """The statements an engine sends, with their durations (cursor execute to return)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.engine = engine
        self.seen: list[tuple[str, float]] = []
        self._started: list[float] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_args: Any) -> None:
        self._started.append(time.perf_counter())

    def _after(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append((statement, time.perf_counter() - self._started.pop()))

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


# --------------------------------------------------------------------------------------------
# the peer


def measure_peer(dbs: Databases, python: Path, spec: dict[str, Any]) -> tuple[dict[str, Figure], dict[str, Any]]:
    url = dbs.new("peer")
    spec_path, out_path = dbs.tmp / "peer-spec.json", dbs.tmp / "peer-figures.json"
    spec_path.write_text(json.dumps(spec))
    # the URL travels in the environment, not on the command line (`ps` shows arguments)
    env = {**os.environ, "PEER_DATABASE_URL": url, "PEER_MEDIA_ROOT": str(dbs.tmp / "peer-media"),
           "DJANGO_SETTINGS_MODULE": "benchmarks.peer.settings"}
    env.pop("PYTHONPATH", None)
    try:
        subprocess.run([str(python), "-c", BOOT, str(ROOT), "--spec", str(spec_path), "--out", str(out_path)],
                       env=env, cwd=dbs.tmp, check=True)
        result = json.loads(out_path.read_text())
    finally:
        dbs.drop(url)
    return {f["key"]: Figure.from_dict(f) for f in result["figures"]}, result["about"]
