"""Fixtures of the mass-mail tests: the plugin enabled with a newsletter template, parties to send
to. The SMTP server (``smtp_server``) comes from crmcore.testing."""

from __future__ import annotations

import dataclasses

import pytest
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
