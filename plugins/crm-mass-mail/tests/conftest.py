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



