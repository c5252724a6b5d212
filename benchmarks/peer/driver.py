"""The peer's side of the comparison: runs in the peer's virtualenv, never in the project's.

``compare`` starts it as ``<peer python> -c BOOT --spec SPEC --out OUT`` with
``PEER_DATABASE_URL`` naming an empty scratch database. It migrates the peer's schema, makes the
same users (an admin owner and the ten sales reps), loads the same rows (``benchmarks.dataset``
with crmcore's seed, mapped by ``benchmarks.peer.mapping``) and the deals crmcore's run seeded,
then measures the peer's own paths and writes its figures (``benchmarks.peer.figures``) as JSON:

* bulk load through the ORM's ``bulk_create``, the fastest path the peer's code base offers
  (it has no import feature: its API and forms create one account at a time);
* one-by-one create through ``Model.save()`` as its API view does it, and through the API view;
* ``GET /api/accounts/`` (``AccountsListView``, JWT as its docs say: ``POST /api/auth/login/``,
  then ``Authorization: JWT <token>``) filtered by tag and industry, offset pages;
* name search (``?name=``, ``icontains``) and email search (``/api/contacts/?email=``);
* statements per request and the time of the count queries the list runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks.dataset import Dataset
from benchmarks.peer.figures import Figure, load_average, timings
from benchmarks.peer.mapping import PeerAccount, map_deal, map_rows

#: accounts per transaction of the bulk load (rows go to ``bulk_create`` a chunk at a time)
CHUNK = 10_000
BOOT = ("import sys; sys.path.append(sys.argv.pop(1)); "
        "from benchmarks.peer.driver import main; sys.exit(main(sys.argv[1:]))")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.peer.driver")
    parser.add_argument("--spec", required=True, help="JSON: n, seed, owner, password, reps, statuses, deals, "
                                                      "terms, calls, creates, api_creates")
    parser.add_argument("--out", required=True, help="where the figures go (JSON)")
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.peer.settings")
    # every Celery app of the peer (some make their own) reads this: tasks queue in memory
    os.environ["CELERY_BROKER_URL"] = "memory://"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    # the peer's views read ``settings.Domain``, which Django never loads from a settings module
    # (only upper-case names): as shipped, POST /api/accounts/ saves the account and then fails
    # with a 500. Set at run time, the view completes as its authors meant it to.
    settings.Domain = "localhost:8000"

    if spec.get("sqlite_pragmas"):
        _sqlite_pragmas(spec["sqlite_pragmas"])
    call_command("migrate", verbosity=0, interactive=False)
    peer = Peer(spec)
    figures = peer.run()
    Path(args.out).write_text(json.dumps({"figures": [f.as_dict() for f in figures], "about": peer.about()}))
    return 0


def _sqlite_pragmas(pragmas: list[str]) -> None:
    """Give every SQLite connection the pragmas crmcore's connections get (WAL, ``synchronous``
    NORMAL, the mmap and the page cache): Django 3.2 leaves SQLite in its rollback journal with
    a synced commit per statement, which would measure the journal, not the peer."""
    from django.db.backends.signals import connection_created

    def configure(sender: Any, connection: Any, **_kwargs: Any) -> None:
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                for pragma in pragmas:
                    cursor.execute(f"PRAGMA {pragma}")

    connection_created.connect(configure, weak=False)


def say(text: str) -> None:
    print(f"  peer: {text}", flush=True)


class Statements:
    """Counts (and with ``timed``, times) the statements Django sends; ``BEGIN`` is not counted,
    as ``benchmarks.core`` does not count it for crmcore."""

    def __init__(self, timed: bool = False) -> None:
        self.count = 0
        self.timed = timed
        self.seen: list[tuple[str, float]] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip()[:5].upper() != "BEGIN":
            self.count += 1
        if not self.timed:
            return execute(sql, params, many, context)
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seen.append((sql, time.perf_counter() - started))


@contextlib.contextmanager
def statements(timed: bool = False) -> Iterator[Statements]:
    from django.db import connection

    counter = Statements(timed)
    with connection.execute_wrapper(counter):
        yield counter


def timed(fn: Callable[[int], Any], n: int, warmup: int = 3) -> list[float]:
    for i in range(warmup):
        fn(-1 - i)
    out = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - started)
    return out


class Peer:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.n: int = spec["n"]
        self.figures: list[Figure] = []
        self.account_ids: dict[str, int] = {}
        self.user_ids: dict[str, int] = {}
        self.token = ""

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        shown = (f"{figure.median_ms:.2f} / {figure.p95_ms or 0:.2f} ms" if figure.median_ms is not None
                 else figure.rate)
        say(f"{figure.key:<24} {shown:<24} {figure.note} (load {figure.load})")

    def run(self) -> list[Figure]:
        self.make_users()
        self.bulk_load()
        self.load_deals()
        self.analyze()
        self.creates()
        self.login()
        self.api_creates()
        self.listing()
        self.search()
        return self.figures

    # ---------------------------------------------------------------------------------------
    # setup

    def make_users(self) -> None:
        from common.models import User

        owner = User.objects.create_user("owner", self.spec["owner"], self.spec["password"], role="ADMIN",
                                         is_active=True, is_admin=True, has_sales_access=True)
        self.owner = owner
        self.user_ids[owner.email] = owner.id
        for i, email in enumerate(self.spec["reps"]):
            rep = User.objects.create_user(f"rep{i}", email, self.spec["password"], role="USER",
                                           is_active=True, has_sales_access=True)
            self.user_ids[email] = rep.id

    def bulk_load(self) -> None:
        """Accounts, contacts, tags and their links through ``bulk_create``, in transactions of
        :data:`CHUNK` accounts, ids given by the loader (SQLite's backend in Django 3.2 returns
        no ids from a bulk insert, and the links need them); sequences are reset at the end."""
        from django.db import transaction

        dataset = Dataset(self.spec["reps"], self.spec["statuses"], seed=self.spec["seed"])
        rows = map_rows(dataset.rows(self.n))
        tags: dict[str, int] = {}
        contacts = 0
        started = time.perf_counter()
        next_id = {"account": 1, "contact": 1}
        while True:
            chunk = [account for _, account in zip(range(CHUNK), rows, strict=False)]
            if not chunk:
                break
            with transaction.atomic():
                contacts += self._write_chunk(chunk, tags, next_id)
        self._reset_sequences()
        seconds = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.add(Figure("bulk", rate=f"{self.n / seconds:,.0f} parties/s", load=load_average(),
                        note=f"{self.n:,} accounts, {contacts:,} contacts in {seconds:.1f} s; peak RSS {rss:,.0f} MB"))

    def _write_chunk(self, chunk: list[PeerAccount], tags: dict[str, int], next_id: dict[str, int]) -> int:
        from accounts.models import Account, Tags
        from contacts.models import Contact
        from django.utils.text import slugify

        new_tags = sorted({t for a in chunk for t in a.tags} - tags.keys())
        if new_tags:
            first = len(tags) + 1
            Tags.objects.bulk_create([Tags(id=first + i, name=t, slug=slugify(t)) for i, t in enumerate(new_tags)])
            tags.update({t: first + i for i, t in enumerate(new_tags)})
        owner = self.owner.id
        accounts, people, tag_links, contact_links, assigned = [], [], [], [], []
        for a in chunk:
            account_id = next_id["account"]
            next_id["account"] += 1
            accounts.append(Account(
                id=account_id, name=a.name, email=a.email, phone=a.phone, industry=a.industry,
                billing_address_line=a.billing_address_line, billing_postcode=a.billing_postcode,
                billing_city=a.billing_city, billing_country=a.billing_country, contact_name=a.contact_name,
                status=a.status, created_by_id=owner, is_active=True))
            self.account_ids[a.email] = account_id
            tag_links += [Account.tags.through(account_id=account_id, tags_id=tags[t]) for t in a.tags]
            assigned.append(Account.assigned_to.through(account_id=account_id, user_id=self.user_ids[a.assigned_to]))
            if a.contact is not None:
                contact_id = next_id["contact"]
                next_id["contact"] += 1
                c = a.contact
                people.append(Contact(id=contact_id, first_name=c.first_name, last_name=c.last_name, email=c.email,
                                      description=c.description, created_by_id=owner, is_active=True))
                contact_links.append(Account.contacts.through(account_id=account_id, contact_id=contact_id))
        Account.objects.bulk_create(accounts)
        Contact.objects.bulk_create(people)
        Account.tags.through.objects.bulk_create(tag_links)
        Account.contacts.through.objects.bulk_create(contact_links)
        Account.assigned_to.through.objects.bulk_create(assigned)
        return len(people)

    def _reset_sequences(self) -> None:
        from accounts.models import Account, Tags
        from contacts.models import Contact
        from django.core.management.color import no_style
        from django.db import connection
        from opportunity.models import Opportunity

        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [Account, Tags, Contact, Opportunity]):
                cursor.execute(sql)

    def load_deals(self) -> None:
        """crmcore's seeded deals as opportunities (setup: timed for the record, not compared)."""
        from django.db import transaction
        from opportunity.models import Opportunity

        path = Path(self.spec["deals"])
        started = time.perf_counter()
        count = 0
        next_id = 1
        with path.open() as lines:
            while True:
                batch = [map_deal(json.loads(line)) for _, line in zip(range(CHUNK), lines, strict=False)]
                if not batch:
                    break
                with transaction.atomic():
                    rows, links = [], []
                    for d in batch:
                        owner = self.user_ids.get(d.owner_email, self.owner.id)
                        rows.append(Opportunity(
                            id=next_id, name=d.name, account_id=self.account_ids[d.account_email], stage=d.stage,
                            currency=d.currency, amount=d.amount, closed_on=d.closed_on,
                            closed_by_id=owner if d.closed_on else None, created_by_id=owner, is_active=True))
                        links.append(Opportunity.assigned_to.through(opportunity_id=next_id, user_id=owner))
                        next_id += 1
                    Opportunity.objects.bulk_create(rows)
                    Opportunity.assigned_to.through.objects.bulk_create(links)
                count += len(batch)
        self._reset_sequences()
        say(f"{count:,} opportunities loaded in {time.perf_counter() - started:.1f} s (setup)")

    def analyze(self) -> None:
        """What crmcore's run does after its build: ``VACUUM (ANALYZE)`` (PostgreSQL: this
        server runs no autovacuum) or ``ANALYZE`` (SQLite)."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE)" if connection.vendor == "postgresql" else "ANALYZE")

    # ---------------------------------------------------------------------------------------
    # writes

    def creates(self) -> None:
        from accounts.models import Account, Tags

        def create(i: int) -> None:
            # what AccountsListView.post does with its ORM, without the serializer's checks
            account = Account(name=f"Party {i}", email="", contact_name="", created_by=self.owner, status="open")
            account.save()
            tag = Tags.objects.filter(slug="bench").first() or Tags.objects.create(name="bench")
            account.tags.add(tag)

        create(-1)  # the first makes the tag
        with statements() as seen:
            samples = timed(create, self.spec["creates"], warmup=0)
        per_call = seen.count / len(samples)
        self.add(timings("create_orm", samples, note="Account.save() + tag lookup + tags.add()"))
        self.add(Figure("create_orm_statements", note=f"{per_call:.1f} statements", load=load_average()))

    def login(self) -> None:
        """The peer's documented login: ``POST /api/auth/login/`` answers a JWT."""
        from django.test import Client

        self.client = Client()
        response = self.client.post("/api/auth/login/", {"email": self.spec["owner"], "password": self.spec["password"]})
        if response.status_code != 200 or "token" not in response.json():
            raise SystemExit(f"peer login failed: {response.status_code} {response.content[:300]!r}")
        self.auth = {"HTTP_AUTHORIZATION": f"JWT {response.json()['token']}"}

    def get(self, url: str) -> dict[str, Any]:
        response = self.client.get(url, **self.auth)
        if response.status_code != 200:
            raise SystemExit(f"peer GET {url}: {response.status_code} {response.content[:300]!r}")
        return response.json()

    def api_creates(self) -> None:
        def create(i: int) -> None:
            response = self.client.post("/api/accounts/", {
                "name": f"Api party {i}", "email": f"api{i}@bench.example", "billing_address_line": "1 Benchstraat",
                "billing_street": "Benchstraat", "billing_city": "Gent", "billing_state": "OVL",
                "billing_postcode": "9000", "billing_country": "BE", "tags": json.dumps(["bench"])}, **self.auth)
            if response.status_code != 200:
                raise SystemExit(f"peer API create: {response.status_code} {response.content[:300]!r}")

        samples = timed(create, self.spec["api_creates"])
        self.add(timings("create_api", samples, note="POST /api/accounts/ (checks the name is new: a scan)"))

    # ---------------------------------------------------------------------------------------
    # reads

    def listing(self) -> None:
        from accounts.models import Tags

        dealer = Tags.objects.get(slug="dealer").id
        base = f"/api/accounts/?tags={quote(json.dumps([dealer]))}&industry=SERVICE"
        first = self.get(base + "&limit=10")
        matches = first["active_accounts"]["accounts_count"]
        deep = base + f"&limit=10&offset={matches * 3 // 4}"
        calls = self.spec["calls"]
        for key, url in (("list_first", base + "&limit=10"), ("list_deep", deep), ("list_50", base + "&limit=50")):
            rows = len(self.get(url)["active_accounts"]["open_accounts"])
            samples = timed(lambda _i, url=url: self.get(url), calls)
            self.add(timings(key, samples, note=f"{rows} rows, count {matches:,} (exact)"))
        for limit in (10, 100):
            with statements() as seen:
                self.get(base + f"&limit={limit}")
            self.add(Figure(f"statements_{limit}", note=f"{seen.count} statements", load=load_average()))
        with statements(timed=True) as seen:
            self.get(base + "&limit=10")
        counts = [(sql, s) for sql, s in seen.seen if sql.lstrip().upper().startswith("SELECT COUNT(")]
        slowest = max(seen.seen, key=lambda item: item[1])
        self.add(Figure("count", sum(s for _, s in counts) * 1000, None, load=load_average(),
                        note=f"{len(counts)} COUNT(*) over SELECT DISTINCT (open and closed lists), exact; "
                             f"slowest statement {slowest[1] * 1000:.1f} ms: {_short(slowest[0])}"))
        self.matches = matches

    def search(self) -> None:
        for label, terms in self.spec["terms"].items():
            if label.startswith("name"):
                path, key = "/api/accounts/?name=", ("active_accounts", "accounts_count")
            elif label.startswith("email") and "exact" not in label:
                path, key = "/api/contacts/?email=", ("contacts_count",)
            else:
                continue
            samples, hits = [], []
            for term in terms:
                url = path + quote(term) + "&limit=10"
                self.get(url)
                started = time.perf_counter()
                answer = self.get(url)
                samples.append(time.perf_counter() - started)
                for part in key:
                    answer = answer[part]
                hits.append(answer)
            where = "accounts' names" if label.startswith("name") else "contacts' emails (the accounts API has none)"
            self.add(timings(f"search_{label.replace(' ', '_')}", samples,
                             note=f"{len(terms)} terms, icontains over {where}, matches median "
                                  f"{statistics.median(hits):,.0f}"))

    def about(self) -> dict[str, Any]:
        from importlib.metadata import version

        import django
        from django.db import connection

        out = {"python": platform.python_version(), "django": django.get_version(),
               "django-crm": version("django-crm"), "djangorestframework": version("djangorestframework"),
               "engine": connection.vendor, "sqlite": sqlite3.sqlite_version, "executable": sys.executable}
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("show server_version")
                out["postgresql"] = cursor.fetchone()[0]
            out["psycopg2"] = version("psycopg2-binary")
        return out


def _short(sql: str, width: int = 140) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[:width] + "…"
