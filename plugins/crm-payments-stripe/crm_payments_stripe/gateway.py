"""The ``stripe`` payment gateway: Stripe Checkout (hosted payment page), webhooks, refunds.

create_session: ``POST /v1/checkout/sessions`` (mode ``payment``, one line item priced in the
currency's smallest unit), sent with the attempt's ``Idempotency-Key``: a retry of the same
attempt gets the same session back. The payer pays on Stripe's page, then comes back to
``return_url``; :meth:`StripeGateway.handle_return` retrieves the session
(``GET /v1/checkout/sessions/{id}``) rather than trusting the query. Stripe also calls the webhook
(``checkout.session.completed`` and friends, the refund events), signed with the endpoint's
secret. The attempt id travels as ``client_reference_id`` and in the metadata of the session and
of its PaymentIntent (which Stripe copies onto the charge), so every payment event names its
attempt.

Refunds are reported one event per refund, named by the refund's id ``re_...`` and carrying
that refund's amount: ``charge.refunded`` holds only the charge's running total, so the charge's
refunds are listed (``GET /v1/refunds?charge=...``); ``refund.created``, ``refund.updated`` and
``charge.refund.updated`` hold the refund itself. Only succeeded refunds are reported; the same
refund reported by several events or deliveries is counted once by its id (the owning plugin).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from crm_payments_stripe.client import calling, clean, new_client
from crm_payments_stripe.schemas import is_test_mode, load_settings
from crm_payments_stripe.webhooks import (
    HEADER,
    Charge,
    CheckoutSession,
    Refund,
    read_event,
    read_object,
    read_refunds,
    verify,
)
from crmcore.payments.gateways import (
    EventKind,
    InvalidWebhook,
    PaymentEvent,
    PaymentGateway,
    PaymentRequest,
    PaymentSession,
    PermanentFailure,
    RefundResult,
    ReturnRequest,
    TemporaryFailure,
    WebhookRequest,
    from_minor_units,
    minor_units,
)

#: the locales Stripe Checkout displays (``locale`` of a Checkout Session)
LOCALES = ("bg", "cs", "da", "de", "el", "en", "en-GB", "es", "es-419", "et", "fi", "fil", "fr", "fr-CA",
           "hi-IN", "hr", "hu", "id", "it", "ja", "ko", "lt", "lv", "ms", "mt", "nb", "nl", "pl", "pt", "pt-BR",
           "ro", "ru", "sk", "sl", "sv", "th", "tr", "vi", "zh", "zh-HK", "zh-TW")
_LOCALE_BY_LOWER = {code.lower(): code for code in LOCALES}
#: Stripe refuses a session whose customer_email it cannot parse: such an address is left out
#: (the payer types one on Stripe's page) rather than failing the payment
EMAIL = re.compile(r"[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+\Z")
CURRENCY = re.compile(r"[A-Z]{3}\Z")
#: Stripe's limits: idempotency keys, metadata values
MAX_KEY, MAX_METADATA_VALUE = 255, 500
#: refunds read for one ``charge.refunded``: Stripe's largest page, newest first. The refund the
#: event is about is on it (older ones had events of their own), and one call stays within
#: :attr:`StripeGateway.timeout`
REFUND_PAGE = 100


def stripe_locale(locale: str | None) -> str | None:
    """The Checkout locale for ``locale`` ("nl_BE" -> "nl", "pt-br" -> "pt-BR"), None: Stripe's default."""
    if not locale:
        return None
    wanted = locale.strip().replace("_", "-").lower()
    return _LOCALE_BY_LOWER.get(wanted) or _LOCALE_BY_LOWER.get(wanted.split("-", 1)[0])


def attempt_of(metadata: Mapping[str, Any] | None, client_reference_id: str | None) -> int | None:
    """The attempt id echoed back in the metadata or as client_reference_id."""
    for value in ((metadata or {}).get("attempt_id"), client_reference_id):
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
            return int(value)
    return None


class _Refund(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True)
    amount = fields.Integer(required=True, strict=True)
    currency = fields.String(required=True)
    status = fields.String(load_default=None, allow_none=True)
    failure_reason = fields.String(load_default=None, allow_none=True)


class StripeGateway(PaymentGateway):
    name = "stripe"
    title = "Stripe"
    #: one call: connect (<= 5 s) and the whole answer (<= the ``timeout`` setting, at most 10 s)
    timeout = 20.0

    # -- starting a payment ---------------------------------------------------------------

    def create_session(self, request: PaymentRequest, settings: Mapping[str, Any]) -> PaymentSession:
        config = _config(settings)
        params = session_params(request, config)
        key = _idempotency_key(request.idempotency_key)
        session = calling("Stripe could not start the payment", config, lambda: new_client(config).v1.checkout
                          .sessions.create(params=params, options={"idempotency_key": key}))
        data = session.to_dict()
        session_id, url = data.get("id"), data.get("url")
        if not isinstance(session_id, str) or not session_id or not isinstance(url, str) or not url:
            raise PermanentFailure("Stripe's answer to the new Checkout Session has no id or payment page URL")
        return PaymentSession(provider_reference=session_id, redirect_url=url)

    # -- the payer's return ---------------------------------------------------------------

    def handle_return(self, request: ReturnRequest, settings: Mapping[str, Any]) -> list[PaymentEvent]:
        config = _config(settings)
        reference = request.provider_reference
        if not reference or len(reference) > 255 or "/" in reference:
            raise PermanentFailure("no Stripe Checkout Session to look up for this payment attempt")
        session = calling("Stripe could not confirm the payment", config,
                          lambda: new_client(config).v1.checkout.sessions.retrieve(reference))
        try:
            data = CheckoutSession().load(session.to_dict())
        except ValidationError as exc:
            names = ", ".join(sorted(exc.messages)) if isinstance(exc.messages, dict) else "?"
            error = PermanentFailure(f"Stripe's Checkout Session cannot be read (fields: {names})")
        else:
            if data["payment_status"] == "paid":
                return [_session_event(EventKind.SUCCEEDED, data, None, config, None)]
            if data["status"] == "complete" and data["payment_status"] == "unpaid":
                return [_session_event(EventKind.PENDING, data, None, config,
                                       "paid with a method that settles later (e.g. a bank debit)")]
            if data["status"] == "expired":
                return [_session_event(EventKind.FAILED, data, None, config, "the Checkout Session expired unpaid")]
            return []
        raise error

    # -- webhooks -------------------------------------------------------------------------

    def parse_webhook(self, request: WebhookRequest, settings: Mapping[str, Any], *,
                      now: dt.datetime | None = None) -> list[PaymentEvent]:
        """Verify and read a delivery. ``charge.refunded`` asks Stripe for the charge's refunds:
        when that fails, TemporaryFailure (answered non-2xx, so Stripe delivers it again)."""
        try:
            config = load_settings(settings)
        except ValueError as exc:
            raise InvalidWebhook(str(exc)) from None
        if request.method.upper() != "POST":
            raise InvalidWebhook("Stripe webhooks are POST requests")
        now = now or dt.datetime.now(dt.UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        verify(request.body, request.header(HEADER), config["webhook_secret"], now)
        event = read_event(request.body)
        handler = _HANDLERS.get(event["type"])
        return handler(event, config) if handler else []

    # -- refunds --------------------------------------------------------------------------

    def refund(self, provider_payment_id: str, amount: Decimal, currency: str, idempotency_key: str,
               settings: Mapping[str, Any]) -> RefundResult:
        config = _config(settings)
        currency = _currency(currency)
        units = minor_units(Decimal(amount), currency) if Decimal(amount).is_finite() else 0
        if units < 1:
            raise PermanentFailure(f"a refund needs an amount above zero (got {amount} {currency})")
        if not provider_payment_id or len(provider_payment_id) > 255:
            raise PermanentFailure("no Stripe payment to refund")
        # a payment reported without a PaymentIntent is refunded by its charge
        target = "charge" if provider_payment_id.startswith(("ch_", "py_")) else "payment_intent"
        key = _idempotency_key(idempotency_key)
        params: dict[str, Any] = {target: provider_payment_id, "amount": units}
        answer = calling("Stripe could not refund the payment", config, lambda: new_client(config).v1.refunds
                         .create(params=params, options={"idempotency_key": key}))
        try:
            refund = _Refund().load(answer.to_dict())
        except ValidationError:
            refund = None
        if refund is None:
            raise PermanentFailure("Stripe's answer to the refund cannot be read: check the refund in the Dashboard")
        if refund["status"] in ("failed", "canceled"):
            reason = clean(refund["failure_reason"] or "no reason given", config)
            raise PermanentFailure(f"Stripe refused the refund {refund['id']} ({refund['status']}: {reason})")
        return RefundResult(provider_refund_id=refund["id"],
                            amount=from_minor_units(refund["amount"], refund["currency"].upper()),
                            status="succeeded" if refund["status"] in (None, "succeeded") else "pending")

    def payer_instructions(self, settings: Mapping[str, Any]) -> str | None:
        return "You pay on Stripe's secure payment page and come back here afterwards."


# --------------------------------------------------------------------------------------------


def _config(settings: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return load_settings(settings)
    except ValueError as exc:
        raise PermanentFailure(str(exc)) from None


def _currency(currency: str) -> str:
    value = (currency or "").strip().upper()
    if not CURRENCY.match(value):
        raise PermanentFailure("the currency is not an ISO 4217 code")
    return value


def _idempotency_key(key: str) -> str:
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise PermanentFailure(f"the payment attempt needs an idempotency key of 1 to {MAX_KEY} characters")
    return key


def session_params(request: PaymentRequest, config: Mapping[str, Any]) -> dict[str, Any]:
    """The Checkout Session to create for ``request``."""
    currency = _currency(request.currency)
    amount = Decimal(request.amount)
    units = minor_units(amount, currency) if amount.is_finite() else 0
    if units < 1:
        raise PermanentFailure(f"a payment needs an amount above zero (got {request.amount} {currency})")
    metadata = {str(k): str(v)[:MAX_METADATA_VALUE] for k, v in request.metadata.items()}
    metadata["attempt_id"] = str(request.attempt_id)
    name = (request.reference or "").strip() or (request.description or "").strip() or f"Payment {request.attempt_id}"
    product: dict[str, Any] = {"name": name}
    description = (request.description or "").strip()
    if description and description != name:
        product["description"] = description
    intent: dict[str, Any] = {"metadata": metadata, "description": f"{name}: {description}" if
                              "description" in product else name}
    if config.get("statement_descriptor_suffix"):
        intent["statement_descriptor_suffix"] = config["statement_descriptor_suffix"]
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [{"quantity": 1, "price_data": {
            "currency": currency.lower(), "unit_amount": units, "product_data": product}}],
        "success_url": request.return_url,
        "cancel_url": request.cancel_url,
        "client_reference_id": str(request.attempt_id),
        "metadata": metadata,
        "payment_intent_data": intent,
    }
    email = (request.customer_email or "").strip()
    if email and EMAIL.match(email):
        params["customer_email"] = email
    locale = stripe_locale(request.locale)
    if locale:
        params["locale"] = locale
    if config.get("payment_method_types"):
        params["payment_method_types"] = list(config["payment_method_types"])
    return params


def _occurred(event: Mapping[str, Any] | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(event["created"], dt.UTC) if event else None


def _mode_note(config: Mapping[str, Any], detail: str | None) -> str | None:
    if not is_test_mode(config["secret_key"]):
        return detail
    return f"{detail} (Stripe test mode)" if detail else "Stripe test mode"


def _session_event(kind: str, session: Mapping[str, Any], event: Mapping[str, Any] | None,
                   config: Mapping[str, Any], detail: str | None) -> PaymentEvent:
    currency = (session["currency"] or "").upper() or None
    amount = session["amount_total"]
    payment_id = session["payment_intent"]
    if kind == EventKind.SUCCEEDED and payment_id is None:
        payment_id = session["id"]  # paid without a PaymentIntent (not seen in payment mode): still one payment
    return PaymentEvent(
        kind=kind,
        provider_reference=session["id"],
        provider_payment_id=payment_id,
        amount=from_minor_units(amount, currency) if amount is not None and currency else None,
        currency=currency,
        attempt_id=attempt_of(session["metadata"], session["client_reference_id"]),
        provider_event_id=event["id"] if event else None,
        occurred_at=_occurred(event),
        detail=_mode_note(config, detail),
    )


def _session_completed(event: dict[str, Any], config: Mapping[str, Any]) -> list[PaymentEvent]:
    session = read_object(CheckoutSession(), event)
    if session["payment_status"] == "paid":
        return [_session_event(EventKind.SUCCEEDED, session, event, config, None)]
    if session["payment_status"] == "unpaid":
        return [_session_event(EventKind.PENDING, session, event, config,
                               "paid with a method that settles later (e.g. a bank debit)")]
    return []  # no_payment_required: nothing was charged


def _async_succeeded(event: dict[str, Any], config: Mapping[str, Any]) -> list[PaymentEvent]:
    session = read_object(CheckoutSession(), event)
    return [_session_event(EventKind.SUCCEEDED, session, event, config, None)]


def _async_failed(event: dict[str, Any], config: Mapping[str, Any]) -> list[PaymentEvent]:
    session = read_object(CheckoutSession(), event)
    return [_session_event(EventKind.FAILED, session, event, config,
                           "the delayed payment failed (e.g. the bank debit was refused)")]


def _expired(event: dict[str, Any], config: Mapping[str, Any]) -> list[PaymentEvent]:
    session = read_object(CheckoutSession(), event)
    return [_session_event(EventKind.FAILED, session, event, config, "the Checkout Session expired unpaid")]


def _refund_event(refund: Mapping[str, Any], payment_id: str, attempt_id: int | None, event: Mapping[str, Any],
                  config: Mapping[str, Any]) -> PaymentEvent:
    """One refund: its own id and amount, when it was made (else when the event was sent)."""
    currency = refund["currency"].upper()
    amount = from_minor_units(refund["amount"], currency)
    when = dt.datetime.fromtimestamp(refund["created"], dt.UTC) if refund["created"] is not None else None
    charge = f" (charge {refund['charge']})" if refund["charge"] else ""
    return PaymentEvent(
        kind=EventKind.REFUNDED,
        provider_reference=None,
        provider_payment_id=payment_id,
        amount=amount,
        currency=currency,
        attempt_id=attempt_id,
        provider_event_id=event["id"],
        occurred_at=when or _occurred(event),
        detail=_mode_note(config, f"refund {refund['id']}: {amount} {currency} given back{charge}"),
        provider_refund_id=refund["id"],
    )


def _given_back(refund: Mapping[str, Any]) -> bool:
    """Only a succeeded refund gave money back; a pending one is reported when it succeeds."""
    return refund["status"] == "succeeded" and refund["amount"] > 0


def _charge_refunded(event: dict[str, Any], config: Mapping[str, Any]) -> list[PaymentEvent]:
    """``charge.refunded`` names the charge, not the refund: the charge's refunds are listed and
    each succeeded one reported, oldest first. A failed lookup raises TemporaryFailure (even a
    refused key: the event is genuine, and Stripe delivers it again once the settings are fixed)."""
    charge = read_object(Charge(), event)
    params = {"charge": charge["id"], "limit": REFUND_PAGE}
    try:
        answer = calling("Stripe's refunds of the payment could not be read", config,
                         lambda: new_client(config).v1.refunds.list(params=params))
    except PermanentFailure as exc:
        refused = TemporaryFailure(str(exc))
    else:
        refused = None
    if refused is not None:
        raise refused  # outside the except block: no chained exception to show or store
    listed = read_refunds(answer.to_dict())
    if listed is None:
        raise TemporaryFailure(f"Stripe's list of the refunds of charge {charge['id']} cannot be read")
    payment_id = charge["payment_intent"] or charge["id"]
    attempt_id = attempt_of(charge["metadata"], None)
    return [_refund_event(refund, payment_id, attempt_id, event, config) for refund in reversed(listed["data"])
            if _given_back(refund) and refund["charge"] in (None, charge["id"])]


def _refund_changed(event: dict[str, Any], config: Mapping[str, Any]) -> list[PaymentEvent]:
    """``refund.created`` / ``refund.updated`` / ``charge.refund.updated``: the refund itself; a
    refund of no charge (a customer balance refund) is no payment of ours."""
    refund = read_object(Refund(), event)
    payment_id = refund["payment_intent"] or refund["charge"]
    if not payment_id or not _given_back(refund):
        return []
    return [_refund_event(refund, payment_id, None, event, config)]


_HANDLERS: dict[str, Callable[[dict[str, Any], Mapping[str, Any]], list[PaymentEvent]]] = {
    "checkout.session.completed": _session_completed,
    "checkout.session.async_payment_succeeded": _async_succeeded,
    "checkout.session.async_payment_failed": _async_failed,
    "checkout.session.expired": _expired,
    "charge.refunded": _charge_refunded,
    "refund.created": _refund_changed,
    "refund.updated": _refund_changed,
    # the name of refund.updated for charge refunds on API versions before 2024-10-28
    "charge.refund.updated": _refund_changed,
}
