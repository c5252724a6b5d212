"""The whole path: send_sms -> messages + outbox rows -> the delivery job -> Twilio (the local
server) -> the row records Twilio's sid -> Twilio's signed status callback -> delivered."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from crm_sms_twilio import NAME
from crm_sms_twilio.testing import FakeTwilio, signed_callback, status_params
from sqlalchemy import text

from crmcore.messaging.service import send_sms
from crmcore.outbox.service import run_message
from crmcore.plugins.service import enable_plugin

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "tok-" + "9f8e7d6c5b4a3210" * 2
PUBLIC = "https://crm.example.com"


@pytest.fixture
def fake():
    with FakeTwilio(ACCOUNT, TOKEN) as server:
        yield server


@pytest.fixture
def twilio(ctx, crm, fake):
    crm.config = dataclasses.replace(crm.config, public_url=PUBLIC)
    enable_plugin(ctx, NAME, {"account_sid": ACCOUNT, "auth_token": TOKEN, "from_number": "+15017122661",
                              "api_base_url": fake.url, "timeout": 0.5})
    return ctx


def row(crm, message_id):
    with crm.db.engine.connect() as conn:
        return conn.execute(text(
            "select m.status, m.provider, m.provider_message_id, m.segments, m.error, m.from_address, "
            "o.status as job, o.last_error, o.payload from messages m left join outbox o on o.id = m.outbox_id "
            "where m.id = :i"), {"i": message_id}).one()._mapping


def test_sent_then_delivered(twilio, crm, fake, app, caplog):
    caplog.set_level(logging.DEBUG)
    message = send_sms(twilio, to="+32 470 12 34 56", text="Your quote Q-17 is ready: 2 x loader, €12,400.")
    state = row(crm, message.id)
    [received] = fake.sent()
    assert state["status"] == "sent" and state["provider"] == "twilio" and state["job"] == "done"
    assert state["provider_message_id"] == received.sid and state["segments"] == 1
    assert received.form["To"] == "+32470123456"
    assert received.form["StatusCallback"] == f"{PUBLIC}/hooks/sms/twilio/acme"
    headers, body = signed_callback(TOKEN, received.form["StatusCallback"],
                                    status_params(ACCOUNT, received.sid, "delivered"))
    assert app.test_client().post("/hooks/sms/twilio/acme", data=body, headers=headers).status_code == 200
    assert row(crm, message.id)["status"] == "delivered"
    assert TOKEN not in caplog.text and TOKEN not in str(dict(row(crm, message.id)))


def test_invalid_number_fails_without_retry(twilio, crm, fake):
    fake.script(400)
    message = send_sms(twilio, to="+32 470 12 34 56", text="Hello")
    state = row(crm, message.id)
    assert state["status"] == "failed" and "21211" in state["error"]
    assert state["job"] == "done"  # a permanent failure is not retried


def test_server_error_is_retried_then_sent(twilio, crm, fake):
    fake.script(500)
    message = send_sms(twilio, to="+32 470 12 34 56", text="Hello")
    state = row(crm, message.id)
    assert state["status"] == "queued" and "HTTP 500" in state["error"]
    assert state["job"] == "failed" and "HTTP 500" in state["last_error"]
    outbox_id = _outbox_id(crm, message.id)
    assert run_message(crm, outbox_id) == "done"
    state = row(crm, message.id)
    assert state["status"] == "sent" and state["error"] is None and len(fake.sent()) == 1


def test_hanging_twilio_is_retried(twilio, crm, fake):
    fake.hang = True
    message = send_sms(twilio, to="+32 470 12 34 56", text="Hello")
    state = row(crm, message.id)
    assert state["status"] == "queued" and "did not answer within 0.5 s" in state["error"]
    fake.release()
    assert run_message(crm, _outbox_id(crm, message.id)) == "done"
    assert row(crm, message.id)["status"] == "sent"


def test_bad_credentials_fail_and_leak_nothing(ctx, crm, fake, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + "e" * 26
    enable_plugin(ctx, NAME, {"account_sid": ACCOUNT, "auth_token": wrong, "from_number": "+15017122661",
                              "api_base_url": fake.url})
    message = send_sms(ctx, to="+32 470 12 34 56", text="Hello")
    state = row(crm, message.id)
    assert state["status"] == "failed" and "authentication failed" in state["error"]
    assert wrong not in str(dict(state)) and wrong not in caplog.text


def _outbox_id(crm, message_id):
    with crm.db.engine.connect() as conn:
        return conn.execute(text("select outbox_id from messages where id = :i"), {"i": message_id}).scalar()
