"""The console provider: logs and keeps every SMS, sends nothing; end to end through send_sms."""

from __future__ import annotations

import logging

import pytest
from crm_sms_console import DRIVER, NAME
from crm_sms_console.provider import ConsoleSmsProvider, clear_sent_messages, sent_messages
from sqlalchemy import text

from crmcore import ValidationFailed
from crmcore.messaging.providers import OutgoingSms
from crmcore.messaging.service import send_sms
from crmcore.plugins.drivers import load_group
from crmcore.plugins.service import enable_plugin


@pytest.fixture(autouse=True)
def _empty():
    clear_sent_messages()
    yield
    clear_sent_messages()


def test_discovered(crm):
    assert NAME in crm.registry.plugins and NAME not in crm.registry.errors
    assert load_group("crmcore.sms_providers")[DRIVER].obj is ConsoleSmsProvider


def test_send_logs_and_keeps(caplog):
    caplog.set_level(logging.INFO, logger="crm.sms.console")
    provider = ConsoleSmsProvider()
    result = provider.send(OutgoingSms(message_id=3, idempotency_key="k3", to="+32470123456",
                                       body="Zażółć gęślą jaźń " * 5), {"sender": "ACME"})
    [kept] = sent_messages()
    assert result.provider_message_id == kept.provider_message_id and result.status == "sent"
    assert kept.encoding == "UCS-2" and kept.segments == result.segments == 2 and kept.sender == "ACME"
    [record] = [r for r in caplog.records if r.name == "crm.sms.console"]
    assert "+32470123456" in record.getMessage() and "ACME" in record.getMessage()
    assert provider.supports_idempotency_for({}) is False


def test_report_delivered_setting():
    result = ConsoleSmsProvider().send(OutgoingSms(message_id=1, idempotency_key="k", to="+1", body="x"),
                                       {"report_delivered": True})
    assert result.status == "delivered"


def test_keeps_the_last_thousand():
    provider = ConsoleSmsProvider()
    for i in range(1005):
        provider.send(OutgoingSms(message_id=i, idempotency_key=f"k{i}", to="+1", body="x"), {})
    kept = sent_messages()
    assert len(kept) == 1000 and kept[0].message_id == 5


def test_end_to_end(ctx, crm):
    enable_plugin(ctx, NAME, {"report_delivered": True})
    message = send_sms(ctx, to="+32 470 12 34 56", text="Hello from the demo")
    [kept] = sent_messages()
    assert kept.to == "+32470123456" and kept.body == "Hello from the demo" and kept.message_id == message.id
    with crm.db.engine.connect() as conn:
        status, provider, pid = conn.execute(text(
            "select status, provider, provider_message_id from messages where id = :i"), {"i": message.id}).one()
    assert (status, provider, pid) == ("delivered", "console", kept.provider_message_id)


def test_no_callbacks(ctx, app):
    enable_plugin(ctx, NAME, {})
    assert app.test_client().post("/hooks/sms/console/acme", data={"id": "x"}).status_code == 403


def test_settings_validated(ctx):
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, {"sender": "x" * 40, "api_key": "nope"})
    assert set(exc.value.errors) == {"sender", "api_key"}
