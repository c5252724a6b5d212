"""``python -m benchmarks run --size 100k|1m [--database URL]``: crmcore at a million parties.

Builds one business with N parties through the project's import path (contacts, addresses, tags,
custom values, sales reps) and N/2 deals, then measures what issue 5 asks and prints a table:

1. bulk import through :func:`crmcore.parties.bulk.import_parties` (validation included);
2. the same rows inserted by raw ``sqlite3.executemany`` / psycopg ``COPY`` into the same
   tables of a second, empty database of the same schema (the physical limit), and the ratio;
3. one-by-one ``create_party`` (the path a form takes);
4. ``move_stage`` with 0, 5 and 20 enabled plugins and the hook dispatch overhead;
5. the party list (service, Flask test client, real HTTP server) filtered by status + tag +
   custom field, sorted by name, first and deep page, with statements per request;
6. search by name / email, prefix and substring;
7. the deals board of a pipeline with 50,000 open deals;
8. API list throughput through gunicorn (2 workers) with 16 connections.

On PostgreSQL the harness creates its own databases next to the one ``--database`` names (and
drops them unless ``--keep``), so the database you point it at is left as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import random
import resource
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from benchmarks.dataset import SEGMENTS, Dataset
from crmcore.config import Config
from crmcore.db import Base, Database, import_models
from crmcore.plugins.manager import build_registry
from crmcore.runtime import Crm

PASSWORD = "benchmark password"
#: tables the import fills, parents first (the raw copy goes in this order)
IMPORT_TABLES = ("tags", "parties", "party_tags", "party_sales_reps", "contacts", "contact_mechanisms", "addresses")
BOARD_DEALS = 50_000


# --------------------------------------------------------------------------------------------
# figures


@dataclasses.dataclass
class Figure:
    name: str
    median_ms: float | None = None
    p95_ms: float | None = None
    rate: str = ""
    note: str = ""


class Table:
    def __init__(self) -> None:
        self.rows: list[Figure] = []

    def add(self, figure: Figure) -> Figure:
        self.rows.append(figure)
        ms = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"  {figure.name:<62} {ms(figure.median_ms):>9} {ms(figure.p95_ms):>9}  {figure.rate:<18} "
              f"{figure.note}", flush=True)
        return figure

    def timings(self, name: str, samples: list[float], note: str = "") -> Figure:
        ordered = sorted(samples)
        p95 = ordered[max(0, int(len(ordered) * 0.95 + 0.5) - 1)]
        return self.add(Figure(name, statistics.median(ordered) * 1000, p95 * 1000, note=note))

    def markdown(self) -> str:
        out = ["| measurement | median ms | p95 ms | rate | note |", "| --- | ---: | ---: | --- | --- |"]
        for f in self.rows:
            ms = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
            out.append(f"| {f.name} | {ms(f.median_ms)} | {ms(f.p95_ms)} | {f.rate} | {f.note} |")
        return "\n".join(out)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[int], Any], n: int, warmup: int = 3) -> list[float]:
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - started)
    return out


@contextlib.contextmanager
def counting(engine: Any) -> Iterator[Any]:
    """The statements ``engine`` sends inside the block (``.count``), as benchmarks.core counts them."""
    from benchmarks.core import _Statements

    counter = _Statements(engine)
    try:
        yield counter
    finally:
        counter.close()


# --------------------------------------------------------------------------------------------
# databases


class Databases:
    """SQLite files in a temporary folder, or scratch PostgreSQL databases beside ``--database``."""

    def __init__(self, database: str | None, keep: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="crm-bench-"))
        self.pg = make_url(database) if database else None
        if self.pg is not None and self.pg.drivername in ("postgresql", "postgres"):
            self.pg = self.pg.set(drivername="postgresql+psycopg")
        self.keep = keep
        self.made: list[str] = []

    def new(self, name: str) -> str:
        if self.pg is None:
            return f"sqlite:///{self.tmp / f'{name}.sqlite'}"
        db_name = f"crm_bench_{name}_{os.getpid()}"
        admin = create_engine(self.pg.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}"'))
            conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        admin.dispose()
        self.made.append(db_name)
        return self.pg.set(database=db_name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        if self.keep:
            return
        if self.pg is None:
            path = Path(make_url(url).database or "")
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
            return
        name = make_url(url).database
        admin = create_engine(self.pg.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclasses.dataclass
class Installation:
    crm: Crm
    ctx: Any
    slug: str
    owner: str
    reps: list[str]
    url: str


def build(url: str, tmp: Path, registry: Any = None) -> Installation:
    """A fresh schema, one business with 10 sales reps and two custom fields of parties. Run
    the same way on two databases, it gives them the same ids (the raw copy relies on it)."""
    from crmcore.auth.service import create_user
    from crmcore.fields import service as fields
    from crmcore.tenancy.service import add_member, create_business

    config = Config(instance_path=tmp, database_url=url, secret_key=Fernet.generate_key().decode(),
                    secrets_key=Fernet.generate_key().decode())
    crm = Crm(config=config, db=Database(url), registry=registry or build_registry(discover=False))
    import_models()
    Base.metadata.drop_all(crm.db.engine)
    Base.metadata.create_all(crm.db.engine)
    slug, owner = "bench", "owner@bench.example"
    create_user(crm, owner, PASSWORD)
    create_business(crm, slug, "Benchmark Equipment", owner_email=owner)
    ctx = crm.context(slug, owner)
    reps = []
    for i in range(10):
        email = f"rep{i}@bench.example"
        create_user(crm, email, PASSWORD)
        add_member(ctx, email)
        reps.append(email)
    fields.define_field(ctx, "party", {"key": "segment", "label": "Segment", "type": "choice", "options": {
        "choices": [{"value": v, "label": v.upper()} for v in SEGMENTS]}})
    fields.define_field(ctx, "party", {"key": "employees", "label": "Employees", "type": "integer"})
    return Installation(crm, ctx, slug, owner, reps, url)


def statuses(ctx: Any) -> list[str]:
    from crmcore.lists import service as lists

    return [o.value for o in lists.list_options(ctx, "prospect_status")]


# --------------------------------------------------------------------------------------------
# 1 + 2: bulk import and the raw copy


def bench_import(inst: Installation, dataset: Dataset, n: int, table: Table) -> float:
    from crmcore.parties.bulk import import_parties

    started = time.perf_counter()
    report = import_parties(inst.ctx, dataset.rows(n))
    seconds = time.perf_counter() - started
    assert report.created == n, report
    table.add(Figure("1. bulk import (import_parties: checks + writes)", rate=f"{n / seconds:,.0f} parties/s",
                     note=f"{n:,} parties, {report.contacts:,} contacts in {seconds:.1f} s; "
                          f"peak RSS {peak_rss_mb():,.0f} MB"))
    return seconds


def bench_raw(inst: Installation, raw_url: str, tmp: Path, n: int, import_seconds: float, table: Table) -> None:
    """Copy the rows the import wrote into the same tables of an empty database built the same
    way (same business, users, options, field ids), timing only the inserts, the search index
    fill (SQLite: the same one-statement fill the import uses) and the commit."""
    from crmcore.parties import search

    target = build(raw_url, tmp / "raw")
    target.crm.db.dispose()
    postgres = target.crm.db.dialect == "postgresql"
    chunk = 20_000
    spent = 0.0
    rows_total = 0
    with inst.crm.db.engine.connect() as read, \
            target.crm.db.engine.connect().execution_options(crm_write=True) as conn:
        started = time.perf_counter()
        conn.begin()
        cursor = conn.connection.driver_connection.cursor()
        indexing = search.bulk_insert(conn)
        indexing.__enter__()
        spent += time.perf_counter() - started
        for name in IMPORT_TABLES:
            columns = list(Base.metadata.tables[name].columns.keys())
            names = ", ".join(columns)
            key = "party_id" if name in ("party_tags", "party_sales_reps") else "id"
            last = None
            while True:
                stmt = f"SELECT {names} FROM {name} WHERE business_id = :b"
                params: dict[str, Any] = {"b": inst.ctx.business_id, "n": chunk}
                if last is not None:
                    stmt += f" AND {key} > :last"
                    params["last"] = last
                batch = [tuple(_plain(v) for v in row)
                         for row in read.execute(text(stmt + f" ORDER BY {key} LIMIT :n"), params)]
                if not batch:
                    break
                last = batch[-1][columns.index(key)]
                started = time.perf_counter()
                if postgres:
                    with cursor.copy(f"COPY {name} ({names}) FROM STDIN") as copy:
                        for row in batch:
                            copy.write_row(row)
                else:
                    marks = ", ".join("?" * len(columns))
                    cursor.executemany(f"INSERT INTO {name} ({names}) VALUES ({marks})", batch)
                spent += time.perf_counter() - started
                rows_total += len(batch)
                if len(batch) < chunk:
                    break
        started = time.perf_counter()
        indexing.__exit__(None, None, None)
        conn.commit()
        spent += time.perf_counter() - started
    how = "psycopg COPY" if postgres else "sqlite3 executemany"
    table.add(Figure(f"2. the same rows by raw {how} (physical limit)", rate=f"{n / spent:,.0f} parties/s",
                     note=f"{rows_total:,} rows in {spent:.1f} s; import / raw = {import_seconds / spent:.2f}x"))


def _plain(value: Any) -> Any:
    """DBAPI values as the raw driver takes them (JSON documents as text)."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


# --------------------------------------------------------------------------------------------
# deals (setup, not measured)


def seed_deals(inst: Installation, n: int) -> dict[str, Any]:
    """N/2 deals: a "Board" pipeline with 50,000 open deals (or N/4 when smaller), the rest in
    the default pipeline, a third of those closed. Core inserts: this is setup, not a path users
    take; the stage history of these deals is not seeded."""
    from crmcore.parties.models import Party
    from crmcore.pipelines.models import Pipeline, Stage
    from crmcore.pipelines.service import create_pipeline
    from crmcore.records.models import Record

    ctx = inst.ctx
    board = create_pipeline(ctx, "deal", {"name": "Board", "stages": [
        {"name": f"Step {i}", "kind": "open"} for i in range(1, 6)] + [
        {"name": "Won", "kind": "won"}, {"name": "Lost", "kind": "lost"}]})
    board_id = board.id
    ctx.session.commit()
    pipelines = {p.id: p for p in ctx.session.scalars(select(Pipeline).where(Pipeline.record_type == "deal"))}
    stages = {pid: [(s.id, s.kind) for s in ctx.session.scalars(
        select(Stage).where(Stage.pipeline_id == pid).order_by(Stage.position))] for pid in pipelines}
    default_id = next(pid for pid, p in pipelines.items() if p.is_default)
    party_ids = list(ctx.session.scalars(select(Party.id).order_by(Party.id)))
    ctx.session.rollback()
    total = n // 2
    on_board = min(BOARD_DEALS, total // 2)
    rng = random.Random(11)
    now = dt.datetime.now(dt.UTC)
    users = list(ctx.session.scalars(text("SELECT user_id FROM memberships WHERE business_id = :b"),
                                     {"b": ctx.business_id}))
    ctx.session.rollback()
    table = Record.__table__
    next_id = (ctx.session.scalar(select(func.max(Record.id))) or 0) + 1
    ctx.session.rollback()
    batch: list[dict[str, Any]] = []
    with inst.crm.db.engine.begin() as conn:
        for i in range(total):
            pipeline_id = board_id if i < on_board else default_id
            open_stages = [s for s, kind in stages[pipeline_id] if kind == "open"]
            closed = pipeline_id == default_id and i % 3 == 0
            stage_id, status = (
                (next(s for s, k in stages[pipeline_id] if k == ("won" if i % 2 else "lost")), "won" if i % 2 else "lost")
                if closed else (open_stages[i % len(open_stages)], "open"))
            entered = now - dt.timedelta(minutes=rng.randint(0, 500_000))
            batch.append({
                "id": next_id + i, "business_id": ctx.business_id, "type": "deal", "reference": f"D{i:07d}",
                "title": f"Deal {i}", "party_id": party_ids[i % len(party_ids)], "owner_id": users[i % len(users)],
                "amount": rng.randint(1_000, 250_000), "currency": "EUR", "pipeline_id": pipeline_id,
                "stage_id": stage_id, "stage_entered_at": entered, "status": status,
                "closed_at": entered if closed else None, "custom": {}, "created_at": entered, "updated_at": entered})
            if len(batch) >= 5000:
                conn.execute(insert(table), batch)
                batch = []
        if batch:
            conn.execute(insert(table), batch)
        if conn.dialect.name == "postgresql":  # explicit ids: move the sequence past them
            conn.execute(text("SELECT setval(pg_get_serial_sequence('records', 'id'), "
                              "(SELECT max(id) FROM records))"))
    return {"board_id": board_id, "board_deals": on_board, "deals": total}


def _build_and_import(inst: Installation, dbs: Databases, n: int, table: Table, skip: tuple[str, ...]) -> None:
    dataset = Dataset(inst.reps, statuses(inst.ctx))
    import_seconds = bench_import(inst, dataset, n, table)
    if "raw" not in skip:
        raw_url = dbs.new("raw")
        bench_raw(inst, raw_url, dbs.tmp, n, import_seconds, table)
        dbs.drop(raw_url)


# --------------------------------------------------------------------------------------------
# 3 + 4: service writes


def bench_writes(inst: Installation, table: Table, n: int) -> None:
    from benchmarks.core import measure_writes

    for name, samples, note in measure_writes(inst.crm, inst.ctx, n):  # on the full database
        if samples is None:
            table.add(Figure(name, note=note))
        else:
            table.timings(name, samples, note)


# --------------------------------------------------------------------------------------------
# 5 + 6 + 7: reads


def _deep_cursor() -> str:
    """A page far into the name-sorted list: the one starting at names beginning with "t"
    (about three quarters of the way; keyset pages cost the same wherever they start)."""
    from crmcore.paging import encode_cursor

    return encode_cursor(["t", 0])


def bench_list(inst: Installation, table: Table, n_calls: int, app: Any) -> dict[str, Any]:
    from crmcore.parties import service as ps

    ctx = inst.ctx
    filters = {"prospect_status": statuses(ctx)[0], "tag": "dealer", "custom": {"segment": "smb"}}
    deep = _deep_cursor()
    for label, cursor in (("first page", None), ("deep page", deep)):
        samples = timed(lambda _i, cursor=cursor: ps.list_parties(ctx, filters, cursor=cursor), n_calls)
        page = ps.list_parties(ctx, filters, cursor=cursor)
        table.timings(f"5. list_parties status+tag+custom, by name, {label}", samples,
                      note=f"{len(page.items)} rows, total {page.total.value:,}{'+' if page.total.capped else ''}")
    query = f"?prospect_status={filters['prospect_status']}&tag=dealer&custom.segment=smb"
    client = app.test_client()
    _login(client, inst)
    for label, cursor in (("first page", None), ("deep page", deep)):
        url = "/parties/" + query + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url)
        assert response.status_code == 200, (response.status_code, url)
        samples = timed(lambda _i, url=url: client.get(url), n_calls)
        table.timings(f"5. party list page (Flask test client), {label}", samples)
    count_url = "/parties/count" + query
    assert client.get(count_url).status_code == 200
    samples = timed(lambda _i: client.get(count_url), n_calls)
    table.timings("5. its count, fetched after the page (Flask test client)", samples,
                  note=client.get(count_url).get_json()["text"])
    for limit in (10, 100):
        with counting(inst.crm.db.engine) as seen:
            client.get(f"/parties/{query}&limit={limit}")
        table.add(Figure(f"5. statements per list page, limit {limit}", note=f"{seen.count} statements"))
    return {"query": query, "deep": deep}


def _login(client: Any, inst: Installation) -> None:
    response = client.get("/login")
    token = response.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/login", data={"email": inst.owner, "password": PASSWORD, "csrf_token": token})
    assert response.status_code in (302, 303), response.status_code


def search_terms(inst: Installation) -> dict[str, list[str]]:
    """Terms taken from the data: prefixes and inner parts of names and emails, common and rare."""
    from crmcore.parties.models import ContactMechanism, Party

    ctx = inst.ctx
    rng = random.Random(5)
    names = list(ctx.session.scalars(select(Party.name_key).order_by(Party.id).limit(2000)))
    emails = list(ctx.session.scalars(select(ContactMechanism.normalized)
                                      .where(ContactMechanism.kind == "email").order_by(ContactMechanism.id)
                                      .limit(2000)))
    ctx.session.rollback()
    picks = [rng.choice(names) for _ in range(40)]
    mails = [rng.choice(emails) for _ in range(40)]
    return {
        "name prefix": [p.split()[0][:4] for p in picks],
        "name substring": [w[1:5] for w in (p.split()[-1] for p in picks) if len(w) >= 5][:40] or ["ard"],
        "email prefix": [m.split("@")[0][:8] for m in mails],
        "email substring": [m.split("@")[1][1:7] for m in mails],
        "exact email": mails,
    }


def bench_search(inst: Installation, table: Table) -> None:
    from crmcore.parties import service as ps

    ctx = inst.ctx
    for label, terms in search_terms(inst).items():
        samples = []
        hits = []
        for term in terms:
            ps.list_parties(ctx, {"q": term}, limit=20)
            started = time.perf_counter()
            page = ps.list_parties(ctx, {"q": term}, limit=20)
            samples.append(time.perf_counter() - started)
            hits.append(page.total.value if page.total else len(page.items))
        table.timings(f"6. search, {label}", samples,
                      note=f"{len(terms)} terms, matches median {statistics.median(hits):,.0f}")


def bench_board(inst: Installation, table: Table, deals: dict[str, Any], app: Any, n_calls: int) -> None:
    from crmcore.records import service as records

    ctx = inst.ctx
    board_id = deals["board_id"]
    samples = timed(lambda _i: records.board(ctx, board_id), n_calls)
    table.timings(f"7. board(), pipeline with {deals['board_deals']:,} open deals", samples)
    client = app.test_client()
    _login(client, inst)
    url = f"/records/deal/board?pipeline={board_id}"
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    samples = timed(lambda _i: client.get(url), n_calls)
    with counting(inst.crm.db.engine) as seen:
        client.get(url)
    table.timings("7. deals board page (Flask test client)", samples, note=f"{seen.count} statements")


# --------------------------------------------------------------------------------------------
# 5 + 8 over HTTP


def bench_http(inst: Installation, table: Table, listing: dict[str, Any], seconds: float) -> None:
    from benchmarks import http
    from crmcore.auth.service import create_api_token

    _token_row, token = create_api_token(inst.ctx, "benchmark")
    inst.ctx.session.commit()
    instance = inst.crm.config.instance_path / "served"
    instance.mkdir(parents=True, exist_ok=True)
    with http.served(instance, inst.url, workers=2, secret_key=inst.crm.config.secret_key,
                     secrets_key=inst.crm.config.secrets_key) as base:
        headers = http.login(base, inst.owner, PASSWORD)
        first = "/parties/" + listing["query"]
        paths = [first] + ([first + f"&cursor={listing['deep']}"] if listing["deep"] else [])
        result = http.sequential(base, paths, headers, n=100)
        table.add(Figure("5. party list page through gunicorn (one client)", result.median_ms, result.p95_ms,
                         note=f"first and deep page; n={result.count}, non-2xx {result.non_2xx}"))
        result = http.sequential(base, ["/parties/count" + listing["query"]], headers, n=100)
        table.add(Figure("5. its count through gunicorn (one client)", result.median_ms, result.p95_ms,
                         note=f"n={result.count}, non-2xx {result.non_2xx}"))
        api = f"/api/v1/parties?prospect_status={listing['query'].split('=')[1].split('&')[0]}&tag=dealer"
        bearer = {"Authorization": f"Bearer {token}"}
        result = http.sequential(base, [api, "/api/v1/parties?limit=50", "/api/v1/parties?q=kar"], bearer, n=100)
        table.add(Figure("8. API list through gunicorn (one client: the server time)", result.median_ms,
                         result.p95_ms, note=f"filtered, unfiltered, searched; n={result.count}, "
                                             f"non-2xx {result.non_2xx}"))
        result = http.load(base, [api, "/api/v1/parties?limit=50", "/api/v1/parties?q=kar"], headers=bearer,
                           concurrency=16, duration=seconds)
        table.add(Figure("8. API list, gunicorn 2 workers x 4 threads, 16 connections", result.median_ms,
                         result.p95_ms, rate=f"{result.requests_per_s:,.0f} req/s",
                         note=f"n={result.count}, non-2xx {result.non_2xx}, errors {result.errors}, "
                              f"server CPU {result.server_cpu_ms or 0:.1f} ms/request"))


# --------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}")


def parse_size(size: str) -> int:
    """``100k``, ``1m``, ``2500``."""
    text_ = size.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text_[-1:], 1)
    return int(float(text_[:-1] if scale > 1 else text_) * scale)


def reopen(url: str, tmp: Path) -> tuple[Installation, dict[str, Any], int]:
    """The benchmark business of a database an earlier ``run --keep`` left (``--reuse``), to
    measure the read and write paths again without rebuilding a million parties."""
    from benchmarks.core import bench_registry
    from crmcore.parties.models import Party
    from crmcore.pipelines.models import Pipeline
    from crmcore.records.models import Record

    config = Config(instance_path=tmp, database_url=url, secret_key=Fernet.generate_key().decode(),
                    secrets_key=Fernet.generate_key().decode())
    crm = Crm(config=config, db=Database(url), registry=bench_registry())
    import_models()
    slug, owner = "bench", "owner@bench.example"
    ctx = crm.context(slug, owner)
    board_id = ctx.session.scalar(select(Pipeline.id).where(Pipeline.record_type == "deal", Pipeline.name == "Board"))
    if board_id is None:
        raise SystemExit(f"{url} holds no complete benchmark business (no Board pipeline)")
    deals = {"board_id": board_id,
             "board_deals": ctx.session.scalar(select(func.count()).select_from(Record).where(
                 Record.pipeline_id == board_id, Record.status == "open")),
             "deals": ctx.session.scalar(select(func.count()).select_from(Record))}
    n = ctx.session.scalar(select(func.count()).select_from(Party)) or 0
    ctx.session.rollback()
    return Installation(crm, ctx, slug, owner, [f"rep{i}@bench.example" for i in range(10)], url), deals, n


def run(size: str, database: str | None, *, keep: bool = False, http_seconds: float = 10.0,
        skip: tuple[str, ...] = (), reuse: str | None = None) -> Table:
    dbs = Databases(database, keep or reuse is not None)
    table = Table()
    from benchmarks.core import bench_registry

    if reuse:
        main_url = reuse if "://" in reuse else f"sqlite:///{Path(reuse).resolve()}"
        inst, deals, n = reopen(main_url, dbs.tmp)
    else:
        n = parse_size(size)
        main_url = dbs.new("main")
        inst = build(main_url, dbs.tmp, registry=bench_registry())
    print(f"crmcore benchmark: {n:,} parties on {inst.crm.db.dialect}; {machine()}", flush=True)
    if inst.crm.db.dialect == "postgresql":
        with inst.crm.db.engine.connect() as conn:
            print(f"PostgreSQL {conn.execute(text('show server_version')).scalar()}", flush=True)
    print(f"  {'measurement':<62} {'median ms':>9} {'p95 ms':>9}  {'rate':<18} note", flush=True)
    if not reuse:
        _build_and_import(inst, dbs, n, table, skip)
        deals = seed_deals(inst, n)
    if inst.crm.db.dialect == "postgresql":
        # VACUUM too: autovacuum would have set the visibility map of a table this size by the
        # time anyone lists it, which is what lets index-only scans skip the heap
        with inst.crm.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
    else:
        with inst.crm.db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    from crmcore.web import create_app

    app = create_app(crm=inst.crm)
    if "writes" not in skip:
        bench_writes(inst, table, 300)
    listing = bench_list(inst, table, 100, app)
    bench_search(inst, table)
    bench_board(inst, table, deals, app, 30)
    if "http" not in skip:
        bench_http(inst, table, listing, http_seconds)
    inst.crm.db.dispose()
    dbs.drop(main_url)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{stamp}; {machine()}; {n:,} parties on {inst.crm.db.dialect}\n\n{table.markdown()}", flush=True)
    return table


