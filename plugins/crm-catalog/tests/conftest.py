"""Fixtures of the catalog tests: the plugin enabled in ``acme`` (and, for isolation, in
``globex``), products and parties to price, a statement counter, and a real browser."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from crm_catalog import NAME, service
from sqlalchemy import event

from crmcore.parties.service import create_party
from crmcore.plugins.service import enable_plugin

_numbers = itertools.count(1)


@pytest.fixture
def cat(ctx):
    """The plugin enabled in ``acme`` (currency EUR); returns the owner's context."""
    enable_plugin(ctx, NAME)
    return ctx


@pytest.fixture
def other_cat(other_ctx):
    enable_plugin(other_ctx, NAME)
    return other_ctx


def new_product(ctx: Any, **values: Any) -> Any:
    """A product with a fresh SKU (``values`` override the defaults)."""
    n = next(_numbers)
    data = {"sku": f"SKU-{n}", "name": f"Product {n}", "unit_price": Decimal("10.00"), "tax_rate": Decimal(21)}
    data.update(values)
    return service.create_product(ctx, data)


def new_party(ctx: Any, name: str | None = None) -> Any:
    return create_party(ctx, {"kind": "organisation", "name": name or f"Customer {next(_numbers)}"})


class StatementCounter:
    """Counts the SQL statements an engine runs while active (SAVEPOINTs included)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def __enter__(self) -> StatementCounter:
        self.statements = []
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)

    @property
    def selects(self) -> int:
        return sum(1 for s in self.statements if s.lstrip().upper().startswith("SELECT"))


@pytest.fixture
def count_statements(crm):
    return lambda: StatementCounter(crm.db.engine)


# -- a real browser (Playwright driving Debian's Chromium, as tests/web does) -----------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture
def browse(app: Any) -> Iterator[Any]:
    """``browse(fn)``: run ``fn(page)`` in headless Chromium against the app served on 127.0.0.1.

    Playwright's sync API runs in a thread of its own (tests/web's session browser may already
    hold an event loop in the main thread). Failures in ``fn`` are raised here."""
    import logging
    import os
    import threading

    from werkzeug.serving import make_server

    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    base_url = f"http://127.0.0.1:{server.server_port}"

    def run(fn: Any) -> None:
        failure: list[BaseException] = []

        def target() -> None:
            from playwright.sync_api import sync_playwright

            try:
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                    try:
                        context = browser.new_context(base_url=base_url, viewport={"width": 1360, "height": 900})
                        page = context.new_page()
                        page.set_default_timeout(10_000)
                        fn(page)
                    finally:
                        browser.close()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                failure.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(timeout=120)
        assert not thread.is_alive(), "the browser did not finish in 120 s"
        if failure:
            raise failure[0]

    yield run
    server.shutdown()
    serving.join(timeout=10)
