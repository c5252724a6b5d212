"""Applying delivery reports (crmcore.messaging.status) and finding a business's SMS provider."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from crmcore.messaging.models import Message
from crmcore.messaging.providers import (
    SMS_PROVIDERS_GROUP,
    OutgoingSms,
    SendResult,
    SmsProvider,
    StatusUpdate,
)
from crmcore.messaging.sms import sms_provider, sms_provider_settings
from crmcore.messaging.status import RANK, StatusResult, apply_status_updates, status_callback_url
from crmcore.plugins.drivers import register_driver, unregister_driver
from crmcore.plugins.service import disable_plugin

PROVIDER = "acme-sms"


def add(ctx, pid, status="sent", channel="sms", provider=PROVIDER):
    with ctx.crm.db.transaction(ctx.business_id) as session:
        message = Message(channel=channel, status=status, to_address="+32470123456", body_text="Hi",
                          provider=provider, provider_message_id=pid)
        session.add(message)
        session.flush()
        return message.id


def state(crm, message_id):
    with crm.db.engine.connect() as conn:
        return conn.execute(text("select status, error, delivered_at, sent_at from messages where id = :i"),
                            {"i": message_id}).one()


def upd(pid, status, error=None):
    return StatusUpdate(provider_message_id=pid, status=status, error=error)


def test_forward_only(ctx, crm):
    mid = add(ctx, "p1", status="queued")
    assert apply_status_updates(crm, ctx.business_id, PROVIDER, [upd("p1", "sent")]) == StatusResult(1, 0, 0)
    status, _error, delivered_at, sent_at = state(crm, mid)
    assert status == "sent" and sent_at is not None and delivered_at is None
    result = apply_status_updates(crm, ctx.business_id, PROVIDER, [upd("p1", "delivered"), upd("p1", "sent"),
                                                                    upd("p1", "failed", "late")])
    assert result == StatusResult(1, 2, 0)
    status, error, delivered_at, _ = state(crm, mid)
    assert status == "delivered" and error is None and delivered_at is not None


def test_failed_is_final_except_for_delivered(ctx, crm):
    mid = add(ctx, "p2")
    apply_status_updates(crm, ctx.business_id, PROVIDER, [upd("p2", "failed", "absent subscriber")])
    assert state(crm, mid)[:2] == ("failed", "absent subscriber")
    apply_status_updates(crm, ctx.business_id, PROVIDER, [upd("p2", "sent")])
    assert state(crm, mid)[0] == "failed"
    apply_status_updates(crm, ctx.business_id, PROVIDER, [upd("p2", "delivered")])
    assert state(crm, mid)[:2] == ("delivered", None)


def test_failed_without_error_text(ctx, crm):
    mid = add(ctx, "p3")
    apply_status_updates(crm, ctx.business_id, PROVIDER, [upd("p3", "failed")])
    assert state(crm, mid)[1] == "the provider reported the message as not delivered"


def test_unknown_ids_and_statuses_counted(ctx, crm):
    mid = add(ctx, "p4")
    add(ctx, "p5", channel="email")            # an email with the same provider is not an SMS
    add(ctx, "p6", provider="other-provider")  # another provider's id
    sup = add(ctx, "p7", status="suppressed")
    result = apply_status_updates(crm, ctx.business_id, PROVIDER, [
        upd("nope", "delivered"), upd("p5", "delivered"), upd("p6", "delivered"), upd("p4", "weird"),
        upd("p7", "delivered"), upd("", "delivered"), upd("x" * 300, "delivered")])
    assert result == StatusResult(updated=0, unchanged=2, unknown=5)
    assert state(crm, mid)[0] == "sent" and state(crm, sup)[0] == "suppressed"


def test_other_business_untouched(ctx, other_ctx, crm):
    mine, theirs = add(ctx, "same"), add(other_ctx, "same")
    assert apply_status_updates(crm, ctx.business_id, PROVIDER, [upd("same", "delivered")]).updated == 1
    assert state(crm, mine)[0] == "delivered" and state(crm, theirs)[0] == "sent"


def test_with_a_context(ctx, other_ctx, crm):
    mid = add(ctx, "p8")
    assert apply_status_updates(ctx, ctx.business_id, PROVIDER, [upd("p8", "delivered")]).updated == 1
    assert state(crm, mid)[0] == "delivered"
    with pytest.raises(ValueError, match="another business"):
        apply_status_updates(other_ctx, ctx.business_id, PROVIDER, [upd("p8", "delivered")])


def test_batch_and_duplicates(ctx, crm):
    ids = [add(ctx, f"b{i}") for i in range(50)]
    updates = [upd(f"b{i}", "delivered") for i in range(50)] * 2
    assert apply_status_updates(crm, ctx.business_id, PROVIDER, updates) == StatusResult(50, 50, 0)
    assert {state(crm, i)[0] for i in ids} == {"delivered"}


statuses = st.sampled_from(["queued", "sent", "delivered", "failed", "suppressed", "bogus"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.sampled_from(["queued", "sent", "failed", "delivered"]), reports=st.lists(statuses, max_size=8))
def test_status_is_the_furthest_reported(ctx, crm, start, reports):
    """Whatever order reports come in, the row ends at the furthest of its start and the reports
    (queued < sent < failed < delivered); delivered_at is set exactly when it ends delivered."""
    pid = f"h-{len(reports)}-{start}-{'-'.join(reports)}"
    mid = add(ctx, pid, status=start)
    for report in reports:
        apply_status_updates(crm, ctx.business_id, PROVIDER, [upd(pid, report, "err")])
    known = [s for s in reports if s in ("sent", "delivered", "failed")]
    expected = max([start, *known], key=RANK.__getitem__)
    status, error, delivered_at, _ = state(crm, mid)
    assert status == expected
    assert (delivered_at is not None) == (expected == "delivered" and start != "delivered")
    if expected == "failed" and start != "failed":
        assert error == "err"


def test_callback_url(crm):
    assert status_callback_url(crm.config, "twilio", "acme") is None
    config = dataclasses.replace(crm.config, public_url="https://crm.example.com/")
    assert status_callback_url(config, "twilio", "acme") == "https://crm.example.com/hooks/sms/twilio/acme"
    assert status_callback_url(dataclasses.replace(crm.config, public_url="crm.example.com"), "twilio", "acme") is None
    config = dataclasses.replace(crm.config, public_url=" https://example.com/crm ")
    assert status_callback_url(config, "a b/c", "x?y") == "https://example.com/crm/hooks/sms/a%20b%2Fc/x%3Fy"


class _Provider(SmsProvider):
    name = "acme-sms"
    title = "Acme SMS"

    def send(self, message: OutgoingSms, settings) -> SendResult:
        return SendResult(provider_message_id="x")


@pytest.fixture
def acme_driver(register_plugin, ctx):
    plugin = register_plugin(object(), name="acme-sms-plugin", enable_for=ctx)
    register_driver(SMS_PROVIDERS_GROUP, PROVIDER, _Provider, plugin)
    yield plugin
    unregister_driver(SMS_PROVIDERS_GROUP, PROVIDER)


def test_provider_lookup(acme_driver, ctx, other_ctx):
    found = sms_provider(ctx, PROVIDER)
    assert found is not None
    provider, plugin = found
    assert isinstance(provider, _Provider) and plugin == acme_driver
    assert sms_provider(ctx, PROVIDER)[0] is provider  # one instance per process
    assert sms_provider(other_ctx, PROVIDER) is None   # not enabled there
    assert sms_provider(ctx, "no-such-provider") is None
    assert sms_provider_settings(ctx, plugin) == {} and sms_provider_settings(ctx, None) == {}
    disable_plugin(ctx, acme_driver)
    assert sms_provider(ctx, PROVIDER) is None


def test_provider_lookup_refuses_what_is_not_a_provider(register_plugin, ctx):
    plugin = register_plugin(object(), name="odd-plugin", enable_for=ctx)
    register_driver(SMS_PROVIDERS_GROUP, "odd", dict, plugin)
    try:
        assert sms_provider(ctx, "odd") is None
    finally:
        unregister_driver(SMS_PROVIDERS_GROUP, "odd")


def test_idempotency_per_settings_defaults_to_the_class():
    assert _Provider().supports_idempotency_for({"anything": 1}) is False
