"""Fixtures of the mass-mail tests: the plugin enabled with a newsletter template, parties to send
to, and a real SMTP server on 127.0.0.1 (aiosmtpd, as in crm-email-smtp's tests)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from crm_mass_mail import NAME

from crmcore.messaging import service as messaging
from crmcore.plugins.service import enable_plugin

NEWSLETTER = {
    "key": "newsletter", "name": "Newsletter", "subject": "News for {{ party.name }}",
    "body_text": "Hello {{ party.name }},\nthe {{ campaign }} news.\nUnsubscribe: {{ unsubscribe_url }}\n",
    "body_html": "<p>Hello {{ party.name }}</p><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>",
}


@pytest.fixture
def crm_config(crm_config):
    """The installation has a public address, so emails carry an unsubscribe link."""
    return dataclasses.replace(crm_config, public_url="https://crm.example.test")


@pytest.fixture
def mm(ctx):
    """The plugin enabled in ``acme``, with the ``newsletter`` template."""
    enable_plugin(ctx, NAME)
    messaging.create_template(ctx, NEWSLETTER)
    return ctx


class LoopbackController(Controller):
    """aiosmtpd's controller on a port the OS picks (port 0), read back once it listens."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=0, **kwargs)

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[LoopbackController, Inbox]]:
    inbox = Inbox()
    controller = LoopbackController(inbox)
    controller.start()
    yield controller, inbox
    controller.stop()


# -- a real browser (Playwright driving Debian's Chromium, as tests/web does) -----------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture
def browse(app: Any) -> Iterator[Any]:
    """``browse(fn)``: run ``fn(page)`` in headless Chromium against the app served on 127.0.0.1.

    Playwright's sync API runs in a thread of its own: when the whole suite runs, tests/web's
    session browser already holds an event loop in the main thread, and a second sync
    Playwright there is refused. Failures in ``fn`` are raised here."""
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
