"""The ``authorizenet`` payment gateway: Accept Hosted, webhooks, refunds (Authorize.Net's JSON API).

Payment: ``getHostedPaymentPageRequest`` with an ``authCaptureTransaction`` returns a token; the
payer's browser POSTs it to the hosted form, pays there and is sent back to ``return_url``. The
attempt is known to Authorize.Net by the invoice number ``<prefix><attempt_id>`` (``A123``),
which webhooks echo: it is the session's ``provider_reference``.

Return: Authorize.Net tells the return page nothing. :meth:`handle_return` asks for the recent
unsettled transactions (one request) and reports the ones carrying the attempt's invoice
number; if that fails, it reports nothing and the webhook tells.

Webhooks: signed with the Signature Key (see :mod:`crm_payments_authorizenet.webhooks`);
``net.authorize.payment.authcapture.created`` reports the payment (or its decline),
``refund.created`` a refund (the refunded payment is looked up: the notification names only the
refund; ``provider_refund_id`` is the refund's own transaction id), ``void.created`` a cancelled payment, the ``fraud.*`` events a held payment and its
review.

Refund: the card's masked number comes from ``getTransactionDetailsRequest``, then
``createTransactionRequest`` / ``refundTransaction`` gives back the amount. Authorize.Net takes
no idempotency key; instead the refund carries an invoice number derived from the key and a
duplicate window of 8 hours, so a retry is refused as a duplicate naming the first refund, which
is then confirmed and returned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from babel.numbers import is_currency

from crm_payments_authorizenet import DRIVER, api, webhooks
from crm_payments_authorizenet.api import Budget
from crm_payments_authorizenet.schemas import load_settings
from crmcore.messaging.http import scrub
from crmcore.money import quantum, round_money, to_decimal
from crmcore.payments.gateways import (
    EventKind,
    GatewayError,
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
)

log = logging.getLogger("crm.payments.authorizenet")

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999999.99")  # Authorize.Net: at most 15 digits
MAX_CODE = 20  # invoiceNumber and refId: at most 20 characters
DUPLICATE_WINDOW = "28800"  # seconds (8 hours, the most Authorize.Net accepts)
RETURN_BUDGET = 10.0  # seconds the return page may wait for the confirming lookup
TRANS_ID = re.compile(r"[0-9]{1,20}")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}")
#: statuses of a transaction whose money was taken / that waits for a fraud review
CAPTURED = frozenset({"capturedPendingSettlement", "settledSuccessfully"})
IN_REVIEW = frozenset({"FDSPendingReview", "FDSAuthorizedPendingReview", "underReview"})
UNSETTLED = frozenset({"capturedPendingSettlement", "authorizedPendingCapture", "pendingSettlement",
                       "pendingFinalSettlement", "updatingSettlement", *IN_REVIEW})


def invoice_code(config: Mapping[str, Any], attempt_id: int) -> str:
    """The invoice number of a payment attempt: the settings' prefix and the attempt's id."""
    if isinstance(attempt_id, bool) or not isinstance(attempt_id, int) or attempt_id <= 0:
        raise PermanentFailure("Authorize.Net: the payment attempt has no valid id")
    code = f"{config['reference_prefix']}{attempt_id}"
    if len(code) > MAX_CODE:
        raise PermanentFailure(f"Authorize.Net: the invoice number {code} is longer than {MAX_CODE} characters "
                               "(choose a shorter reference_prefix)")
    return code


def attempt_of(config: Mapping[str, Any], invoice_number: str | None) -> int | None:
    """The attempt id in an invoice number made by :func:`invoice_code`, else None (a transaction
    this installation did not start: the Merchant Interface, another shop, another prefix)."""
    prefix = config["reference_prefix"]
    if not invoice_number or not invoice_number.startswith(prefix):
        return None
    digits = invoice_number[len(prefix):]
    if not digits.isascii() or not digits.isdigit() or digits.startswith("0") or len(invoice_number) > MAX_CODE:
        return None
    return int(digits)


def ref_id(idempotency_key: str) -> str:
    """``refId`` (at most 20 characters, echoed in the answer): a digest of the idempotency key."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:MAX_CODE]


def refund_code(idempotency_key: str) -> str:
    """The invoice number of a refund: the same for every retry of one refund, so Authorize.Net's
    duplicate check recognises the retry. The hyphen keeps it apart from any attempt's number."""
    return "r-" + hashlib.sha256(b"refund:" + idempotency_key.encode("utf-8")).hexdigest()[:MAX_CODE - 2]


class AuthorizeNetGateway(PaymentGateway):
    name = DRIVER
    title = "Authorize.Net"
    #: a refund makes up to three requests; :class:`Budget` keeps them all within this
    timeout = 30.0

    # -- paying --------------------------------------------------------------------------

    def create_session(self, request: PaymentRequest, settings: Mapping[str, Any]) -> PaymentSession:
        config = _config(settings)
        currency = _currency(request.currency)
        amount = _amount(request.amount, currency)
        code = invoice_code(config, request.attempt_id)
        return_options = {"showReceipt": False, "url": _web_address(request.return_url, "return_url"),
                          "urlText": "Continue", "cancelUrl": _web_address(request.cancel_url, "cancel_url"),
                          "cancelUrlText": "Cancel"}
        description = ": ".join(part.strip() for part in (request.reference, request.description) if part and part.strip())
        order = {"invoiceNumber": code} | ({"description": description[:255]} if description else {})
        transaction: dict[str, Any] = {
            "transactionType": "authCaptureTransaction",
            "amount": str(amount),
            "currencyCode": currency,
            "order": order,
        }
        email = (request.customer_email or "").strip()
        if EMAIL.fullmatch(email):
            transaction["customer"] = {"email": email}
        body = {
            "refId": ref_id(request.idempotency_key),
            "transactionRequest": transaction,
            "hostedPaymentSettings": {"setting": [
                {"settingName": "hostedPaymentReturnOptions", "settingValue": json.dumps(return_options)},
                {"settingName": "hostedPaymentButtonOptions", "settingValue": json.dumps({"text": "Pay"})},
            ]},
        }
        data = api.checked(config, "getHostedPaymentPage", body, Budget(self.timeout), "create a payment form")
        token = data.get("token")
        if not isinstance(token, str) or not token or len(token) > 10_000:
            raise TemporaryFailure("Authorize.Net answered without a payment form token")
        return PaymentSession(provider_reference=code, redirect_url=config["hosted_url"], redirect_method="POST",
                              redirect_fields={"token": token})

    def handle_return(self, request: ReturnRequest, settings: Mapping[str, Any]) -> list[PaymentEvent]:
        """The payments of this attempt among the recent unsettled transactions (one request, the
        newest 100). Nothing when that fails or the payment is not there: the webhook will tell.
        Declines are left to the webhook: the payer may still have paid on a later try."""
        try:
            config = _config(settings)
            if attempt_of(config, request.provider_reference) is None:
                return []
            body = {"sorting": {"orderBy": "submitTimeUTC", "orderDescending": True},
                    "paging": {"limit": 100, "offset": 1}}
            # the payer waits on this: a shorter bound than the gateway's
            data = api.checked(config, "getUnsettledTransactionList", body, Budget(RETURN_BUDGET),
                               "list the recent transactions")
        except GatewayError as exc:
            log.warning("could not confirm the Authorize.Net payment %s on return: %s", request.provider_reference, exc)
            return []
        found = data.get("transactions")
        events = []
        for item in found if isinstance(found, list) else []:
            if not isinstance(item, dict) or item.get("invoiceNumber") != request.provider_reference:
                continue
            trans_id = str(item.get("transId") or "")
            status = item.get("transactionStatus")
            if not TRANS_ID.fullmatch(trans_id) or (status not in CAPTURED and status not in IN_REVIEW):
                continue
            kind = EventKind.SUCCEEDED if status in CAPTURED else EventKind.PENDING
            events.append(PaymentEvent(
                kind=kind, provider_reference=request.provider_reference, provider_payment_id=trans_id,
                amount=_money(item.get("settleAmount")), attempt_id=attempt_of(config, request.provider_reference),
                detail=_note(config, f"Authorize.Net transaction {trans_id}: {status}"),
            ))
        return events

    # -- webhooks ------------------------------------------------------------------------

    def parse_webhook(self, request: WebhookRequest, settings: Mapping[str, Any], *,
                      now: dt.datetime | None = None) -> list[PaymentEvent]:
        try:
            config = load_settings(settings)
        except ValueError as exc:
            raise InvalidWebhook(str(exc)) from None
        if request.method.upper() != "POST":
            raise InvalidWebhook("Authorize.Net webhooks are POST requests")
        webhooks.verify(request.body, request.header(webhooks.HEADER), config["signature_key"])
        note = webhooks.read(request.body)
        when = webhooks.event_date(note["event_date"])
        current = now or dt.datetime.now(dt.UTC)
        webhooks.check_fresh(when, current if current.tzinfo else current.replace(tzinfo=dt.UTC))
        handler = _HANDLERS.get(note["event_type"])
        if handler is None:
            return []
        return handler(self, note, webhooks.transaction(note), when, config)

    def _captured(self, note: dict[str, Any], tx: dict[str, Any], when: dt.datetime,
                  config: Mapping[str, Any]) -> list[PaymentEvent]:
        code = tx["response_code"]
        if code == 1:
            return _event(EventKind.SUCCEEDED, note, tx, when, config, "paid")
        if code == 2:
            return _event(EventKind.FAILED, note, tx, when, config, "declined (the payer may try again on the same form)")
        if code == 3:
            return _event(EventKind.FAILED, note, tx, when, config, "not processed: an error (response code 3)")
        if code == 4:
            return _event(EventKind.PENDING, note, tx, when, config, "held for review by the fraud filters")
        return []

    def _fraud_approved(self, note: dict[str, Any], tx: dict[str, Any], when: dt.datetime,
                        config: Mapping[str, Any]) -> list[PaymentEvent]:
        return _event(EventKind.SUCCEEDED, note, tx, when, config, "approved after a fraud review")

    def _fraud_declined(self, note: dict[str, Any], tx: dict[str, Any], when: dt.datetime,
                        config: Mapping[str, Any]) -> list[PaymentEvent]:
        return _event(EventKind.FAILED, note, tx, when, config, "declined after a fraud review")

    def _fraud_held(self, note: dict[str, Any], tx: dict[str, Any], when: dt.datetime,
                    config: Mapping[str, Any]) -> list[PaymentEvent]:
        return _event(EventKind.PENDING, note, tx, when, config, "held for review by the fraud filters")

    def _voided(self, note: dict[str, Any], tx: dict[str, Any], when: dt.datetime,
                config: Mapping[str, Any]) -> list[PaymentEvent]:
        return _event(EventKind.FAILED, note, tx, when, config, "voided")

    def _refunded(self, note: dict[str, Any], tx: dict[str, Any], when: dt.datetime,
                  config: Mapping[str, Any]) -> list[PaymentEvent]:
        """A refund names only itself: the refunded payment is read from its details. No answer
        in time raises (the delivery is answered with an error and retried); a refusal (no access
        to the Transaction Details API) is logged and the event dropped: retrying cannot help."""
        if tx["response_code"] not in (None, 1):
            return []
        try:
            data = api.checked(config, "getTransactionDetails", {"transId": tx["id"]}, Budget(self.timeout),
                               "read the refund's details")
        except PermanentFailure as exc:
            log.warning("Authorize.Net refund %s not reported: %s", tx["id"], exc)
            return []
        details = data.get("transaction") if isinstance(data.get("transaction"), dict) else {}
        original = str(details.get("refTransId") or "")
        if not TRANS_ID.fullmatch(original):
            log.warning("Authorize.Net refund %s names no refunded transaction: ignored", tx["id"])
            return []
        amount = _money(tx["auth_amount"] if tx["auth_amount"] is not None else details.get("settleAmount"))
        return [PaymentEvent(
            kind=EventKind.REFUNDED, provider_reference=None, provider_payment_id=original, amount=amount,
            provider_event_id=note["notification_id"], occurred_at=when, provider_refund_id=tx["id"],
            detail=_note(config, f"refund {tx['id']} of transaction {original}: {amount} (this refund only)"),
        )]

    # -- refunds -------------------------------------------------------------------------

    def refund(self, provider_payment_id: str, amount: Decimal, currency: str, idempotency_key: str,
               settings: Mapping[str, Any]) -> RefundResult:
        config = _config(settings)
        currency = _currency(currency)
        amount = _amount(amount, currency)
        if not isinstance(provider_payment_id, str) or not TRANS_ID.fullmatch(provider_payment_id):
            raise PermanentFailure("Authorize.Net: a transaction id is digits only")
        budget = Budget(self.timeout)
        data = api.checked(config, "getTransactionDetails", {"transId": provider_payment_id}, budget,
                           "read the transaction to refund")
        original = data.get("transaction") if isinstance(data.get("transaction"), dict) else {}
        card = _refundable_card(provider_payment_id, original)
        body = {
            "refId": ref_id(idempotency_key),
            "transactionRequest": {
                "transactionType": "refundTransaction",
                "amount": str(amount),
                "currencyCode": currency,
                "payment": {"creditCard": {"cardNumber": card, "expirationDate": "XXXX"}},
                "refTransId": provider_payment_id,
                "order": {"invoiceNumber": refund_code(idempotency_key), "description": "Refund"},
                "transactionSettings": {"setting": [{"settingName": "duplicateWindow",
                                                     "settingValue": DUPLICATE_WINDOW}]},
            },
        }
        data = api.post(config, "createTransaction", body, budget)
        response = data.get("transactionResponse") if isinstance(data.get("transactionResponse"), dict) else {}
        code = str(response.get("responseCode") or "")
        trans_id = str(response.get("transId") or "")
        known = TRANS_ID.fullmatch(trans_id) is not None and trans_id.strip("0") != ""
        if code == "1" and known:
            return RefundResult(provider_refund_id=trans_id, amount=amount)
        error_code, error_text = _transaction_error(response)
        if error_code == "11" and known and self._is_refund_of(config, trans_id, provider_payment_id, budget):
            return RefundResult(provider_refund_id=trans_id, amount=amount)  # a retry: the first one stands
        if code in ("2", "3", "4") or error_code:
            message = f"Authorize.Net refused the refund: error {error_code or code}" + (f" {error_text}" if error_text else "")
            raise PermanentFailure(scrub(message, api.secrets_of(config)))
        if not api.ok(data):
            raise api.failure(data, "refund", config)
        # accepted without a readable result: a retry is safe (the duplicate check finds this one)
        raise TemporaryFailure("Authorize.Net's answer to the refund cannot be read")

    def _is_refund_of(self, config: Mapping[str, Any], trans_id: str, original: str, budget: Budget) -> bool:
        data = api.checked(config, "getTransactionDetails", {"transId": trans_id}, budget, "read the earlier refund")
        details = data.get("transaction") if isinstance(data.get("transaction"), dict) else {}
        return (details.get("transactionType") == "refundTransaction" and str(details.get("responseCode")) == "1"
                and str(details.get("refTransId") or "") == original)


_HANDLERS = {
    "net.authorize.payment.authcapture.created": AuthorizeNetGateway._captured,
    "net.authorize.payment.fraud.approved": AuthorizeNetGateway._fraud_approved,
    "net.authorize.payment.fraud.declined": AuthorizeNetGateway._fraud_declined,
    "net.authorize.payment.fraud.held": AuthorizeNetGateway._fraud_held,
    "net.authorize.payment.refund.created": AuthorizeNetGateway._refunded,
    "net.authorize.payment.void.created": AuthorizeNetGateway._voided,
}


# --------------------------------------------------------------------------------------------
# helpers


def _config(settings: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return load_settings(settings)
    except ValueError as exc:
        raise PermanentFailure(str(exc)) from None


def _currency(currency: str) -> str:
    code = (currency or "").strip().upper()
    if len(code) != 3 or not code.isalpha() or not is_currency(code):
        raise PermanentFailure(f"Authorize.Net: {currency!r} is not a currency code")
    if quantum(code) != CENT:
        raise PermanentFailure(f"Authorize.Net takes amounts with exactly 2 decimals (like USD); {code} has "
                               f"{-quantum(code).as_tuple().exponent}: use another gateway for {code}")
    return code


def _amount(amount: Decimal, currency: str) -> Decimal:
    value = to_decimal(amount)
    if value is None:
        raise PermanentFailure("Authorize.Net: the amount is not a number")
    rounded = round_money(value, currency)
    if rounded != value:
        raise PermanentFailure(f"Authorize.Net: the amount {value} has more decimals than {currency} allows")
    if rounded <= 0 or rounded > MAX_AMOUNT:
        raise PermanentFailure(f"Authorize.Net: the amount must be between 0.01 and {MAX_AMOUNT}")
    return rounded


def _web_address(url: str, what: str) -> str:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentFailure(f"Authorize.Net: {what} must be an http(s) address")
    return url


def _money(value: Any) -> Decimal | None:
    number = to_decimal(value)
    return number.quantize(CENT) if number is not None and number >= 0 else None


def _note(config: Mapping[str, Any], text: str) -> str:
    """Admins see that a sandbox payment moved no real money."""
    return f"sandbox: {text}" if config.get("environment") == "sandbox" else text


def _event(kind: str, note: dict[str, Any], tx: dict[str, Any], when: dt.datetime, config: Mapping[str, Any],
           what: str) -> list[PaymentEvent]:
    """One event about transaction ``tx``; none when it carries an invoice number this
    installation did not make (a payment taken elsewhere on the same account)."""
    invoice = tx["invoice_number"]
    attempt = attempt_of(config, invoice)
    if invoice and attempt is None:
        return []
    return [PaymentEvent(
        kind=kind, provider_reference=invoice if attempt is not None else None, provider_payment_id=tx["id"],
        amount=_money(tx["auth_amount"]), attempt_id=attempt, provider_event_id=note["notification_id"],
        occurred_at=when, detail=_note(config, f"Authorize.Net transaction {tx['id']}: {what}"),
    )]


def _transaction_error(response: Mapping[str, Any]) -> tuple[str, str]:
    errors = response.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else errors
    if not isinstance(first, dict):
        return "", ""
    return str(first.get("errorCode") or "")[:20], str(first.get("errorText") or "")[:300]


def _refundable_card(trans_id: str, original: Mapping[str, Any]) -> str:
    """The last 4 digits of the card a settled payment was made with, or why it cannot be refunded."""
    status = original.get("transactionStatus")
    kind = original.get("transactionType")
    if kind not in ("authCaptureTransaction", "priorAuthCaptureTransaction", "captureOnlyTransaction"):
        raise PermanentFailure(f"Authorize.Net transaction {trans_id} is not a payment ({kind}): nothing to refund")
    if status in UNSETTLED:
        raise PermanentFailure(f"Authorize.Net transaction {trans_id} is not settled yet ({status}): it can be "
                               "refunded after the daily settlement, or voided in the Merchant Interface today")
    if status != "settledSuccessfully":
        raise PermanentFailure(f"Authorize.Net transaction {trans_id} cannot be refunded ({status})")
    payment = original.get("payment") if isinstance(original.get("payment"), dict) else {}
    card = payment.get("creditCard") if isinstance(payment.get("creditCard"), dict) else None
    if card is None:
        raise PermanentFailure(f"Authorize.Net transaction {trans_id} was not paid by card: refund it in the "
                               "Merchant Interface (a bank account refund needs the full account number)")
    digits = re.sub(r"[^0-9]", "", str(card.get("cardNumber") or ""))
    if len(digits) < 4:
        raise PermanentFailure(f"Authorize.Net gave no card number for transaction {trans_id}")
    return digits[-4:]
