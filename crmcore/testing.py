"""pytest fixtures for crmcore and its plugins (registered through the ``pytest11`` entry point).

A plugin author gets, in one line each:

* ``crm``: a running installation on a fresh database (SQLite file per test, or PostgreSQL when
  ``CRM_TEST_DATABASE_URL`` is set: one database per test session, tables emptied per test);
* ``business`` / ``other_business``: two businesses with an owner each;
* ``ctx`` / ``other_ctx``: service contexts acting as those owners;
* ``make_user``: a user with a role in a business, and its context;
* ``register_plugin``: register a plugin object (a module or class with ``@hookimpl`` methods)
  for one test, optionally enabled for a business.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import make_url

from crmcore.config import Config
from crmcore.context import Context
from crmcore.db import Base, Database, import_models
from crmcore.plugins.info import PluginInfo
from crmcore.plugins.manager import get_registry
from crmcore.runtime import Crm

TEST_PASSWORD = "correct horse battery"

# argon2 at production cost takes ~0.1-0.7 s a hash; fixtures create users for every test
from crmcore.auth.passwords import use_fast_hashing_for_tests  # noqa: E402

use_fast_hashing_for_tests()
_SECRETS_KEY = Fernet.generate_key().decode()


def all_metadata() -> list[MetaData]:
    """The core's metadata and that of every loaded plugin that declares one."""
    import_models()
    out = [Base.metadata]
    for plugin in get_registry().plugins.values():
        meta = plugin.info.metadata
        if meta is not None and meta not in out:
            out.append(meta)
    return out


class _Schema:
    """One schema per test session; each test gets it empty."""

    def __init__(self, tmp_root: Path) -> None:
        self.pg_url = os.environ.get("CRM_TEST_DATABASE_URL") or None
        self.tmp_root = tmp_root
        self.template: Path | None = None
        self.url: str | None = None
        self._admin_url: str | None = None

    def setup(self) -> None:
        if self.pg_url:
            url = make_url(self.pg_url)
            if url.drivername in ("postgresql", "postgres"):
                url = url.set(drivername="postgresql+psycopg")
            name = f"crm_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            self._admin_url = url.render_as_string(hide_password=False)
            admin = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            self.name = name
            self.url = url.set(database=name).render_as_string(hide_password=False)
            db = Database(self.url)
            for meta in all_metadata():
                meta.create_all(db.engine)
            db.dispose()
        else:
            self.template = self.tmp_root / "template.sqlite"
            db = Database(f"sqlite:///{self.template}")
            for meta in all_metadata():
                meta.create_all(db.engine)
            with db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            db.dispose()

    def fresh_url(self, tmp_path: Path) -> str:
        if self.url:
            db = Database(self.url)
            tables = [t.name for meta in all_metadata() for t in meta.sorted_tables]
            with db.engine.begin() as conn:
                existing = set(conn.execute(text(
                    "select tablename from pg_tables where schemaname = current_schema()")).scalars())
                missing = [m for m in all_metadata() if any(t.name not in existing for t in m.sorted_tables)]
                for meta in missing:
                    meta.create_all(conn)
                names = ", ".join(f'"{t}"' for t in tables)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            db.dispose()
            return self.url
        target = tmp_path / "crm.sqlite"
        shutil.copyfile(self.template, target)
        return f"sqlite:///{target}"

    def teardown(self) -> None:
        if self._admin_url:
            admin = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            admin.dispose()


@pytest.fixture(scope="session")
def _crm_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Schema]:
    schema = _Schema(tmp_path_factory.mktemp("crm-schema"))
    schema.setup()
    yield schema
    schema.teardown()


@pytest.fixture
def crm_config(_crm_schema: _Schema, tmp_path: Path) -> Config:
    """Configuration of a test installation: instance folder under ``tmp_path``, fresh database."""
    return Config(
        instance_path=tmp_path / "instance",
        database_url=_crm_schema.fresh_url(tmp_path),
        secret_key="test-secret-key",
        secrets_key=_SECRETS_KEY,
        # react-hook jobs run right after commit, so a test sees a plugin's effects at once;
        # production leaves them to `crm worker` (tests of the worker turn this off)
        outbox_inline=True,
    )


@pytest.fixture
def crm(crm_config: Config) -> Iterator[Crm]:
    """A running installation (config, database, the process-wide plugin registry)."""
    crm_config.instance_path.mkdir(parents=True, exist_ok=True)
    registry = get_registry()
    # hook relays are cached per (business id, plugins_version); every test database starts both
    # again from 1, so a relay cached by an earlier test must not answer for this one
    registry._changed()
    runtime = Crm(config=crm_config, db=Database(crm_config.database_url), registry=registry)
    yield runtime
    runtime.db.dispose()


def _make_business(crm: Crm, slug: str, name: str) -> Any:
    from crmcore.auth.service import create_user
    from crmcore.tenancy.service import create_business

    owner = create_user(crm, f"owner@{slug}.example", TEST_PASSWORD, name=f"{name} Owner")
    return create_business(crm, slug, name, owner_email=owner.email)


@pytest.fixture
def business(crm: Crm) -> Any:
    """Business ``acme`` owned by ``owner@acme.example``."""
    return _make_business(crm, "acme", "Acme Equipment")


@pytest.fixture
def other_business(crm: Crm) -> Any:
    """Business ``globex`` owned by ``owner@globex.example`` (for isolation tests)."""
    return _make_business(crm, "globex", "Globex Agency")


@pytest.fixture
def ctx(crm: Crm, business: Any) -> Iterator[Context]:
    """A context acting as the owner of ``business``."""
    context = Context.open(crm, business.slug, f"owner@{business.slug}.example")
    yield context
    context.close()


@pytest.fixture
def other_ctx(crm: Crm, other_business: Any) -> Iterator[Context]:
    context = Context.open(crm, other_business.slug, f"owner@{other_business.slug}.example")
    yield context
    context.close()


@pytest.fixture
def make_user(crm: Crm) -> Iterator[Callable[..., Context]]:
    """``make_user(business, role="member", email=None) -> Context`` acting as a new member."""
    from crmcore.auth.service import create_user
    from crmcore.tenancy.service import add_member

    opened: list[Context] = []

    def make(business: Any, role: str = "member", email: str | None = None) -> Context:
        email = email or f"{role.replace('_', '-')}-{uuid.uuid4().hex[:6]}@{business.slug}.example"
        create_user(crm, email, TEST_PASSWORD, name=email.split("@")[0])
        owner = Context.open(crm, business.slug, f"owner@{business.slug}.example")
        try:
            add_member(owner, email, role)
        finally:
            owner.close()
        context = Context.open(crm, business.slug, email)
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


@pytest.fixture
def register_plugin(crm: Crm) -> Iterator[Callable[..., str]]:
    """``register_plugin(obj, name=None, info=None, enable_for=None) -> name``.

    Registers ``obj`` in the process-wide registry for this test only; ``enable_for`` is a
    context (or list of contexts) whose business gets the plugin enabled.
    """
    from crmcore.plugins.service import enable_plugin

    names: list[str] = []

    def register(obj: Any, name: str | None = None, info: PluginInfo | None = None,
                 enable_for: Context | list[Context] | None = None, settings: dict | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:8]}"
        crm.registry.register(name, obj, info=info, source="test")
        names.append(name)
        targets = enable_for if isinstance(enable_for, list) else [enable_for] if enable_for else []
        for context in targets:
            enable_plugin(context, name, settings)
        return name

    yield register
    for name in reversed(names):
        crm.registry.unregister(name)


# -- web ---------------------------------------------------------------------------------------


class CrmClient:
    """A Flask test client that logs in and sends the CSRF token like the browser does."""

    def __init__(self, flask_client: Any) -> None:
        self.raw = flask_client
        self._token: str | None = None

    def csrf_token(self) -> str:
        if self._token is None:
            import re

            page = self.raw.get("/login")
            if page.status_code == 302:  # logged in already: any page carries the token
                page = self.raw.get("/account/password")
            match = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True))
            assert match, "no csrf token in the page"
            self._token = match.group(1)
        return self._token

    def login(self, email: str, password: str = TEST_PASSWORD) -> Any:
        response = self.raw.post("/login", data={"email": email, "password": password,
                                                  "csrf_token": self.csrf_token()})
        self._token = None  # the session (and its token) is new after login
        return response

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.raw.get(url, **kwargs)

    def post(self, url: str, data: dict | None = None, **kwargs: Any) -> Any:
        data = dict(data or {})
        data.setdefault("csrf_token", self.csrf_token())
        return self.raw.post(url, data=data, **kwargs)

    def fetch(self, url: str, data: dict | None = None, **kwargs: Any) -> Any:
        """A POST as crm.js sends it: token in the X-CSRFToken header."""
        headers = {"X-CSRFToken": self.csrf_token(), "X-Requested-With": "fetch", **kwargs.pop("headers", {})}
        return self.raw.post(url, data=data or {}, headers=headers, **kwargs)


@pytest.fixture
def app(crm: Crm) -> Any:
    """The admin + API Flask app on the test installation."""
    from crmcore.web import create_app

    return create_app(crm=crm, testing=True)


@pytest.fixture
def anon_client(app: Any) -> CrmClient:
    return CrmClient(app.test_client())


@pytest.fixture
def client(app: Any, business: Any) -> CrmClient:
    """A client logged in as the owner of ``business``."""
    c = CrmClient(app.test_client())
    response = c.login(f"owner@{business.slug}.example")
    assert response.status_code == 302, response.get_data(as_text=True)
    return c


# -- browser -----------------------------------------------------------------------------------

#: Debian's Chromium, driven by Playwright (a downloaded browser is never used)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


def _need_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole run, in the main thread. Playwright's sync API
    allows one such instance per thread, so every suite shares this fixture (or uses
    :func:`browse`, which runs its own in a thread)."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browse(app: Any) -> Iterator[Callable[[Callable[[Any], None]], None]]:
    """``browse(fn)``: run ``fn(page)`` in headless Chromium against ``app`` served on
    127.0.0.1 (the page's ``base_url`` is the server). The browser runs in a thread of its own,
    so a test may also hold the session :func:`browser`; failures in ``fn`` are raised here."""
    import logging
    import threading

    from werkzeug.serving import make_server

    _need_chromium()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    base_url = f"http://127.0.0.1:{server.server_port}"

    def run(fn: Callable[[Any], None]) -> None:
        failure: list[BaseException] = []

        def target() -> None:
            from playwright.sync_api import sync_playwright

            try:
                with sync_playwright() as pw:
                    launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                    try:
                        context = launched.new_context(base_url=base_url, viewport={"width": 1360, "height": 900})
                        page = context.new_page()
                        page.set_default_timeout(30_000)  # a loaded 2-core CI machine: fetches can take seconds
                        fn(page)
                    finally:
                        launched.close()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                failure.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(timeout=180)
        assert not thread.is_alive(), "the browser did not finish in 180 s"
        if failure:
            raise failure[0]

    yield run
    server.shutdown()
    serving.join(timeout=10)


# -- a plugin's migrations -----------------------------------------------------------------------


@pytest.fixture
def scratch_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database nobody else uses: a SQLite file, or (with ``CRM_TEST_DATABASE_URL``) a
    fresh PostgreSQL database beside it, dropped afterwards. For migration tests."""
    pg = os.environ.get("CRM_TEST_DATABASE_URL")
    if not pg:
        yield f"sqlite:///{tmp_path / 'crm.sqlite'}"
        return
    url = make_url(pg).set(drivername="postgresql+psycopg")
    name = f"crm_migrate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def check_migrations_match_models(engine: Any, metadata: MetaData) -> list[Any]:
    """Run ``crm db upgrade`` (core, then every installed plugin) on ``engine`` and assert that
    ``metadata``'s tables exist and that Alembic's autogenerate finds no difference between them
    and the migrated schema. Returns the upgrade's results (plugin, from, to) for more checks."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    from crmcore.migrations.runner import upgrade

    ours = set(metadata.tables)
    results = upgrade(engine, get_registry())

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return type_ != "table" or name in ours

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": include})
        assert compare_metadata(context, metadata) == []
    assert ours <= set(inspect(engine).get_table_names())
    return results
