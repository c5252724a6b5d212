"""PayPal webhooks: signed by the fake PayPal as PayPal signs them, verified by the gateway itself
(certificate fetched over https from an allowed host, CRC32 of the raw body, webhook ID, age)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from crm_payments_paypal.testing import TEST_WEBHOOK_ID, pki, sign_webhook
from crm_payments_paypal.webhooks import allowed_certificate_url, events_of
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from crmcore.payments.gateways import EventKind, InvalidWebhook, PaymentRequest, ReturnRequest, WebhookRequest


@pytest.fixture
def now():
    """The receiving server's clock (read per test: a long run must not age the deliveries)."""
    return dt.datetime.now(dt.UTC)


def delivery(headers, body, method="POST"):
    return WebhookRequest(method=method, url="https://crm.example.com/hooks/payments/paypal/acme",
                          headers=headers, query={}, body=body)


@pytest.fixture
def capture(fake, gateway, settings):
    """A captured payment on the fake (attempt 41, EUR 99.95)."""
    session = gateway.create_session(PaymentRequest(
        attempt_id=41, idempotency_key="k-41", amount=Decimal("99.95"), currency="EUR", reference="INV-7",
        description="Invoice INV-7", return_url="https://crm.example.com/r", cancel_url="https://crm.example.com/c"),
        settings())
    fake.approve(session.provider_reference)
    gateway.handle_return(ReturnRequest(session.provider_reference, {}, {}), settings())
    return fake.captures[next(iter(fake.captures))]


def test_a_signed_capture_completed_is_a_payment(fake, gateway, settings, capture, now):
    headers, body = fake.capture_webhook(capture.id)
    [event] = gateway.parse_webhook(delivery(headers, body), settings(), now=now)
    assert event.kind == EventKind.SUCCEEDED and event.provider_payment_id == capture.id
    assert event.provider_reference == capture.order_id and event.attempt_id == 41
    assert (event.amount, event.currency) == (Decimal("99.95"), "EUR")
    assert event.provider_event_id == json.loads(body)["id"]


def test_headers_are_read_whatever_their_case(fake, gateway, settings, capture, now):
    headers, body = fake.capture_webhook(capture.id)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert gateway.parse_webhook(delivery(lowered, body), settings(), now=now)[0].provider_payment_id == capture.id


def test_the_certificate_is_fetched_once(fake, gateway, settings, capture, now):
    for _ in range(3):
        headers, body = fake.capture_webhook(capture.id)
        gateway.parse_webhook(delivery(headers, body), settings(), now=now)
    assert len(fake.requests_to("/v1/notifications/certs/")) == 1


@pytest.mark.parametrize(("event_type", "kind", "detail"), [
    ("PAYMENT.CAPTURE.PENDING", EventKind.PENDING, "pending"),
    ("PAYMENT.CAPTURE.DENIED", EventKind.FAILED, "PayPal: capture"),
    ("PAYMENT.CAPTURE.DECLINED", EventKind.FAILED, "PayPal: capture"),
])
def test_other_capture_events(fake, gateway, settings, capture, event_type, kind, detail, now):
    headers, body = fake.capture_webhook(capture.id, event_type=event_type)
    [event] = gateway.parse_webhook(delivery(headers, body), settings(), now=now)
    assert event.kind == kind and event.provider_payment_id == capture.id and detail in event.detail


def test_a_refund_names_the_capture_it_came_from(fake, gateway, settings, capture, now):
    refund = gateway.refund(capture.id, Decimal("20.00"), "EUR", "refund-1", settings())
    headers, body = fake.refund_webhook(refund.provider_refund_id)
    [event] = gateway.parse_webhook(delivery(headers, body), settings(), now=now)
    assert event.kind == EventKind.REFUNDED and event.provider_payment_id == capture.id
    assert (event.amount, event.currency) == (Decimal("20.00"), "EUR")
    assert event.provider_refund_id == refund.provider_refund_id and event.attempt_id == 41


@pytest.mark.parametrize("event_type", ["CHECKOUT.ORDER.APPROVED", "CUSTOMER.DISPUTE.CREATED", "BILLING.PLAN.CREATED"])
def test_events_without_a_payment_fact_yield_nothing(fake, gateway, settings, event_type, now):
    headers, body = fake.webhook(event_type, {"id": "5O190127TN364715T", "status": "APPROVED"},
                                 resource_type="checkout-order")
    assert gateway.parse_webhook(delivery(headers, body), settings(), now=now) == []


# -- refused deliveries -----------------------------------------------------------------------------


def refused(gateway, settings, headers, body, match, now=None, method="POST", **over):
    with pytest.raises(InvalidWebhook, match=match):
        gateway.parse_webhook(delivery(headers, body, method), settings(**over), now=now)


def test_an_edited_body_is_refused(fake, gateway, settings, capture):
    headers, body = fake.capture_webhook(capture.id)
    edited = body.replace(b'"99.95"', b'"9999.95"')
    assert edited != body
    refused(gateway, settings, headers, edited, "signature does not match")
    refused(gateway, settings, headers, body + b" ", "signature does not match")


def test_a_delivery_for_another_webhook_id_is_refused(fake, gateway, settings, capture):
    headers, body = fake.capture_webhook(capture.id, webhook_id="9XL90610J3647323C")
    refused(gateway, settings, headers, body, "signature does not match")


def test_a_signature_by_another_key_is_refused(fake, gateway, settings, capture):
    headers, body = fake.capture_webhook(capture.id)
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers["PAYPAL-TRANSMISSION-SIG"] = sign_webhook(impostor, headers["PAYPAL-TRANSMISSION-ID"],
                                                      headers["PAYPAL-TRANSMISSION-TIME"], TEST_WEBHOOK_ID, body)
    refused(gateway, settings, headers, body, "signature does not match")


def test_a_changed_transmission_header_breaks_the_signature(fake, gateway, settings, capture):
    headers, body = fake.capture_webhook(capture.id)
    refused(gateway, settings, {**headers, "PAYPAL-TRANSMISSION-ID": "69cd13f0-d67a-11e5-baa3-778b53f4ae55"}, body,
            "signature does not match")


@pytest.mark.parametrize("cert_url", [
    "https://evil.example.com/v1/notifications/certs/CERT-360caa42",
    "https://paypal.com.evil.example/v1/notifications/certs/CERT-360caa42",
    "https://evilpaypal.com/v1/notifications/certs/CERT-360caa42",
    "https://user:pw@api.paypal.com/v1/notifications/certs/CERT-360caa42",
    "ftp://api.paypal.com/cert",
    "not a url",
])
def test_a_certificate_from_elsewhere_is_refused_without_fetching_it(fake, gateway, settings, capture, cert_url):
    headers, body = fake.capture_webhook(capture.id, cert_url=cert_url)
    refused(gateway, settings, headers, body, "not an https address of PayPal")
    assert fake.requests_to("/v1/notifications/certs/") == []


def test_a_certificate_over_plain_http_is_refused(fake, gateway, settings, capture):
    headers, body = fake.capture_webhook(capture.id, cert_url=f"{fake.url}/v1/notifications/certs/{fake.cert_name}")
    refused(gateway, settings, headers, body, "not an https address of PayPal")
    assert fake.requests_to("/v1/notifications/certs/") == []


def test_an_unknown_certificate_is_refused(fake, gateway, settings, capture):
    headers, body = fake.capture_webhook(capture.id, cert_url=f"{fake.tls_url}/v1/notifications/certs/CERT-00ff")
    refused(gateway, settings, headers, body, r"could not be fetched \(HTTP 404\)")


def test_a_certificate_server_that_hangs_is_refused(fake, gateway, settings, capture):
    headers, body = fake.capture_webhook(capture.id)
    fake.hang = True
    refused(gateway, settings, headers, body, "could not be fetched", timeout=0.3)


def test_allowed_certificate_hosts():
    base = "https://api-m.sandbox.paypal.com"
    assert allowed_certificate_url("https://api.paypal.com/v1/notifications/certs/CERT-1", base)
    assert allowed_certificate_url("https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1", base)
    assert allowed_certificate_url("https://API-M.SANDBOX.PAYPAL.COM:443/cert", base)
    assert not allowed_certificate_url("https://api.paypal.com:abc/cert", base)
    assert not allowed_certificate_url("https://127.0.0.1/cert", base)
    assert allowed_certificate_url("https://127.0.0.1:8443/cert", "http://127.0.0.1:8080")


@pytest.mark.parametrize(("offset", "match"), [
    (dt.timedelta(minutes=-11), "stale"),
    (dt.timedelta(days=-3), "stale"),
    (dt.timedelta(minutes=6), "future"),
])
def test_stale_and_future_deliveries_are_refused(fake, gateway, settings, capture, now, offset, match):
    headers, body = fake.capture_webhook(capture.id, sent_at=now + offset)
    refused(gateway, settings, headers, body, match, now=now)


@pytest.mark.parametrize("offset", [dt.timedelta(minutes=-9), dt.timedelta(minutes=4)])
def test_deliveries_within_the_tolerance_are_taken(fake, gateway, settings, capture, now, offset):
    headers, body = fake.capture_webhook(capture.id, sent_at=now + offset)
    assert gateway.parse_webhook(delivery(headers, body), settings(), now=now)


def test_the_tolerance_is_measured_against_now(fake, gateway, settings, capture, now):
    """A delivery replayed an hour later is refused, though its signature is still good."""
    headers, body = fake.capture_webhook(capture.id, sent_at=now)
    assert gateway.parse_webhook(delivery(headers, body), settings(), now=now)
    refused(gateway, settings, headers, body, "stale", now=now + dt.timedelta(hours=1))


def test_without_now_the_clock_decides(fake, gateway, settings, capture):
    headers, body = fake.capture_webhook(capture.id)
    assert gateway.parse_webhook(delivery(headers, body), settings())
    headers, body = fake.capture_webhook(capture.id, sent_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30))
    refused(gateway, settings, headers, body, "stale")


@pytest.mark.parametrize("header", ["PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-TIME",
                                    "PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO"])
def test_a_missing_header_is_refused(fake, gateway, settings, capture, header):
    headers, body = fake.capture_webhook(capture.id)
    refused(gateway, settings, {k: v for k, v in headers.items() if k != header}, body, f"missing header {header}")
    refused(gateway, settings, {**headers, header: "  "}, body, f"missing header {header}")


@pytest.mark.parametrize(("header", "value", "match"), [
    ("PAYPAL-AUTH-ALGO", "SHA1withRSA", "unsupported PAYPAL-AUTH-ALGO"),
    ("PAYPAL-TRANSMISSION-TIME", "yesterday", "not a date and time"),
    ("PAYPAL-TRANSMISSION-TIME", "2026-03-12T09:30:00", "not a date and time"),
    ("PAYPAL-TRANSMISSION-SIG", "%%% not base64 %%%", "not base64"),
    ("PAYPAL-TRANSMISSION-SIG", "c2lnbmF0dXJl", "signature does not match"),
])
def test_garbage_headers_are_refused(fake, gateway, settings, capture, header, value, match):
    headers, body = fake.capture_webhook(capture.id)
    refused(gateway, settings, {**headers, header: value}, body, match)


@pytest.mark.parametrize(("body", "match"), [
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "not a PayPal event"),
    (b'{"id": "WH-1"}', "not a PayPal event"),
    (b'{"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED"}', "has no resource"),
    (b'{"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": {"status": "COMPLETED"}}', "no id"),
])
def test_signed_garbage_is_refused(fake, gateway, settings, body, match):
    """Even correctly signed, a body that is not a readable event is refused."""
    headers, _ = fake.webhook("PAYMENT.CAPTURE.COMPLETED", {})
    headers["PAYPAL-TRANSMISSION-SIG"] = sign_webhook(pki().signing_key, headers["PAYPAL-TRANSMISSION-ID"],
                                                      headers["PAYPAL-TRANSMISSION-TIME"], TEST_WEBHOOK_ID, body)
    refused(gateway, settings, headers, body, match)


def test_only_post_is_taken(fake, gateway, settings, capture):
    headers, body = fake.capture_webhook(capture.id)
    refused(gateway, settings, headers, body, "POST", method="GET")


def test_without_valid_settings_nothing_is_verified(fake, gateway, settings, capture):
    headers, body = fake.capture_webhook(capture.id)
    refused(gateway, settings, headers, body, r"\(webhook_id\)", webhook_id=None)
    assert fake.requests_to("/v1/notifications/certs/") == []


@given(st.binary(max_size=300) | st.builds(lambda v: json.dumps(v).encode(), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "event_type", "resource", "status", "amount", "links", "value", "currency_code",
                         "custom_id", "supplementary_data", "related_ids", "order_id", "rel", "href"]),
        children, max_size=5),
    max_leaves=20)))
def test_any_verified_body_is_read_or_refused_cleanly(body):
    try:
        events = events_of(body)
    except InvalidWebhook:
        return
    assert isinstance(events, list)


@given(st.sampled_from(["PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.PENDING"]),
       st.dictionaries(st.sampled_from(["id", "amount", "custom_id", "links", "status", "create_time",
                                        "supplementary_data", "status_details"]),
                       st.none() | st.integers() | st.text(max_size=10) | st.lists(st.text(max_size=5), max_size=2)
                       | st.fixed_dictionaries({"value": st.text(max_size=8), "currency_code": st.text(max_size=4)}),
                       max_size=8))
def test_odd_resources_never_crash(event_type, resource):
    body = json.dumps({"id": "WH-1", "event_type": event_type, "resource": resource}).encode()
    try:
        [event] = events_of(body)
    except InvalidWebhook:
        return
    assert event.amount is None or event.amount >= 0
    assert event.attempt_id is None or isinstance(event.attempt_id, int)
