"""PayPal webhooks, verified here with PayPal's certificate (the documented self-verification).

PayPal signs each delivery with RSA-SHA256 (``PAYPAL-AUTH-ALGO: SHA256withRSA``) over::

    <PAYPAL-TRANSMISSION-ID>|<PAYPAL-TRANSMISSION-TIME>|<webhook id>|<CRC32 of the raw body, decimal>

and sends the base64 signature in ``PAYPAL-TRANSMISSION-SIG`` with the URL of its certificate in
``PAYPAL-CERT-URL``. The webhook id is ours (the settings), so a delivery meant for another
subscription fails the check; the CRC32 covers every byte of the body. The certificate is fetched
only over https from a paypal.com host (or the host of ``api_base``: the sandbox, a local test
server) and cached by URL. Deliveries older than 10 minutes or more than 5 minutes in the future
are refused, so a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import threading
import time
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from crm_payments_paypal.events import capture_event, refund_event, timestamp
from crm_payments_paypal.schemas import load_settings
from crmcore.messaging.http import call
from crmcore.payments.gateways import (
    DeliveryError,
    EventKind,
    InvalidWebhook,
    PaymentEvent,
    WebhookRequest,
)

MAX_AGE = dt.timedelta(minutes=10)
MAX_AHEAD = dt.timedelta(minutes=5)
AUTH_ALGO = "SHA256withRSA"
HEADERS = ("PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-TIME", "PAYPAL-TRANSMISSION-SIG",
           "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO")
CERT_CACHE_SIZE = 32
CERT_CACHE_SECONDS = 24 * 3600

CAPTURE_EVENTS = {
    "PAYMENT.CAPTURE.COMPLETED": EventKind.SUCCEEDED,
    "PAYMENT.CAPTURE.PENDING": EventKind.PENDING,
    "PAYMENT.CAPTURE.DENIED": EventKind.FAILED,
    "PAYMENT.CAPTURE.DECLINED": EventKind.FAILED,
}
REFUND_EVENTS = {
    "PAYMENT.CAPTURE.REFUNDED": "PayPal: refunded",
    "PAYMENT.CAPTURE.REVERSED": "PayPal: reversed (a chargeback or PayPal took the money back)",
}

_certs: dict[str, tuple[float, x509.Certificate]] = {}
_certs_lock = threading.Lock()


def clear_certificate_cache() -> None:
    with _certs_lock:
        _certs.clear()


def verified_events(request: WebhookRequest, settings: Mapping[str, Any], *, now: dt.datetime | None,
                    budget: float) -> list[PaymentEvent]:
    """The events of a delivery whose signature, age and body check out; else InvalidWebhook."""
    try:
        config = load_settings(settings)
    except ValueError as exc:
        raise InvalidWebhook(str(exc)) from None
    if request.method.upper() != "POST":
        raise InvalidWebhook("PayPal webhooks are POST requests")
    values = {name: (request.header(name) or "").strip() for name in HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise InvalidWebhook(f"missing header {', '.join(missing)}: not a PayPal webhook")
    if values["PAYPAL-AUTH-ALGO"] != AUTH_ALGO:
        raise InvalidWebhook(f"unsupported PAYPAL-AUTH-ALGO {values['PAYPAL-AUTH-ALGO'][:40]!r}")
    _check_time(values["PAYPAL-TRANSMISSION-TIME"], now)
    certificate = certificate_for(values["PAYPAL-CERT-URL"], config, now=now, budget=budget)
    message = "|".join([values["PAYPAL-TRANSMISSION-ID"], values["PAYPAL-TRANSMISSION-TIME"],
                        config["webhook_id"], str(zlib.crc32(request.body))])
    verify_signature(certificate, message.encode("utf-8"), values["PAYPAL-TRANSMISSION-SIG"])
    return events_of(request.body)


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    return now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)


def _check_time(value: str, now: dt.datetime | None) -> None:
    sent = timestamp(value)
    if sent is None:
        raise InvalidWebhook("PAYPAL-TRANSMISSION-TIME is not a date and time")
    current = _now(now)
    if sent < current - MAX_AGE:
        raise InvalidWebhook("stale webhook: sent more than 10 minutes ago (a replay?)")
    if sent > current + MAX_AHEAD:
        raise InvalidWebhook("webhook sent in the future (more than 5 minutes ahead)")


def allowed_certificate_url(url: str, api_base: str) -> bool:
    """https, and a paypal.com host or the host of ``api_base``; no credentials in the URL."""
    if len(url) > 500:
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host or parts.username or parts.password:
        return False
    return host == "paypal.com" or host.endswith(".paypal.com") or host == (urlsplit(api_base).hostname or "").lower()


def certificate_for(url: str, config: Mapping[str, Any], *, now: dt.datetime | None, budget: float) -> x509.Certificate:
    """PayPal's signing certificate at ``url`` (fetched once, then cached), valid at ``now``."""
    if not allowed_certificate_url(url, str(config["api_base"])):
        raise InvalidWebhook("PAYPAL-CERT-URL is not an https address of PayPal: refused")
    with _certs_lock:
        cached = _certs.get(url)
    if cached is None or time.monotonic() - cached[0] > CERT_CACHE_SECONDS:
        certificate = _fetch_certificate(url, min(float(config.get("timeout") or 10.0), budget / 2))
        with _certs_lock:
            if len(_certs) >= CERT_CACHE_SIZE:
                _certs.pop(next(iter(_certs)))
            _certs[url] = (time.monotonic(), certificate)
    else:
        certificate = cached[1]
    current = _now(now)
    if not certificate.not_valid_before_utc <= current <= certificate.not_valid_after_utc:
        raise InvalidWebhook("PayPal's signing certificate is not valid at the transmission time")
    return certificate


def _fetch_certificate(url: str, timeout: float) -> x509.Certificate:
    try:
        answer = call("GET", url, timeout=timeout, what="PayPal's certificate server")
    except DeliveryError as exc:
        raise InvalidWebhook(f"the signing certificate could not be fetched: {exc}") from None
    if answer.status != 200:
        raise InvalidWebhook(f"the signing certificate could not be fetched (HTTP {answer.status})")
    try:
        certificates = x509.load_pem_x509_certificates(answer.body)
    except ValueError:
        certificates = []
    if not certificates:
        raise InvalidWebhook("PAYPAL-CERT-URL did not give a PEM certificate")
    if not isinstance(certificates[0].public_key(), rsa.RSAPublicKey):
        raise InvalidWebhook("PayPal's signing certificate has no RSA key")
    return certificates[0]


def verify_signature(certificate: x509.Certificate, message: bytes, signature: str) -> None:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidWebhook("PAYPAL-TRANSMISSION-SIG is not base64") from None
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)  # checked when fetched
    try:
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise InvalidWebhook("the signature does not match (another webhook ID, an edited body, "
                             "or not sent by PayPal)") from None


def events_of(body: bytes) -> list[PaymentEvent]:
    """The contract's events in a verified delivery (none for event types the gateway ignores)."""
    try:
        event = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidWebhook("the body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("event_type"), str):
        raise InvalidWebhook("the body is not a PayPal event")
    event_type, event_id, resource = event["event_type"], event.get("id"), event.get("resource")
    event_id = event_id[:100] if isinstance(event_id, str) and event_id else None
    if event_type not in CAPTURE_EVENTS and event_type not in REFUND_EVENTS:
        return []  # CHECKOUT.ORDER.APPROVED and the rest: the capture happens on the payer's return
    if not isinstance(resource, dict):
        raise InvalidWebhook(f"the {event_type} event has no resource")
    if event_type in CAPTURE_EVENTS:
        related = (resource.get("supplementary_data") or {}).get("related_ids") \
            if isinstance(resource.get("supplementary_data"), dict) else None
        order_id = related.get("order_id") if isinstance(related, dict) else None
        found = capture_event(resource, order_id=order_id if isinstance(order_id, str) else None,
                              event_id=event_id, kind=CAPTURE_EVENTS[event_type])
    else:
        found = refund_event(resource, event_id=event_id, detail=REFUND_EVENTS[event_type])
    if found is None:
        raise InvalidWebhook(f"the {event_type} event's resource has no id")
    return [found]
