"""The whole path with the generic gateway: send_sms -> outbox -> delivery -> the local gateway
-> the gateway's id on the row -> a signed delivery report -> delivered."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from crm_sms_http import NAME
from crm_sms_http.provider import callback_signature
from crm_sms_http.testing import FakeGateway
from sqlalchemy import text

from crmcore.messaging.service import send_sms
from crmcore.outbox.service import run_message
from crmcore.plugins.service import enable_plugin

PUBLIC = "https://crm.example.com"
SECRET = "dlr-secret-" + "q" * 20
TOKEN = "api-" + "t" * 28


@pytest.fixture
def gateway():
    with FakeGateway(auth=("bearer", TOKEN), to_field="msisdn", text_field="message",
                     idempotency_field="client_ref") as server:
        yield server


@pytest.fixture
def gw_ctx(ctx, crm, gateway):
    crm.config = dataclasses.replace(crm.config, public_url=PUBLIC)
    enable_plugin(ctx, NAME, {
        "url_template": gateway.url, "body_format": "json", "to_field": "msisdn", "text_field": "message",
        "idempotency_field": "client_ref", "callback_url_field": "dlr_url", "auth_type": "bearer", "token": TOKEN,
        "message_id_path": "messages.0.id", "timeout": 0.5, "callbacks": True, "callback_secret": SECRET,
        "callback_id_field": "id", "callback_status_field": "status"})
    return ctx


def row(crm, message_id):
    with crm.db.engine.connect() as conn:
        return conn.execute(text(
            "select m.status, m.provider, m.provider_message_id, m.error, m.outbox_id, o.status as job, "
            "o.idempotency_key, o.payload, o.last_error from messages m join outbox o on o.id = m.outbox_id "
            "where m.id = :i"), {"i": message_id}).one()._mapping


def test_sent_then_delivered(gw_ctx, crm, gateway, app, caplog):
    caplog.set_level(logging.DEBUG)
    message = send_sms(gw_ctx, to="+32 470 12 34 56", text="Your invoice INV-88 is paid. Thank you!")
    state = row(crm, message.id)
    [request] = gateway.requests
    assert state["status"] == "sent" and state["provider"] == "http" and state["job"] == "done"
    assert state["provider_message_id"] == gateway.delivered[0].id
    assert request["fields"]["client_ref"] == state["idempotency_key"]
    assert request["fields"]["dlr_url"] == f"{PUBLIC}/hooks/sms/http/acme"
    body = json.dumps({"id": state["provider_message_id"], "status": "DELIVRD"}).encode()
    response = app.test_client().post("/hooks/sms/http/acme", data=body, headers={
        "Content-Type": "application/json", "X-Signature": callback_signature(SECRET, body)})
    assert response.status_code == 200
    assert row(crm, message.id)["status"] == "delivered"
    assert TOKEN not in caplog.text and SECRET not in caplog.text
    assert TOKEN not in str(dict(row(crm, message.id))) and SECRET not in str(dict(row(crm, message.id)))


def test_retry_after_a_lost_answer_reaches_the_phone_once(gw_ctx, crm, gateway):
    """The gateway accepted the SMS but the answer never came back (it hung): the retry carries
    the same idempotency key, so the gateway drops it and answers with the first id."""
    gateway.script(503)
    message = send_sms(gw_ctx, to="+32 470 12 34 56", text="Hello")
    assert row(crm, message.id)["status"] == "queued"
    assert run_message(crm, row(crm, message.id)["outbox_id"]) == "done"
    assert row(crm, message.id)["status"] == "sent" and len(gateway.delivered) == 1
    # a second run of the same job (a worker killed after the send, before recording) is a no-op
    # at the gateway: the key was seen
    keys = {r["fields"]["client_ref"] for r in gateway.requests}
    assert len(keys) == 1


def test_refusal_and_secrets(gw_ctx, crm, gateway, caplog):
    caplog.set_level(logging.DEBUG)
    gateway.script(401)
    message = send_sms(gw_ctx, to="+32 470 12 34 56", text="Hello")
    state = row(crm, message.id)
    assert state["status"] == "failed" and "refused the credentials" in state["error"]
    assert TOKEN not in str(dict(state)) and TOKEN not in caplog.text
