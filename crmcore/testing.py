"""pytest fixtures for crmcore and its plugins (registered through the ``pytest11`` entry point).

A plugin author gets, in one line each:

* ``crm``: a running installation on a fresh database (SQLite file per test, or PostgreSQL when
  ``CRM_TEST_DATABASE_URL`` is set: one database per test session, tables emptied per test);
* ``business`` / ``other_business``: two businesses with an owner each;
* ``ctx`` / ``other_ctx``: service contexts acting as those owners;
* ``make_user``: a user with a role in a business, and its context;
* ``register_plugin``: register a plugin object (a module or class with ``@hookimpl`` methods)
  for one test, optionally enabled for a business;
* ``smtp_server`` / ``make_smtp_server``: real SMTP servers on 127.0.0.1 (:class:`SmtpServer`);
* :class:`LocalHTTPServer`: the plumbing of a local stand-in for a provider's HTTP API.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import os
import shutil
import ssl
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self, cast
from urllib.parse import parse_qsl, urlsplit

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


#: where every test server listens
LOOPBACK = "127.0.0.1"


# -- TLS for test servers ------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsCertificate:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1`` (PEM files), for servers that
    speak TLS in tests and for the clients that must trust them, or not."""

    cert: str
    key: str

    @classmethod
    def create(cls, folder: Path) -> TlsCertificate:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = dt.datetime.now(dt.UTC)
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        cert_path, key_path = folder / "cert.pem", folder / "key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cls(str(cert_path), str(key_path))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client's context that trusts this certificate only."""
        return ssl.create_default_context(cafile=self.cert)


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> TlsCertificate:
    """A self-signed certificate for ``localhost`` / ``127.0.0.1``: ``.cert`` and ``.key`` (paths),
    ``.server_context()`` for a test server, ``.client_context()`` for a client that trusts it."""
    return TlsCertificate.create(tmp_path_factory.mktemp("tls"))


# -- a real SMTP server --------------------------------------------------------------------------


class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 at a port the OS picks, in a thread of its own,
    so a transport is tested by talking SMTP rather than by patching it.

    What arrives is kept, readable from any thread: :attr:`messages` (parsed
    :class:`email.message.EmailMessage`), :attr:`envelopes` (aiosmtpd's: ``mail_from``,
    ``rcpt_tos``, ``content``) and :attr:`logins`. Setting ``rcpt_reply`` / ``data_reply``
    (``"451 4.3.0 try again later"``, ``"550 5.1.1 no such user"``) makes it refuse.

    ``login=(user, password)`` offers AUTH and accepts exactly that pair; ``implicit_tls`` speaks
    TLS from the first byte; other keywords go to aiosmtpd's ``SMTP`` (``tls_context`` with
    ``require_starttls=True`` for STARTTLS, ``auth_require_tls``, ...). aiosmtpd is imported
    only when a server starts: crmcore needs it only in suites that use one.
    """

    host = LOOPBACK

    def __init__(self, *, login: tuple[str, str] | None = None, implicit_tls: ssl.SSLContext | None = None,
                 **smtp_options: Any) -> None:
        self.login = login
        self.implicit_tls = implicit_tls
        self.smtp_options = smtp_options
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.port = 0
        self._arrived = threading.Condition()
        self._messages: list[EmailMessage] = []
        self._envelopes: list[Any] = []
        self._logins: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- what arrived ------------------------------------------------------------------------

    @property
    def messages(self) -> list[EmailMessage]:
        with self._arrived:
            return list(self._messages)

    @property
    def envelopes(self) -> list[Any]:
        with self._arrived:
            return list(self._envelopes)

    @property
    def logins(self) -> list[str]:
        with self._arrived:
            return list(self._logins)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        """The messages once at least ``count`` arrived, for senders in other threads or
        processes; fails the test after ``timeout`` seconds."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(f"{count} email(s) expected at the SMTP server within {timeout} s, "
                                     f"{len(self._messages)} arrived")
            return list(self._messages)

    # -- running -----------------------------------------------------------------------------

    def start(self) -> SmtpServer:
        from aiosmtpd.smtp import SMTP

        assert self._thread is None, "the SMTP server runs already"
        loop = asyncio.new_event_loop()
        options: dict[str, Any] = {"hostname": "localhost", "enable_SMTPUTF8": True, **self.smtp_options}
        if self.login is not None:
            options["authenticator"] = self._authenticate
        handler = _SmtpHandler(self)
        listening = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                SMTP(handler, loop=loop, **options)  # bad options fail here, not on the first connection
                server = loop.run_until_complete(loop.create_server(
                    lambda: SMTP(handler, loop=loop, **options), host=self.host, port=0, ssl=self.implicit_tls))
            except BaseException as exc:  # noqa: BLE001 - raised again by start()
                failure.append(exc)
                listening.set()
                loop.close()
                return
            self.port = server.sockets[0].getsockname()[1]
            loop.call_soon(listening.set)
            loop.run_forever()
            server.close()
            loop.run_until_complete(server.wait_closed())
            loop.close()

        thread = threading.Thread(target=serve, name="smtp-server", daemon=True)
        thread.start()
        if not listening.wait(10):
            raise TimeoutError("the SMTP server did not start within 10 s")
        if failure:
            thread.join()
            raise failure[0]
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Close the connections and the listening socket; wait for the thread to end."""
        if self._thread is None or self._loop is None:
            return

        def cancel(loop: asyncio.AbstractEventLoop) -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.stop()

        self._loop.call_soon_threadsafe(cancel, self._loop)
        self._thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        assert self.login is not None
        if isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == self.login:
            with self._arrived:
                self._logins.append(self.login[0])
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def _keep(self, envelope: Any) -> None:
        message = cast(EmailMessage, message_from_bytes(envelope.content, policy=policy.default))
        with self._arrived:
            self._envelopes.append(envelope)
            self._messages.append(message)
            self._arrived.notify_all()


class _SmtpHandler:
    """aiosmtpd's handler of an :class:`SmtpServer` (its methods run in the server's loop)."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: Any) -> str:
        if self.server.rcpt_reply:
            return self.server.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.server.data_reply:
            return self.server.data_reply
        self.server._keep(envelope)
        return "250 Message accepted"


@pytest.fixture
def make_smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """``make_smtp_server(login=None, implicit_tls=None, **aiosmtpd options) -> SmtpServer``,
    started; every one is stopped after the test."""
    with ExitStack() as servers:
        yield lambda **options: servers.enter_context(SmtpServer(**options))


@pytest.fixture
def smtp_server(make_smtp_server: Callable[..., SmtpServer]) -> SmtpServer:
    """A plain SMTP server on 127.0.0.1 (no TLS, no login): ``smtp_server.port``,
    ``smtp_server.messages``, ``smtp_server.wait_for(n)``."""
    return make_smtp_server()


# -- local HTTP servers: stand-ins for a provider's API ------------------------------------------


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic ...`` header; None when absent or unreadable."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


@dataclass(frozen=True)
class HttpRequest:
    """One request as a :class:`LocalHTTPServer` received it."""

    method: str
    target: str  # as sent: the path and the query
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query_string(self) -> str:
        return urlsplit(self.target).query

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.query_string, keep_blank_values=True))

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        return parse_basic_auth(self.headers.get("authorization"))


@dataclass(frozen=True)
class HttpAnswer:
    """What a :class:`LocalHTTPServer` sends back (``Content-Length`` is added)."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, *, headers: Mapping[str, str] | None = None,
             indent: int | None = None) -> HttpAnswer:
        return cls(status, json.dumps(data, indent=indent).encode(), "application/json", headers or {})


class _HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpListener

    def log_message(self, *_args: Any) -> None:
        """A test's output is no access log."""

    def serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.owner._receive(HttpRequest(self.command, self.path, headers, body))
        if answer is None:
            self.close_connection = True  # held and released, or dropped on purpose: no answer at all
            return
        self.send_response(answer.status)
        if answer.content_type:
            self.send_header("Content-Type", answer.content_type)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)


class _HttpListener(ThreadingHTTPServer):
    """One listening socket of a :class:`LocalHTTPServer` (a thread per connection)."""

    def __init__(self, owner: LocalHTTPServer, tls: ssl.SSLContext | None) -> None:
        handler = type("Handler", (_HttpHandler,), {f"do_{method}": _HttpHandler.serve for method in owner.methods})
        super().__init__((LOOPBACK, 0), handler)
        self.owner = owner
        self.url = f"{'https' if tls else 'http'}://{LOOPBACK}:{self.server_port}"
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a timeout, a killed worker) or a failed TLS handshake is
        what tests provoke, not an error worth printing."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | ssl.SSLError):
            super().handle_error(request, client_address)


class LocalHTTPServer:
    """An HTTP server on 127.0.0.1 at a port the OS picks, serving in daemon threads: the
    plumbing of a local stand-in for a provider's API, so that a fake keeps only what the
    provider does (:meth:`handle`).

    Use it with a function (``LocalHTTPServer(lambda request: HttpAnswer(204))``) or subclass it
    and override :meth:`handle`; a subclass may be a dataclass (its state is made in
    ``__post_init__``: a subclass that defines one calls ``super().__post_init__()``). As a
    context manager it starts and stops. Every request is kept in :attr:`http_requests` before it
    is handled. Test controls shared by the fakes: :meth:`script` (answer the next requests with
    these statuses: the fake takes them with :meth:`next_scripted`), ``hang`` with :meth:`hold`
    (a fake that sees ``hang`` set keeps the request waiting) and :meth:`release`.
    """

    #: the methods served; others are answered 501 by the standard library
    methods: tuple[str, ...] = ("GET", "POST")
    #: while True, the fake holds requests (``if self.hang: self.hold()``) until :meth:`release`
    hang: bool = False
    __handle: Callable[[HttpRequest], HttpAnswer | None] | None = None

    def __init__(self, handle: Callable[[HttpRequest], HttpAnswer | None] | None = None) -> None:
        self.__handle = handle
        self.__post_init__()

    def __post_init__(self) -> None:
        self.__lock = threading.Condition()
        self.__log: list[HttpRequest] = []
        self.__scripted: list[int] = []
        self.__releases = 0
        self.__arrival = threading.local()  # per connection thread: releases seen when the request came
        self.__listeners: list[tuple[_HttpListener, threading.Thread]] = []
        self.__first: _HttpListener | None = None  # kept after stop(): a test may still name the address

    def handle(self, request: HttpRequest) -> HttpAnswer | None:
        """The answer to ``request``; None closes the connection without one. Runs in the
        connection's thread: a fake guards its own state."""
        if self.__handle is None:
            raise NotImplementedError("pass handle= or override LocalHTTPServer.handle")
        return self.__handle(request)

    # -- running -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen (once; :meth:`listen` adds listeners)."""
        if not self.__listeners:
            self.listen()
        return self

    def listen(self, tls: ssl.SSLContext | None = None) -> str:
        """Serve on one more free port of 127.0.0.1, over TLS with ``tls``; its base URL."""
        listener = _HttpListener(self, tls)
        thread = threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"http-{type(self).__name__}", daemon=True)
        thread.start()
        if not self.__listeners:
            self.__first = listener
        self.__listeners.append((listener, thread))
        return listener.url

    def stop(self) -> None:
        """Drop held requests, stop listening and close the sockets (start() may run again)."""
        self.release()
        listeners, self.__listeners = self.__listeners, []
        for listener, thread in listeners:
            listener.shutdown()
            listener.server_close()
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the first listener (after stop(): where it listened)."""
        assert self.__first is not None, "start the server first"
        return self.__first.url

    @property
    def port(self) -> int:
        assert self.__first is not None, "start the server first"
        return self.__first.server_port

    # -- test controls -----------------------------------------------------------------------

    @property
    def http_requests(self) -> list[HttpRequest]:
        """Every request received so far, in order."""
        with self.__lock:
            return list(self.__log)

    def script(self, *statuses: int) -> None:
        """Answer the next requests with these HTTP statuses (429, 500, ...) instead of serving them."""
        with self.__lock:
            self.__scripted.extend(statuses)

    def next_scripted(self) -> int | None:
        """The status scripted for the request being handled (taken), or None."""
        with self.__lock:
            return self.__scripted.pop(0) if self.__scripted else None

    def hold(self, timeout: float = 30.0) -> None:
        """Keep the calling request waiting until :meth:`release` or :meth:`stop` (at most
        ``timeout`` seconds); the fake then answers None: the request goes unanswered. A release
        that came after the request arrived counts, so none is missed by a request on its way."""
        with self.__lock:
            seen = getattr(self.__arrival, "releases", self.__releases)
            self.__lock.wait_for(lambda: self.__releases != seen, timeout)

    def release(self) -> None:
        """Stop hanging: requests held now are dropped unanswered, the next ones answered."""
        self.hang = False
        with self.__lock:
            self.__releases += 1
            self.__lock.notify_all()

    def _receive(self, request: HttpRequest) -> HttpAnswer | None:
        with self.__lock:
            self.__log.append(request)
            self.__arrival.releases = self.__releases
        return self.handle(request)
