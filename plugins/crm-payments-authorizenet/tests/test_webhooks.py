"""parse_webhook: the X-ANET-Signature check on the raw body, stale and future dates, garbage, and
the events each notification becomes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from decimal import Decimal

import pytest
from crm_payments_authorizenet.testing import signed_webhook, transaction_payload
from crm_payments_authorizenet.webhooks import signature
from hypothesis import given, settings
from hypothesis import strategies as st

from crmcore.payments.gateways import EventKind, InvalidWebhook, WebhookRequest

NOW = dt.datetime(2026, 3, 14, 15, 9, 26, tzinfo=dt.UTC)
URL = "https://crm.example.com/hooks/payments/authorizenet/acme"
CAPTURE = "net.authorize.payment.authcapture.created"


def delivery(key, event=CAPTURE, payload=None, when=NOW - dt.timedelta(seconds=3), notification_id="nid-1"):
    payload = payload if payload is not None else transaction_payload("60012345678", Decimal("1250.50"), "A42")
    headers, body = signed_webhook(key, event, payload, notification_id=notification_id, event_date=when)
    return WebhookRequest(method="POST", url=URL, headers=headers, query={}, body=body)


def parse(gateway, fake, request, **over):
    return gateway.parse_webhook(request, fake.settings(**over), now=NOW)


def test_a_payment_notification_becomes_succeeded(fake, gateway):
    [event] = parse(gateway, fake, delivery(fake.signature_key))
    assert event.kind == EventKind.SUCCEEDED
    assert (event.provider_reference, event.provider_payment_id, event.attempt_id) == ("A42", "60012345678", 42)
    assert event.amount == Decimal("1250.50") and event.provider_event_id == "nid-1"
    assert event.occurred_at == NOW - dt.timedelta(seconds=3)
    assert event.detail == "sandbox: Authorize.Net transaction 60012345678: paid"
    [live] = parse(gateway, fake, delivery(fake.signature_key), environment="production")
    assert live.detail == "Authorize.Net transaction 60012345678: paid"


def test_the_amount_is_read_exactly():
    """authAmount is a JSON number: read as Decimal, never through float."""
    from crm_payments_authorizenet.webhooks import read, transaction

    body = b'{"notificationId":"n","eventType":"x","eventDate":"2026-03-14T15:09:26Z","payload":' \
           b'{"id":"1","authAmount":0.29,"responseCode":1}}'
    assert transaction(read(body))["auth_amount"] == Decimal("0.29")


def test_the_signature_is_the_documented_hmac():
    """HMAC-SHA512 keyed by the Signature Key's text, upper-case hex, after "sha512="."""
    import hashlib
    import hmac

    key, body = "ABCDEF0123456789" * 8, b'{"notificationId":"x"}'
    expected = hmac.new(key.encode("ascii"), body, hashlib.sha512).hexdigest().upper()
    assert signature(key, body) == f"sha512={expected}"


@pytest.mark.parametrize(("code", "kind"), [(2, EventKind.FAILED), (3, EventKind.FAILED), (4, EventKind.PENDING)])
def test_declines_errors_and_holds(fake, gateway, code, kind):
    payload = transaction_payload("60012345679", "10.00", "A42", response_code=code)
    [event] = parse(gateway, fake, delivery(fake.signature_key, payload=payload))
    assert event.kind == kind and event.provider_payment_id == "60012345679" and event.attempt_id == 42


@pytest.mark.parametrize(("event_type", "kind"), [
    ("net.authorize.payment.void.created", EventKind.FAILED),
    ("net.authorize.payment.fraud.approved", EventKind.SUCCEEDED),
    ("net.authorize.payment.fraud.declined", EventKind.FAILED),
    ("net.authorize.payment.fraud.held", EventKind.PENDING),
])
def test_other_payment_events(fake, gateway, event_type, kind):
    [event] = parse(gateway, fake, delivery(fake.signature_key, event=event_type))
    assert event.kind == kind and event.attempt_id == 42 and event.provider_payment_id == "60012345678"


def test_a_void_without_invoice_number_still_names_the_payment(fake, gateway):
    """Authorize.Net's void notification carries only the transaction id and amount."""
    payload = {"responseCode": 1, "authAmount": 0.29, "entityName": "transaction", "id": "60020981680"}
    [event] = parse(gateway, fake, delivery(fake.signature_key, event="net.authorize.payment.void.created",
                                            payload=payload))
    assert (event.kind, event.provider_payment_id, event.provider_reference, event.attempt_id) == \
        (EventKind.FAILED, "60020981680", None, None)


@pytest.mark.parametrize("invoice", ["INV-7", "B42", "A042", "A", "A4x2", "A" + "9" * 20])
def test_payments_this_installation_did_not_start_are_ignored(fake, gateway, invoice):
    payload = transaction_payload("60012345678", "10.00", invoice)
    assert parse(gateway, fake, delivery(fake.signature_key, payload=payload)) == []


def test_the_prefix_setting_selects_the_payments(fake, gateway):
    payload = transaction_payload("60012345678", "10.00", "STG42")
    assert parse(gateway, fake, delivery(fake.signature_key, payload=payload)) == []
    [event] = parse(gateway, fake, delivery(fake.signature_key, payload=payload), reference_prefix="STG")
    assert event.attempt_id == 42 and event.provider_reference == "STG42"


@pytest.mark.parametrize("event_type", ["net.authorize.customer.created", "net.authorize.payment.authorization.created",
                                        "net.authorize.payment.capture.created", "something.else"])
def test_other_events_report_nothing(fake, gateway, event_type):
    assert parse(gateway, fake, delivery(fake.signature_key, event=event_type, payload={"id": "x"})) == []


def test_lower_case_hex_and_spaces_are_accepted(fake, gateway):
    request = delivery(fake.signature_key)
    value = request.headers["X-ANET-Signature"]
    for header in (value.lower(), f"  {value} ", "SHA512=" + value[7:]):
        changed = dataclasses.replace(request, headers={"x-anet-signature": header})
        assert parse(gateway, fake, changed)[0].kind == EventKind.SUCCEEDED


def test_an_edited_body_is_refused(fake, gateway):
    request = delivery(fake.signature_key)
    edited = request.body.replace(b"1250.5", b"1.5")
    assert edited != request.body
    with pytest.raises(InvalidWebhook, match="does not match"):
        parse(gateway, fake, dataclasses.replace(request, body=edited))
    reformatted = json.dumps(json.loads(request.body), indent=1).encode()
    with pytest.raises(InvalidWebhook, match="does not match"):
        parse(gateway, fake, dataclasses.replace(request, body=reformatted))


def test_another_key_is_refused(fake, gateway, caplog):
    caplog.set_level(logging.DEBUG)
    other = "0123456789ABCDEF" * 8
    with pytest.raises(InvalidWebhook, match="another Signature Key") as exc:
        parse(gateway, fake, delivery(other))
    assert fake.signature_key not in str(exc.value) and other not in str(exc.value)
    assert fake.signature_key not in caplog.text
    # the key decoded from hex is not what Authorize.Net uses
    import hashlib
    import hmac

    request = delivery(fake.signature_key)
    digest = hmac.new(bytes.fromhex(fake.signature_key), request.body, hashlib.sha512).hexdigest().upper()
    with pytest.raises(InvalidWebhook):
        parse(gateway, fake, dataclasses.replace(request, headers={"X-ANET-Signature": f"sha512={digest}"}))


@pytest.mark.parametrize("header", [None, "", "   ", "abc", "sha256=" + "A" * 128, "sha512=" + "A" * 127,
                                    "sha512=" + "G" * 128, "sha512:" + "A" * 128, "sha512=" + "A" * 129,
                                    "t=1,v1=" + "a" * 64])
def test_missing_or_malformed_signatures_are_refused(fake, gateway, header):
    request = delivery(fake.signature_key)
    headers = {"Content-Type": "application/json"} | ({"X-ANET-Signature": header} if header is not None else {})
    with pytest.raises(InvalidWebhook, match="X-ANET-Signature"):
        parse(gateway, fake, dataclasses.replace(request, headers=headers))


@pytest.mark.parametrize(("age", "ok"), [(dt.timedelta(minutes=9, seconds=59), True), (dt.timedelta(minutes=10, seconds=1), False),
                                         (dt.timedelta(days=2), False), (-dt.timedelta(minutes=4), True),
                                         (-dt.timedelta(minutes=6), False)])
def test_stale_and_future_notifications_are_refused(fake, gateway, age, ok):
    request = delivery(fake.signature_key, when=NOW - age)
    if ok:
        assert parse(gateway, fake, request)[0].kind == EventKind.SUCCEEDED
    else:
        with pytest.raises(InvalidWebhook, match="old|future"):
            parse(gateway, fake, request)


@pytest.mark.parametrize(("written", "meant"), [
    ("2026-03-14T15:09:20.1234567Z", NOW.replace(second=20, microsecond=123456)),
    ("2026-03-14T15:09:20Z", NOW.replace(second=20)),
    ("2026-03-14T15:09:20", NOW.replace(second=20)),
    ("2026-03-14T10:09:20.5-05:00", NOW.replace(second=20, microsecond=500000)),
])
def test_event_date_forms(fake, gateway, written, meant):
    [event] = parse(gateway, fake, delivery(fake.signature_key, when=written))
    assert event.occurred_at == meant


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b"\xff\xfe", b'{"eventType": 1}', b"null",
                                  b'{"notificationId":"n","eventType":"' + CAPTURE.encode() + b'","eventDate":"yesterday","payload":{}}',
                                  b'{"notificationId":"n","eventType":"' + CAPTURE.encode() + b'","eventDate":"2026-03-14T15:09:20Z","payload":[]}',
                                  b'{"notificationId":"n","eventType":"' + CAPTURE.encode() + b'","eventDate":"2026-03-14T15:09:20Z","payload":{"id":"x1"}}',
                                  b'{"notificationId":"n","eventType":"' + CAPTURE.encode() + b'","eventDate":"2026-03-14T15:09:20Z","payload":{"id":"1","authAmount":-3}}',
                                  b'{"notificationId":"n","eventType":"' + CAPTURE.encode() + b'","eventDate":"2026-13-45T15:09:20Z","payload":{"id":"1"}}',
                                  b"[" * 5000 + b"]" * 5000])
def test_signed_garbage_is_refused_not_crashed_on(fake, gateway, body):
    request = WebhookRequest("POST", URL, {"X-ANET-Signature": signature(fake.signature_key, body)}, {}, body)
    with pytest.raises(InvalidWebhook):
        parse(gateway, fake, request)


def test_only_post(fake, gateway):
    with pytest.raises(InvalidWebhook, match="POST"):
        parse(gateway, fake, dataclasses.replace(delivery(fake.signature_key), method="GET"))


def test_incomplete_settings_cannot_verify(fake, gateway):
    with pytest.raises(InvalidWebhook, match="signature_key"):
        gateway.parse_webhook(delivery(fake.signature_key), {"api_login_id": "x", "transaction_key": "y" * 16}, now=NOW)


def test_a_refund_notification_names_the_refunded_payment(fake, gateway):
    token = gateway.create_session(_payment(), fake.settings()).redirect_fields["token"]
    paid = fake.pay(token)
    fake.settle()
    refund = gateway.refund(paid.trans_id, Decimal("100.00"), "USD", "refund-1", fake.settings())
    notification = fake.webhooks[-1]
    assert notification.event_type == "net.authorize.payment.refund.created"
    request = WebhookRequest("POST", URL, notification.headers, {}, notification.body)
    [event] = gateway.parse_webhook(request, fake.settings())
    assert event.kind == EventKind.REFUNDED and event.provider_payment_id == paid.trans_id
    assert event.amount == Decimal("100.00") and refund.provider_refund_id in event.detail
    assert event.provider_refund_id == refund.provider_refund_id
    assert fake.requests("getTransactionDetailsRequest")[-1].body["transId"] == refund.provider_refund_id


def test_each_refund_is_its_own_event_named_by_its_transaction(fake, gateway):
    """Two partial refunds: two events, each with its own amount and refund id (never a running
    total); a redelivered notification names the same refund again, so it is counted once."""
    token = gateway.create_session(_payment(), fake.settings()).redirect_fields["token"]
    paid = fake.pay(token)
    fake.settle()
    first = gateway.refund(paid.trans_id, Decimal("100.00"), "USD", "refund-1", fake.settings())
    first_note = fake.webhooks[-1]
    second = gateway.refund(paid.trans_id, Decimal("30.25"), "USD", "refund-2", fake.settings())
    second_note = fake.webhooks[-1]
    events = [event for note in (first_note, second_note, first_note) for event in gateway.parse_webhook(
        WebhookRequest("POST", URL, note.headers, {}, note.body), fake.settings())]
    assert [(e.provider_refund_id, e.amount) for e in events] == [
        (first.provider_refund_id, Decimal("100.00")), (second.provider_refund_id, Decimal("30.25")),
        (first.provider_refund_id, Decimal("100.00"))]
    assert first.provider_refund_id != second.provider_refund_id
    assert {e.provider_payment_id for e in events} == {paid.trans_id}
    assert all(e.kind == EventKind.REFUNDED for e in events)


def test_only_refunds_carry_a_refund_id(fake, gateway):
    [event] = parse(gateway, fake, delivery(fake.signature_key))
    assert event.kind == EventKind.SUCCEEDED and event.provider_refund_id is None


def test_a_refund_notification_when_details_are_out_of_reach(fake, gateway, caplog):
    from crmcore.payments.gateways import TemporaryFailure

    request = delivery(fake.signature_key, event="net.authorize.payment.refund.created", when=dt.datetime.now(dt.UTC))
    fake.script(503)
    with pytest.raises(TemporaryFailure):  # answered with an error: Authorize.Net delivers it again
        gateway.parse_webhook(request, fake.settings())
    # an unknown refund (E00040) is a refusal: logged, nothing reported
    assert gateway.parse_webhook(request, fake.settings()) == []
    assert "not reported" in caplog.text


def _payment():
    from crmcore.payments.gateways import PaymentRequest

    return PaymentRequest(attempt_id=7, idempotency_key="k7", amount=Decimal("250.00"), currency="USD",
                          reference="INV-7", description="Parts", return_url="https://crm.example.com/r",
                          cancel_url="https://crm.example.com/c")


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=300), position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_signature_accepts_exactly_the_signed_bytes(body, position, flip):
    """Any body verifies with its own signature; changing any byte of it is refused."""
    from crm_payments_authorizenet.webhooks import verify

    key = "1A2B3C4D5E6F7A8B" * 8
    header = signature(key, body)
    verify(body, header, key)
    if body:
        index = position % len(body)
        changed = body[:index] + bytes([body[index] ^ flip]) + body[index + 1:]
        with pytest.raises(InvalidWebhook):
            verify(changed, header, key)
    with pytest.raises(InvalidWebhook):
        verify(body + b" ", header, key)
