"""The ``paypal`` payment gateway: PayPal Checkout through the Orders v2 REST API.

1. ``create_session``: ``POST /v2/checkout/orders`` (intent CAPTURE, one purchase unit carrying
   the invoice reference and the attempt id in ``custom_id``), ``PayPal-Request-Id`` = the
   attempt's idempotency key, so a retried attempt gets the same order. The payer is sent to the
   order's ``payer-action`` (or ``approve``) link.
2. ``handle_return``: the payer approved and came back; ``POST /v2/checkout/orders/{id}/capture``
   with ``PayPal-Request-Id: capture-{id}``, so a reloaded return page captures once and gets
   the same capture back. An order captured by other means (``ORDER_ALREADY_CAPTURED``) is read
   with ``GET /v2/checkout/orders/{id}``; a payer who has not approved yet yields nothing.
3. ``parse_webhook``: see :mod:`crm_payments_paypal.webhooks` (signature verified here, with
   PayPal's certificate, on the raw body).
4. ``refund``: ``POST /v2/payments/captures/{capture id}/refund`` with the amount.

Amounts are sent with the currency's decimals (crmcore.money: 2 for EUR, none for JPY).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

from crm_payments_paypal.client import PayPalApi
from crm_payments_paypal.events import capture_event, money
from crm_payments_paypal.schemas import load_settings
from crm_payments_paypal.webhooks import verified_events
from crmcore.money import round_money
from crmcore.payments.gateways import (
    EventKind,
    PaymentEvent,
    PaymentGateway,
    PaymentRequest,
    PaymentSession,
    PermanentFailure,
    RefundResult,
    ReturnRequest,
    TemporaryFailure,
    WebhookRequest,
)

#: PayPal's locale format (BCP 47 subset): "nl", "nl-NL", "zh-Hant-TW"
LOCALE = re.compile(r"[a-z]{2}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|[0-9]{3}))?\Z")
CURRENCY = re.compile(r"[A-Z]{3}\Z")
ORDER_ID = re.compile(r"[A-Za-z0-9\-]{1,36}\Z")
REFUND_STATUS = {"COMPLETED": "succeeded", "PENDING": "pending"}
#: currencies that PayPal takes in whole units although ISO 4217 gives them decimals
WHOLE_UNITS_ONLY = frozenset({"HUF", "TWD"})


def _config(settings: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return load_settings(settings)
    except ValueError as exc:
        raise PermanentFailure(str(exc)) from None


def amount_value(amount: Decimal, currency: str) -> str:
    """``amount`` as PayPal's ``value``: the currency's decimals, no exponent (JPY 1200, EUR 12.30).
    PayPal refuses decimals in HUF and TWD: a fractional amount there is refused, not rounded."""
    rounded = round_money(amount, currency)
    if currency in WHOLE_UNITS_ONLY:
        if rounded != rounded.to_integral_value():
            raise PermanentFailure(f"PayPal takes whole amounts in {currency}: {rounded} has a fraction")
        rounded = rounded.quantize(Decimal(1))
    return format(rounded, "f")


def _locale(value: str | None) -> str | None:
    if not value:
        return None
    value = value.replace("_", "-")
    head, _, rest = value.partition("-")
    value = head.lower() + ("-" + rest.upper() if len(rest) == 2 else ("-" + rest if rest else ""))
    return value if LOCALE.fullmatch(value) else None


def _link(data: Mapping[str, Any], *rels: str) -> str | None:
    links = data.get("links")
    for rel in rels:
        for link in links if isinstance(links, list) else []:
            if isinstance(link, dict) and link.get("rel") == rel and isinstance(link.get("href"), str):
                return link["href"]
    return None


def _order_id(value: str) -> str:
    if not ORDER_ID.fullmatch(value or ""):
        raise PermanentFailure("not a PayPal order id")
    return value


class PayPalGateway(PaymentGateway):
    name = "paypal"
    title = "PayPal"
    timeout = 20.0

    def _api(self, settings: Mapping[str, Any]) -> PayPalApi:
        return PayPalApi(_config(settings), budget=self.timeout)

    # -- 1. the order ------------------------------------------------------------------------

    def create_session(self, request: PaymentRequest, settings: Mapping[str, Any]) -> PaymentSession:
        api = self._api(settings)
        currency = (request.currency or "").upper()
        if not CURRENCY.fullmatch(currency):
            raise PermanentFailure("the currency must be an ISO 4217 code such as EUR")
        if not isinstance(request.amount, Decimal) or not request.amount.is_finite() or request.amount <= 0:
            raise PermanentFailure("the amount to pay must be more than zero")
        value = amount_value(request.amount, currency)
        if Decimal(value) <= 0:
            raise PermanentFailure(f"the amount rounds to zero in {currency}")
        unit: dict[str, Any] = {"custom_id": str(request.attempt_id),
                                "amount": {"currency_code": currency, "value": value}}
        if request.reference:
            # invoice_id per ATTEMPT: PayPal accounts block a second payment with an invoice id
            # already paid by default, which would refuse the rest of a part-paid invoice
            suffix = f"-{request.attempt_id}"
            unit["reference_id"] = request.reference[:256]
            unit["invoice_id"] = request.reference[:127 - len(suffix)] + suffix
        if request.description:
            unit["description"] = request.description[:127]
        context: dict[str, Any] = {"return_url": request.return_url, "cancel_url": request.cancel_url,
                                   "user_action": "PAY_NOW", "shipping_preference": "NO_SHIPPING"}
        if api.config.get("brand_name"):
            context["brand_name"] = api.config["brand_name"]
        locale = _locale(request.locale)
        if locale:
            context["locale"] = locale
        body = {"intent": "CAPTURE", "purchase_units": [unit],
                "payment_source": {"paypal": {"experience_context": context}}}
        reply = api.request("POST", "/v2/checkout/orders", body=body, request_id=request.idempotency_key)
        if not reply.ok:
            api.fail(reply, "the order")
        order_id = reply.data.get("id")
        link = _link(reply.data, "payer-action", "approve")
        if not isinstance(order_id, str) or not order_id or not link:
            raise TemporaryFailure("PayPal's answer to the order has no id or approval link")
        if urlsplit(link).scheme not in ("https", "http"):
            raise PermanentFailure("PayPal's approval link is not a web address")
        return PaymentSession(provider_reference=order_id, redirect_url=link)

    # -- 2. the payer's return: capture ----------------------------------------------------

    def handle_return(self, request: ReturnRequest, settings: Mapping[str, Any]) -> list[PaymentEvent]:
        api = self._api(settings)
        order_id = _order_id(request.provider_reference)
        path = f"/v2/checkout/orders/{quote(order_id, safe='')}"
        reply = api.request("POST", f"{path}/capture", request_id=f"capture-{order_id}",
                            prefer="return=representation")
        if reply.ok:
            return self._order_events(reply.data, order_id)
        issues = reply.issues
        if reply.status == 422 and "ORDER_NOT_APPROVED" in issues:
            return []  # back without approving (or not yet): nothing to confirm
        if reply.status == 422 and "ORDER_ALREADY_CAPTURED" in issues:
            order = api.request("GET", path)
            if not order.ok:
                api.fail(order, "reading the order")
            return self._order_events(order.data, order_id)
        if reply.status == 422 and "INSTRUMENT_DECLINED" in issues:
            return [PaymentEvent(kind=EventKind.FAILED, provider_reference=order_id, provider_payment_id=None,
                                 detail="PayPal declined the payer's funding source" + api.describe(reply))]
        api.fail(reply, "the capture")

    @staticmethod
    def _order_events(order: Mapping[str, Any], order_id: str) -> list[PaymentEvent]:
        events: list[PaymentEvent] = []
        units = order.get("purchase_units")
        for unit in units if isinstance(units, list) else []:
            if not isinstance(unit, dict):
                continue
            payments = unit.get("payments") if isinstance(unit.get("payments"), dict) else {}
            captures = payments.get("captures")
            for capture in captures if isinstance(captures, list) else []:
                if isinstance(capture, dict):
                    event = capture_event(capture, order_id=order_id, fallback_custom_id=unit.get("custom_id"))
                    if event is not None:
                        events.append(event)
        return events

    # -- 3. webhooks -----------------------------------------------------------------------

    def parse_webhook(self, request: WebhookRequest, settings: Mapping[str, Any], *,
                      now: dt.datetime | None = None) -> list[PaymentEvent]:
        return verified_events(request, settings, now=now, budget=self.timeout)

    # -- 4. refunds ------------------------------------------------------------------------

    def refund(self, provider_payment_id: str, amount: Decimal, currency: str, idempotency_key: str,
               settings: Mapping[str, Any]) -> RefundResult:
        api = self._api(settings)
        currency = (currency or "").upper()
        if not CURRENCY.fullmatch(currency):
            raise PermanentFailure("the currency must be an ISO 4217 code such as EUR")
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
            raise PermanentFailure("the amount to refund must be more than zero")
        if not ORDER_ID.fullmatch(provider_payment_id or ""):
            raise PermanentFailure("not a PayPal capture id")
        body = {"amount": {"currency_code": currency, "value": amount_value(amount, currency)}}
        reply = api.request("POST", f"/v2/payments/captures/{quote(provider_payment_id, safe='')}/refund",
                            body=body, request_id=idempotency_key, prefer="return=representation")
        if not reply.ok:
            api.fail(reply, "the refund")
        refund_id, status = reply.data.get("id"), reply.data.get("status")
        if not isinstance(refund_id, str) or not refund_id:
            raise TemporaryFailure("PayPal's answer to the refund has no id")
        if status not in REFUND_STATUS:
            reason = (reply.data.get("status_details") or {}).get("reason") \
                if isinstance(reply.data.get("status_details"), dict) else None
            raise PermanentFailure(f"PayPal did not refund (status {str(status)[:40]}"
                                   + (f", {str(reason)[:100]}" if reason else "") + ")")
        refunded = money(reply.data.get("amount"))
        return RefundResult(provider_refund_id=refund_id,
                            amount=refunded[0] if refunded else round_money(amount, currency),
                            status=REFUND_STATUS[status])
