"""Stripe webhooks: the ``Stripe-Signature`` check and the events the gateway reads.

Stripe signs each delivery: ``Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]`` where
v1 is HMAC-SHA256, keyed by the endpoint's signing secret, of ``"<t>." + the raw body``. There
may be several v1 values (while a secret is being rolled) and other schemes (v0, test only),
which are ignored. A timestamp more than :data:`TOLERANCE` seconds from now is refused, so a
captured delivery cannot be replayed later. The event's object is read with marshmallow: a
signed event of an unexpected shape is refused, never a crash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from crmcore.payments.gateways import InvalidWebhook

#: seconds between the signature's timestamp and now, either way (Stripe's libraries use 300)
TOLERANCE = 300
HEADER = "Stripe-Signature"
MAX_HEADER = 4096


def compute_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The v1 signature of ``body`` sent at ``timestamp``."""
    payload = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={compute_signature(secret, body, timestamp)}"


def verify(body: bytes, header: str | None, secret: str, now: dt.datetime, tolerance: int = TOLERANCE) -> int:
    """Check ``header`` against the raw ``body``; the signed timestamp, or InvalidWebhook."""
    if not header or not header.strip():
        raise InvalidWebhook(f"no {HEADER} header: not a delivery from Stripe")
    if len(header) > MAX_HEADER:
        raise InvalidWebhook(f"the {HEADER} header is too long")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t" and timestamp is None:
            if not value.isascii() or not value.isdigit() or len(value) > 12:
                raise InvalidWebhook(f"the {HEADER} header has no readable timestamp")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise InvalidWebhook(f"the {HEADER} header has no timestamp (t=...)")
    if not signatures:
        raise InvalidWebhook(f"the {HEADER} header has no v1 signature")
    expected = compute_signature(secret, body, timestamp).encode()
    # every candidate is compared, in constant time each
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise InvalidWebhook("the Stripe signature does not match: the body was changed, or it was signed "
                             "with another endpoint's secret (check webhook_secret in the plugin's settings)")
    age = now.timestamp() - timestamp
    if abs(age) > tolerance:
        when = "old" if age > 0 else "in the future"
        raise InvalidWebhook(f"the Stripe signature's timestamp is {abs(age):.0f} s {when} (more than "
                             f"{tolerance} s): a replayed delivery, or a clock that is wrong")
    return timestamp


# --------------------------------------------------------------------------------------------
# the events


class Expandable(fields.Field):
    """A reference Stripe gives as an id, or as the object itself when expanded: the id."""

    default_error_messages = {"invalid": "an id or an object with an id"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, dict):
            value = value.get("id")
        if not isinstance(value, str) or not value or len(value) > 255:
            raise self.make_error("invalid")
        return value


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class EventData(_Strict):
    object = fields.Dict(required=True)


class Event(_Strict):
    id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    type = fields.String(required=True, validate=validate.Length(min=1, max=255))
    created = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10**11))
    livemode = fields.Boolean(load_default=False)
    data = fields.Nested(EventData, required=True)


def _metadata() -> fields.Field:
    return fields.Dict(keys=fields.String(), values=fields.String(allow_none=True), load_default=dict,
                       allow_none=True)


def _currency(**kwargs: Any) -> fields.Field:
    return fields.String(validate=validate.Regexp(r"[A-Za-z]{3}\Z", error="an ISO 4217 code"), **kwargs)


def _id() -> fields.Field:
    return fields.String(required=True, validate=validate.Length(min=1, max=255))


class CheckoutSession(_Strict):
    id = _id()
    object = fields.String(required=True, validate=validate.Equal("checkout.session"))
    payment_status = fields.String(required=True)
    status = fields.String(load_default=None, allow_none=True)
    amount_total = fields.Integer(strict=True, validate=validate.Range(min=0), load_default=None, allow_none=True)
    currency = _currency(load_default=None, allow_none=True)
    payment_intent = Expandable(load_default=None, allow_none=True)
    client_reference_id = fields.String(load_default=None, allow_none=True)
    metadata = _metadata()


class Charge(_Strict):
    id = _id()
    object = fields.String(required=True, validate=validate.Equal("charge"))
    amount_refunded = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    currency = _currency(required=True)
    payment_intent = Expandable(load_default=None, allow_none=True)
    metadata = _metadata()


class Refund(_Strict):
    """A refund: the object of ``refund.*`` events, and each item of ``GET /v1/refunds``."""

    id = _id()
    object = fields.String(required=True, validate=validate.Equal("refund"))
    amount = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    currency = _currency(required=True)
    # pending, requires_action, succeeded, failed or canceled
    status = fields.String(load_default=None, allow_none=True)
    charge = Expandable(load_default=None, allow_none=True)
    payment_intent = Expandable(load_default=None, allow_none=True)
    created = fields.Integer(strict=True, validate=validate.Range(min=0, max=10**11), load_default=None,
                             allow_none=True)


class RefundList(_Strict):
    """The answer of ``GET /v1/refunds``: one page, newest first."""

    object = fields.String(required=True, validate=validate.Equal("list"))
    data = fields.List(fields.Nested(Refund), required=True)
    has_more = fields.Boolean(load_default=False)


def read_event(body: bytes) -> dict[str, Any]:
    """The event envelope of a (verified) body, or InvalidWebhook."""
    try:
        raw = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidWebhook("the webhook body is not JSON") from None
    if not isinstance(raw, dict) or raw.get("object", "event") != "event":
        raise InvalidWebhook("the webhook body is not a Stripe event")
    return _load(Event(), raw, "the Stripe event")


def read_object(schema: Schema, event: dict[str, Any]) -> dict[str, Any]:
    return _load(schema, event["data"]["object"], f"the object of the {event['type'][:80]} event")


def read_refunds(raw: Any) -> dict[str, Any] | None:
    """Stripe's answer to ``GET /v1/refunds``, or None when it cannot be read."""
    try:
        return RefundList().load(raw)
    except ValidationError:
        return None


def _load(schema: Schema, raw: Any, what: str) -> dict[str, Any]:
    try:
        return schema.load(raw)
    except ValidationError as exc:
        names = ", ".join(sorted(str(k) for k in exc.messages)) if isinstance(exc.messages, dict) else "?"
        message = f"{what} cannot be read (fields: {names})"
    raise InvalidWebhook(message)
