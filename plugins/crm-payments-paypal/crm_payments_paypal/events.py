"""PayPal's capture and refund resources as the contract's PaymentEvent s (for the payer's return
and for webhooks alike: both carry the same capture object)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from crmcore.money import to_decimal
from crmcore.payments.gateways import EventKind, PaymentEvent

#: a capture's status -> what it means for the attempt (refunded captures were paid first: the
#: refund is its own event)
CAPTURE_KIND = {
    "COMPLETED": EventKind.SUCCEEDED, "PARTIALLY_REFUNDED": EventKind.SUCCEEDED, "REFUNDED": EventKind.SUCCEEDED,
    "PENDING": EventKind.PENDING,
    "DECLINED": EventKind.FAILED, "FAILED": EventKind.FAILED,
}
CAPTURE_LINK = re.compile(r"/v2/payments/captures/([A-Za-z0-9\-]{1,36})/?\Z")
MAX_ATTEMPT_ID = 2**63 - 1


def money(value: Any) -> tuple[Decimal, str] | None:
    """PayPal's ``{"currency_code", "value"}`` as (amount, currency), or None when unreadable."""
    if not isinstance(value, Mapping):
        return None
    amount, currency = to_decimal(value.get("value")), value.get("currency_code")
    if amount is None or not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        return None
    return abs(amount), currency


def attempt_id(custom_id: Any) -> int | None:
    """The attempt id echoed in ``custom_id`` (create_session sends ``str(attempt_id)``)."""
    if isinstance(custom_id, str) and re.fullmatch(r"[0-9]{1,19}", custom_id):
        number = int(custom_id)
        return number if number <= MAX_ATTEMPT_ID else None
    return None


def timestamp(value: Any) -> dt.datetime | None:
    """An RFC 3339 time (``2026-03-12T09:30:00Z``) as an aware UTC datetime."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(dt.UTC)


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _reason(resource: Mapping[str, Any]) -> str | None:
    details = resource.get("status_details")
    return _text(details.get("reason"), 100) if isinstance(details, Mapping) else None


def capture_event(capture: Mapping[str, Any], *, order_id: str | None, event_id: str | None = None,
                  kind: str | None = None, fallback_custom_id: Any = None) -> PaymentEvent | None:
    """The event a capture reports (its own status decides unless ``kind`` is given); None for a
    capture without an id or an unknown status."""
    capture_id = _text(capture.get("id"), 64)
    status = capture.get("status")
    kind = kind or CAPTURE_KIND.get(status if isinstance(status, str) else "")
    if capture_id is None or kind is None:
        return None
    paid = money(capture.get("amount"))
    custom_id = capture.get("custom_id") if capture.get("custom_id") is not None else fallback_custom_id
    detail = None
    reason = _reason(capture)
    if kind == EventKind.FAILED:
        detail = f"PayPal: capture {str(status or '').lower() or 'declined'}" + (f" ({reason})" if reason else "")
    elif kind == EventKind.PENDING:
        detail = "PayPal: capture pending" + (f" ({reason})" if reason else "")
    return PaymentEvent(
        kind=kind, provider_reference=order_id, provider_payment_id=capture_id,
        amount=paid[0] if paid else None, currency=paid[1] if paid else None,
        attempt_id=attempt_id(custom_id), provider_event_id=event_id,
        occurred_at=timestamp(capture.get("create_time")), detail=detail,
    )


def refund_event(refund: Mapping[str, Any], *, event_id: str | None, detail: str) -> PaymentEvent | None:
    """A refund (or reversal) of a capture: ``provider_payment_id`` is the capture's id, from the
    refund's ``up`` link, so it names the payment the money came from."""
    refund_id = _text(refund.get("id"), 64)
    if refund_id is None:
        return None
    capture_id = None
    links = refund.get("links")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, Mapping) and link.get("rel") == "up" and isinstance(link.get("href"), str):
            found = CAPTURE_LINK.search(link["href"].split("?", 1)[0])
            if found:
                capture_id = found.group(1)
    paid = money(refund.get("amount"))
    return PaymentEvent(
        kind=EventKind.REFUNDED, provider_reference=None, provider_payment_id=capture_id,
        amount=paid[0] if paid else None, currency=paid[1] if paid else None,
        attempt_id=attempt_id(refund.get("custom_id")), provider_event_id=event_id,
        occurred_at=timestamp(refund.get("create_time")), detail=f"{detail} (refund {refund_id})",
        provider_refund_id=refund_id,
    )
