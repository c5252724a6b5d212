"""The demo's SMS settings (hook ``crm_seed_demo``): a sender, and delivered at once, end to end."""

from __future__ import annotations

import pytest
from crm_sms_console import NAME
from crm_sms_console.plugin import crm_seed_demo
from crm_sms_console.provider import clear_sent_messages, sent_messages

from crmcore.messaging.service import get_message, send_sms
from crmcore.plugins.service import enable_plugin, get_settings


@pytest.fixture(autouse=True)
def _empty():
    clear_sent_messages()
    yield
    clear_sent_messages()


def test_seed_demo_sets_a_sender_and_delivered_reports(ctx):
    enable_plugin(ctx, NAME)
    assert crm_seed_demo(ctx) == ["SMS from 'DemoEquip' are written to the log (logger crm.sms.console)"]
    assert get_settings(ctx, NAME) == {"sender": "DemoEquip", "report_delivered": True}
    message = send_sms(ctx, to="+32470123456", text="Your loader is ready for pick-up.")
    [kept] = sent_messages()
    assert kept.sender == "DemoEquip" and kept.to == "+32470123456"
    assert get_message(ctx, message.id).status == "delivered"
