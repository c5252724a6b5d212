"""Stripe webhooks: the Stripe-Signature check on the raw body, and the events read from them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import time
from decimal import Decimal

import pytest
from crm_payments_stripe.gateway import StripeGateway
from crm_payments_stripe.webhooks import compute_signature, signature_header, verify
from hypothesis import given, settings
from hypothesis import strategies as st

from crmcore.payments.gateways import EventKind, InvalidWebhook, PaymentRequest, WebhookRequest

SECRET = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw"


@pytest.fixture
def gateway():
    return StripeGateway()


@pytest.fixture
def session_id(gateway, fake_stripe):
    request = PaymentRequest(attempt_id=12, idempotency_key="att-12", amount=Decimal("99.95"), currency="EUR",
                             reference="INV-12", description="Invoice 12", return_url="https://crm.example.com/r",
                             cancel_url="https://crm.example.com/c", metadata={"invoice_id": "12"})
    return gateway.create_session(request, fake_stripe.settings()).provider_reference


def parse(gateway, fake_stripe, request, **kwargs):
    return gateway.parse_webhook(request, fake_stripe.settings(), **kwargs)


# -- events -------------------------------------------------------------------------------------


def test_completed_and_paid_is_a_payment(gateway, fake_stripe, session_id):
    paid = fake_stripe.mark_paid(session_id)
    event = fake_stripe.session_event("checkout.session.completed", session_id)
    [got] = parse(gateway, fake_stripe, fake_stripe.webhook(event))
    assert got.kind == EventKind.SUCCEEDED
    assert (got.provider_reference, got.provider_payment_id) == (session_id, paid["payment_intent"])
    assert (got.amount, got.currency, got.attempt_id) == (Decimal("99.95"), "EUR", 12)
    assert got.provider_event_id == event["id"]
    assert got.occurred_at == dt.datetime.fromtimestamp(event["created"], dt.UTC)


def test_completed_but_unpaid_is_pending_then_async_outcomes(gateway, fake_stripe, session_id):
    fake_stripe.mark_processing(session_id)
    [pending] = parse(gateway, fake_stripe, fake_stripe.webhook(
        fake_stripe.session_event("checkout.session.completed", session_id)))
    assert pending.kind == EventKind.PENDING and pending.provider_payment_id.startswith("pi_")
    fake_stripe.settle(session_id)
    [paid] = parse(gateway, fake_stripe, fake_stripe.webhook(
        fake_stripe.session_event("checkout.session.async_payment_succeeded", session_id)))
    assert paid.kind == EventKind.SUCCEEDED and paid.provider_payment_id == pending.provider_payment_id
    assert paid.amount == Decimal("99.95")


def test_async_failure_and_expiry_are_failures(gateway, fake_stripe, session_id):
    fake_stripe.mark_processing(session_id)
    fake_stripe.settle(session_id, succeeded=False)
    [failed] = parse(gateway, fake_stripe, fake_stripe.webhook(
        fake_stripe.session_event("checkout.session.async_payment_failed", session_id)))
    assert failed.kind == EventKind.FAILED and failed.attempt_id == 12 and "failed" in failed.detail
    other = gateway.create_session(PaymentRequest(
        attempt_id=13, idempotency_key="att-13", amount=Decimal("5"), currency="EUR", reference="INV-13",
        description="", return_url="https://crm.example.com/r", cancel_url="https://crm.example.com/c"),
        fake_stripe.settings()).provider_reference
    fake_stripe.expire(other)
    [expired] = parse(gateway, fake_stripe, fake_stripe.webhook(
        fake_stripe.session_event("checkout.session.expired", other)))
    assert expired.kind == EventKind.FAILED and expired.attempt_id == 13 and expired.provider_payment_id is None


def test_attempt_from_client_reference_when_metadata_is_gone(gateway, fake_stripe, session_id):
    event = fake_stripe.session_event("checkout.session.expired", session_id)
    event["data"]["object"]["metadata"] = {}
    assert parse(gateway, fake_stripe, fake_stripe.webhook(event))[0].attempt_id == 12
    event["data"]["object"]["client_reference_id"] = "not-a-number"
    assert parse(gateway, fake_stripe, fake_stripe.webhook(event))[0].attempt_id is None


def test_an_expanded_payment_intent_is_read_by_its_id(gateway, fake_stripe, session_id):
    intent = fake_stripe.mark_paid(session_id)["payment_intent"]
    event = fake_stripe.session_event("checkout.session.completed", session_id)
    event["data"]["object"]["payment_intent"] = {"id": intent, "object": "payment_intent"}
    assert parse(gateway, fake_stripe, fake_stripe.webhook(event))[0].provider_payment_id == intent


def test_other_events_report_nothing(gateway, fake_stripe, session_id):
    for type_ in ("payment_intent.succeeded", "customer.created", "checkout.session.unknown_future_event"):
        event = fake_stripe.event(type_, {"id": "pi_1", "object": "payment_intent"})
        assert parse(gateway, fake_stripe, fake_stripe.webhook(event)) == []
    event = fake_stripe.session_event("checkout.session.completed", session_id)
    event["data"]["object"]["payment_status"] = "no_payment_required"
    assert parse(gateway, fake_stripe, fake_stripe.webhook(event)) == []


# -- refused deliveries -------------------------------------------------------------------------


@pytest.fixture
def delivery(fake_stripe, session_id):
    fake_stripe.mark_paid(session_id)
    return fake_stripe.webhook(fake_stripe.session_event("checkout.session.completed", session_id))


def test_an_edited_body_is_refused(gateway, fake_stripe, delivery):
    edited = delivery.body.replace(b'"amount_total": 9995', b'"amount_total": 1')
    assert edited != delivery.body
    with pytest.raises(InvalidWebhook, match="does not match"):
        parse(gateway, fake_stripe, dataclasses.replace(delivery, body=edited))
    # the raw bytes are signed: the same JSON written differently is another body
    reformatted = json.dumps(json.loads(delivery.body)).encode()
    with pytest.raises(InvalidWebhook, match="does not match"):
        parse(gateway, fake_stripe, dataclasses.replace(delivery, body=reformatted))


def test_another_secret_is_refused(gateway, fake_stripe, session_id):
    event = fake_stripe.session_event("checkout.session.expired", session_id)
    with pytest.raises(InvalidWebhook, match="webhook_secret") as exc:
        parse(gateway, fake_stripe, fake_stripe.webhook(event, secret="whsec_" + "0" * 32))
    assert fake_stripe.webhook_secret not in str(exc.value)


@pytest.mark.parametrize(("offset", "message"), [(-301, "301 s old"), (-3600, "old"), (301, "in the future"),
                                                 (86400, "in the future")])
def test_timestamps_beyond_tolerance_are_refused(gateway, fake_stripe, session_id, offset, message):
    now = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    event = fake_stripe.session_event("checkout.session.expired", session_id)
    request = fake_stripe.webhook(event, timestamp=int(now.timestamp()) + offset)
    with pytest.raises(InvalidWebhook, match=message):
        parse(gateway, fake_stripe, request, now=now)


@pytest.mark.parametrize("offset", [-300, -1, 0, 120, 300])
def test_timestamps_within_tolerance_pass(gateway, fake_stripe, session_id, offset):
    now = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    request = fake_stripe.webhook(fake_stripe.session_event("checkout.session.expired", session_id),
                                  timestamp=int(now.timestamp()) + offset)
    assert parse(gateway, fake_stripe, request, now=now)[0].kind == EventKind.FAILED


def test_naive_now_is_utc(gateway, fake_stripe, delivery):
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert parse(gateway, fake_stripe, delivery, now=now)[0].kind == EventKind.SUCCEEDED


@pytest.mark.parametrize(("header", "message"), [
    (None, "no Stripe-Signature header"),
    ("", "no Stripe-Signature header"),
    ("garbage", "no timestamp"),
    ("t=abc,v1=00", "no readable timestamp"),
    ("t=-5,v1=00", "no readable timestamp"),
    ("t=１２３,v1=00", "no readable timestamp"),
    ("t=1700000000", "no v1 signature"),
    ("t=1700000000,v0=abcdef", "no v1 signature"),
    ("v1=abcdef", "no timestamp"),
    ("t=1700000000,v1=" + "0" * 64, "does not match"),
    ("t=1700000000,v1=é", "does not match"),
    ("t=1,v1=" + "a" * 5000, "too long"),
])
def test_missing_or_malformed_signatures_are_refused(gateway, fake_stripe, delivery, header, message):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    with pytest.raises(InvalidWebhook, match=message):
        parse(gateway, fake_stripe, dataclasses.replace(delivery, headers=headers))


def test_header_name_is_case_insensitive_and_any_v1_may_match(gateway, fake_stripe, delivery):
    header = delivery.header("Stripe-Signature")
    stamp, good = header.split(",")
    rolled = f"{stamp},v1={'f' * 64},{good},v0=ignored"
    request = dataclasses.replace(delivery, headers={"stripe-signature": rolled})
    assert parse(gateway, fake_stripe, request)[0].kind == EventKind.SUCCEEDED


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff\xfe", b"[]", b'"event"', b"{}",
                                  b'{"object": "charge", "id": "ch_1"}',
                                  b'{"id": "evt_1", "object": "event", "type": "charge.refunded", "created": 1}',
                                  b'{"id": "evt_1", "object": "event", "type": "x", "created": "soon", "data": {}}'])
def test_signed_but_unreadable_bodies_are_refused(gateway, fake_stripe, body):
    with pytest.raises(InvalidWebhook, match="not JSON|not a Stripe event|cannot be read"):
        parse(gateway, fake_stripe, fake_stripe.webhook(body))


@pytest.mark.parametrize(("type_", "obj"), [
    ("checkout.session.completed", {"id": "cs_1", "object": "checkout.session"}),
    ("checkout.session.completed", {"id": "cs_1", "object": "checkout.session", "payment_status": "paid",
                                    "amount_total": "12.34", "currency": "eur"}),
    ("checkout.session.completed", {"id": "cs_1", "object": "charge", "payment_status": "paid"}),
    ("charge.refunded", {"id": "ch_1", "object": "charge", "amount_refunded": -5, "currency": "eur"}),
    ("charge.refunded", {"id": "ch_1", "object": "charge", "amount_refunded": 5, "currency": "euro"}),
    ("refund.created", {"id": "re_1", "object": "charge", "amount": 5, "currency": "eur", "status": "succeeded"}),
    ("refund.updated", {"id": "re_1", "object": "refund", "amount": "5.00", "currency": "eur"}),
    ("refund.updated", {"id": "re_1", "object": "refund", "amount": 5, "currency": "eur", "charge": 7}),
    ("charge.refund.updated", {"id": "", "object": "refund", "amount": 5, "currency": "eur"}),
])
def test_signed_events_of_the_wrong_shape_are_refused(gateway, fake_stripe, type_, obj):
    with pytest.raises(InvalidWebhook, match="cannot be read"):
        parse(gateway, fake_stripe, fake_stripe.webhook(fake_stripe.event(type_, obj)))


def test_get_and_missing_settings_are_refused(gateway, fake_stripe, delivery):
    with pytest.raises(InvalidWebhook, match="POST"):
        parse(gateway, fake_stripe, dataclasses.replace(delivery, method="GET"))
    with pytest.raises(InvalidWebhook, match=r"\(webhook_secret\)"):
        gateway.parse_webhook(delivery, {"secret_key": fake_stripe.secret_key, "api_base": fake_stripe.url})


# -- the signature scheme itself ---------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"id": "evt_1"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, body, 1700000000) == expected
    assert signature_header(SECRET, body, 1700000000) == f"t=1700000000,v1={expected}"


def test_the_stripe_package_accepts_our_signatures():
    """The stripe package's own checker agrees: the fake signs as Stripe does."""
    import stripe

    body = b'{"id": "evt_1", "object": "event"}'
    header = signature_header(SECRET, body, int(time.time()))
    assert stripe.WebhookSignature.verify_header(body.decode(), header, SECRET, 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode() + " ", header, SECRET, 300)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), secret=st.text(min_size=1, max_size=40), stamp=st.integers(0, 10**10),
       flip=st.integers(min_value=0))
def test_any_change_to_body_or_timestamp_breaks_the_signature(body, secret, stamp, flip):
    now = dt.datetime.fromtimestamp(stamp, dt.UTC)
    header = signature_header(secret, body, stamp)
    assert verify(body, header, secret, now) == stamp
    if body:
        index = flip % len(body)
        changed = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1:]
        with pytest.raises(InvalidWebhook):
            verify(changed, header, secret, now)
    with pytest.raises(InvalidWebhook):
        verify(body, header.replace(f"t={stamp},", f"t={stamp + 1},"), secret, now)
    with pytest.raises(InvalidWebhook):
        verify(body, header, secret + "x", now)


def test_request_header_lookup_is_the_contract_one():
    request = WebhookRequest(method="POST", url="u", headers={"STRIPE-SIGNATURE": "t=1,v1=2"}, query={}, body=b"")
    assert request.header("Stripe-Signature") == "t=1,v1=2"
