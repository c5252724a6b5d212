"""Authorize.Net webhooks: the ``X-ANET-Signature`` check and reading a notification.

Authorize.Net POSTs JSON ``{"notificationId", "eventType", "eventDate", "webhookId", "payload"}``
and signs it: ``X-ANET-Signature: sha512=<HEX>``, the HMAC-SHA512 of the raw body keyed by the
merchant's Signature Key. The key is used as written (its 128 hexadecimal characters as text, as
Authorize.Net's own examples do), not decoded to 64 bytes; the hex digest comes in upper case and
is compared case-insensitively, in constant time, on the body exactly as received.

A notification carries no signed timestamp apart from ``eventDate`` in the signed body: one dated
more than :data:`MAX_AGE` ago (a replay) or more than :data:`MAX_AHEAD` ahead is refused. A
delivery Authorize.Net retries after that is refused as well; the payer's return confirms the
payment on its own (see the gateway's ``handle_return``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from crm_payments_authorizenet.api import decode
from crmcore.payments.gateways import InvalidWebhook

HEADER = "X-ANET-Signature"
MAX_AGE = dt.timedelta(minutes=10)
MAX_AHEAD = dt.timedelta(minutes=5)
MAX_BODY = 64 * 1024
_HEX = re.compile(r"[0-9A-Fa-f]{128}")
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?")


def signature(signature_key: str, body: bytes) -> str:
    """The ``X-ANET-Signature`` header value Authorize.Net sends with ``body``."""
    digest = hmac.new(signature_key.encode("utf-8"), body, hashlib.sha512).hexdigest()
    return f"sha512={digest.upper()}"


def verify(body: bytes, header: str | None, signature_key: str) -> None:
    """Raise InvalidWebhook unless ``header`` signs the raw ``body`` with ``signature_key``."""
    if not header or not header.strip():
        raise InvalidWebhook(f"no {HEADER} header: not a delivery from Authorize.Net")
    scheme, sep, value = header.strip().partition("=")
    value = value.strip()
    if not sep or scheme.strip().lower() != "sha512" or not _HEX.fullmatch(value):
        raise InvalidWebhook(f"the {HEADER} header is not sha512=<128 hexadecimal digits>")
    expected = signature(signature_key, body)[len("sha512="):].lower()
    if not hmac.compare_digest(expected.encode("ascii"), value.lower().encode("ascii")):
        raise InvalidWebhook(f"the {HEADER} signature does not match: the body was changed, or it was signed "
                             "with another Signature Key (check signature_key in the plugin's settings)")


def event_date(value: str) -> dt.datetime:
    """``eventDate`` (ISO 8601, up to 7 fraction digits as Authorize.Net writes them) in UTC."""
    match = _DATE.fullmatch(value.strip())
    if match is None:
        raise InvalidWebhook("the notification's eventDate is not a date and time")
    base, fraction, zone = match.groups()
    text = base + (f".{fraction[:6].ljust(6, '0')}" if fraction else "") + ("+00:00" if zone in (None, "Z") else zone)
    try:
        return dt.datetime.fromisoformat(text).astimezone(dt.UTC)
    except ValueError:
        raise InvalidWebhook("the notification's eventDate is not a date and time") from None


def check_fresh(when: dt.datetime, now: dt.datetime) -> None:
    age = now - when
    if age > MAX_AGE:
        raise InvalidWebhook(f"the notification is {age.total_seconds():.0f} s old (more than "
                             f"{MAX_AGE.total_seconds():.0f} s): a replayed or long-delayed delivery")
    if -age > MAX_AHEAD:
        raise InvalidWebhook(f"the notification is dated {-age.total_seconds():.0f} s in the future: "
                             "a forged date, or a clock that is wrong")


# --------------------------------------------------------------------------------------------
# reading a verified body


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class Notification(_Lenient):
    notification_id = fields.String(data_key="notificationId", required=True, validate=validate.Length(min=1, max=100))
    event_type = fields.String(data_key="eventType", required=True, validate=validate.Length(min=1, max=200))
    event_date = fields.String(data_key="eventDate", required=True, validate=validate.Length(min=1, max=40))
    webhook_id = fields.String(data_key="webhookId", load_default=None, allow_none=True)
    payload = fields.Dict(required=True)


class TransId(fields.Field):
    """A transaction id: digits, given as a JSON string or number."""

    default_error_messages = {"invalid": "a transaction id (digits)"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 20:
            raise self.make_error("invalid")
        return value


class TransactionPayload(_Lenient):
    entity_name = fields.String(data_key="entityName", load_default=None, allow_none=True)
    id = TransId(required=True)
    response_code = fields.Integer(data_key="responseCode", load_default=None, allow_none=True)
    auth_amount = fields.Decimal(data_key="authAmount", load_default=None, allow_none=True,
                                 validate=validate.Range(min=0))
    invoice_number = fields.String(data_key="invoiceNumber", load_default=None, allow_none=True,
                                   validate=validate.Length(max=255))


def read(body: bytes) -> dict[str, Any]:
    """The notification envelope of a verified body, or InvalidWebhook."""
    if len(body) > MAX_BODY:
        raise InvalidWebhook("the notification is too large")
    raw = decode(body)
    if not isinstance(raw, dict):
        raise InvalidWebhook("the notification is not a JSON object")
    return _load(Notification(), raw, "the notification")


def transaction(notification: dict[str, Any]) -> dict[str, Any]:
    return _load(TransactionPayload(), notification["payload"], f"the payload of {notification['event_type'][:80]}")


def _load(schema: Schema, raw: Any, what: str) -> dict[str, Any]:
    try:
        return schema.load(raw)
    except ValidationError as exc:
        names = ", ".join(sorted(str(k) for k in exc.messages)) if isinstance(exc.messages, dict) else "?"
        message = f"{what} cannot be read (fields: {names})"
    raise InvalidWebhook(message)
