"""A local stand-in for Authorize.Net, for tests (ours and those of plugins built on this one).

It speaks what the gateway uses, as documented:

- the API: one address (``/xml/v1/request.api``) taking JSON whose single root key names the
  request (``getHostedPaymentPageRequest``, ``createTransactionRequest`` for refunds,
  ``getTransactionDetailsRequest``, ``getUnsettledTransactionListRequest``); it checks
  ``merchantAuthentication``, the schema order of the keys and the fields, and answers JSON
  preceded by a UTF-8 byte order mark, errors as HTTP 200 with ``resultCode: "Error"``;
- the Accept Hosted form: ``POST /payment/payment`` with the token shows the amount and a
  "Pay" button; paying records a transaction, sends the webhook and redirects the browser to
  the return URL (a card number ending in 0002 is declined, as a sandbox trigger would be);
- webhooks: every payment or refund makes a signed delivery (``X-ANET-Signature``), kept in
  :attr:`FakeAuthorizeNet.webhooks` and POSTed to ``webhook_url`` when one is set.

Tests script HTTP failures (``script(500)``), API errors (``fail_next("E00001", ...)``), lost
answers (``drop_next_answer(...)``), make it hang until released (``hang = True``), settle transactions (``settle()``) and build signed
deliveries of their own (:func:`signed_webhook`).
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from crm_payments_authorizenet.webhooks import signature
from crmcore.testing import HttpAnswer, HttpRequest, LocalHTTPServer

API_PATH = "/xml/v1/request.api"
FORM_PATH = "/payment/payment"
PAY_PATH = "/payment/pay"
BOM = "\ufeff".encode()

#: the schema order of each request's keys (the real API refuses keys out of order)
REQUEST_KEYS = {
    "getHostedPaymentPageRequest": ["merchantAuthentication", "clientId", "refId", "transactionRequest",
                                    "hostedPaymentSettings"],
    "createTransactionRequest": ["merchantAuthentication", "clientId", "refId", "transactionRequest"],
    "getTransactionDetailsRequest": ["merchantAuthentication", "clientId", "refId", "transId"],
    "getUnsettledTransactionListRequest": ["merchantAuthentication", "clientId", "refId", "status", "sorting",
                                           "paging"],
}
TRANSACTION_KEYS = [
    "transactionType", "amount", "currencyCode", "payment", "profile", "solution", "callId", "terminalNumber",
    "authCode", "refTransId", "splitTenderId", "order", "lineItems", "tax", "duty", "shipping", "taxExempt",
    "poNumber", "customer", "billTo", "shipTo", "customerIP", "cardholderAuthentication", "retail",
    "employeeId", "transactionSettings", "userFields", "surcharge", "merchantDescriptor", "subMerchant", "tip",
    "processingOptions", "subsequentAuthInformation", "otherTax", "shipFrom", "authorizationIndicatorType",
]
HOSTED_SETTINGS = {
    "hostedPaymentReturnOptions", "hostedPaymentButtonOptions", "hostedPaymentStyleOptions",
    "hostedPaymentPaymentOptions", "hostedPaymentSecurityOptions", "hostedPaymentShippingAddressOptions",
    "hostedPaymentBillingAddressOptions", "hostedPaymentCustomerOptions", "hostedPaymentOrderOptions",
    "hostedPaymentIFrameCommunicatorUrl", "hostedPaymentVisaCheckoutOptions",
}
AMOUNT = re.compile(r"[0-9]{1,13}(\.[0-9]{1,2})?")
DECLINED_SUFFIX = "0002"
TOKEN_LIFETIME = dt.timedelta(minutes=15)
WEBHOOK_ID = "d2a5c8c4-3b86-4b0e-9a56-5d9c1f0e6b21"

OK_MESSAGE = {"code": "I00001", "text": "Successful."}
AUTH_FAILED = ("E00007", "User authentication failed due to invalid authentication values.")
UNSUCCESSFUL = ("E00027", "The transaction was unsuccessful.")


@dataclass
class Received:
    """One API request as the server saw it."""

    root: str
    body: dict[str, Any]
    status: int = 0
    result: str | None = None  # "Ok" / "Error"


@dataclass
class Transaction:
    trans_id: str
    type: str  # authCaptureTransaction | refundTransaction
    status: str
    response_code: int
    amount: Decimal
    invoice_number: str | None
    description: str | None
    submitted: dt.datetime
    card: str | None = "1111"  # last 4 digits; None for a bank account
    email: str | None = None
    ref_trans_id: str | None = None
    refunded: Decimal = Decimal(0)


@dataclass
class Session:
    """A hosted form token and the request that made it."""

    token: str
    transaction: dict[str, Any]
    options: dict[str, dict[str, Any]]
    created: dt.datetime
    used: bool = False


@dataclass
class Delivery:
    """A webhook as Authorize.Net would POST it."""

    event_type: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # the answer of ``webhook_url``, when one is set

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)["payload"]


@dataclass
class FakeAuthorizeNet(LocalHTTPServer):
    api_login_id: str
    transaction_key: str
    signature_key: str
    currencies: tuple[str, ...] = ("USD",)
    #: where deliveries are POSTed (besides being kept in ``webhooks``); None: kept only
    webhook_url: str | None = None
    received: list[Received] = field(default_factory=list)
    sessions: dict[str, Session] = field(default_factory=dict)
    transactions: dict[str, Transaction] = field(default_factory=dict)
    webhooks: list[Delivery] = field(default_factory=list)
    #: while True, every API request waits (until ``release()`` or shutdown) without answering
    hang: bool = False
    _errors: list[tuple[str, str]] = field(default_factory=list)
    _drop: list[str] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(60_000_000_001))
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- control (start, stop, url, script(429, 500, ...), release: crmcore.testing.LocalHTTPServer)

    @property
    def api_url(self) -> str:
        return self.url + API_PATH

    @property
    def hosted_url(self) -> str:
        return self.url + FORM_PATH

    def settings(self, **over: Any) -> dict[str, Any]:
        """Plugin settings pointing at this server."""
        base = {"api_login_id": self.api_login_id, "transaction_key": self.transaction_key,
                "signature_key": self.signature_key, "environment": "sandbox", "api_url": self.api_url,
                "hosted_url": self.hosted_url, "timeout": 2.0}
        base.update(over)
        return {k: v for k, v in base.items() if v is not None}

    def fail_next(self, code: str, text: str) -> None:
        """Answer the next API request with HTTP 200 and this error (``E00001``, ...)."""
        with self._lock:
            self._errors.append((code, text))

    def drop_next_answer(self, root: str) -> None:
        """Carry out the next ``root`` request (e.g. "createTransactionRequest") but close the
        connection without answering: the caller cannot know whether it happened."""
        with self._lock:
            self._drop.append(root)

    def requests(self, root: str) -> list[Received]:
        """The API requests named ``root`` (e.g. "createTransactionRequest")."""
        with self._lock:
            return [r for r in self.received if r.root == root]

    def settle(self) -> None:
        """Run the daily settlement: captured payments and refunds become settled."""
        with self._lock:
            for tx in self.transactions.values():
                if tx.status == "capturedPendingSettlement":
                    tx.status = "settledSuccessfully"
                elif tx.status == "refundPendingSettlement":
                    tx.status = "refundSettledSuccessfully"

    def pay(self, token: str, card_number: str = "4111111111111111", *, bank_account: bool = False) -> Transaction:
        """What the payer's "Pay" click does (without a browser): the transaction it records."""
        with self._lock:
            session = self._session(token)
            if session is None:
                raise ValueError("no usable hosted form with this token")
            return self._pay(session, card_number, bank_account)

    def handle(self, request: HttpRequest) -> HttpAnswer | None:
        if request.method != "POST":
            return HttpAnswer(405, b"POST only", "text/plain")
        if request.path == API_PATH:
            answer = self._api(request.body)
            if answer is None:
                return None  # hung and released, or dropped: close without an answer
            status, content_type, body = answer
        elif request.path == FORM_PATH:
            status, content_type, body = self._form(request.body)
        elif request.path == PAY_PATH:
            status, content_type, body = self._pay_form(request.body)
        else:
            status, content_type, body = 404, "text/plain", b"not found"
        if status == 303:
            return HttpAnswer(status, b"", content_type, {"Location": body.decode()})
        return HttpAnswer(status, body, content_type)

    # -- the API -----------------------------------------------------------------------

    def _api(self, raw: bytes) -> tuple[int, str, bytes] | None:
        try:
            request = json.loads(raw.decode("utf-8-sig"), parse_float=Decimal)
        except (UnicodeDecodeError, ValueError):
            request = None
        root = next(iter(request), "") if isinstance(request, dict) and len(request) == 1 else ""
        body = request[root] if root and isinstance(request[root], dict) else {}
        record = Received(root=root, body=body)
        scripted = self.next_scripted()
        with self._lock:
            self.received.append(record)
            error = self._errors.pop(0) if self._errors and scripted is None else None
        if self.hang:
            self.hold()
            return None
        if scripted is not None:
            record.status = scripted
            return scripted, "text/html", f"<html><body>HTTP {scripted}</body></html>".encode()
        with self._lock:
            try:
                answer = _error(*error) if error else self._answer(root, body)
            except (AttributeError, KeyError, TypeError, ValueError, ArithmeticError):
                answer = _error("E00003", "The request is invalid according to its schema.")
            dropped = root in self._drop
            if dropped:
                self._drop.remove(root)
        record.status, record.result = 200, answer["messages"]["resultCode"]
        if dropped:
            return None
        return 200, "application/json; charset=utf-8", BOM + json.dumps(answer, default=_number).encode()

    def _answer(self, root: str, body: dict[str, Any]) -> dict[str, Any]:
        if root not in REQUEST_KEYS:
            return _error("E00003", f"The element '{root[:60]}' is not a known request.")
        order = _out_of_order(body, REQUEST_KEYS[root])
        if order:
            return _error("E00003", f"The element '{root}' has invalid child element '{order}'.")
        auth = body.get("merchantAuthentication")
        if not isinstance(auth, dict) or auth.get("name") != self.api_login_id \
                or auth.get("transactionKey") != self.transaction_key:
            return _error(*AUTH_FAILED)
        ref = body.get("refId")
        if ref is not None and (not isinstance(ref, str) or len(ref) > 20):
            return _error("E00003", "The 'refId' element is invalid: its length is more than 20.")
        handler = {"getHostedPaymentPageRequest": self._hosted_page, "createTransactionRequest": self._transaction,
                   "getTransactionDetailsRequest": self._details,
                   "getUnsettledTransactionListRequest": self._unsettled}[root]
        answer = handler(body)
        return ({"refId": ref} if ref else {}) | answer

    def _hosted_page(self, body: dict[str, Any]) -> dict[str, Any]:
        tx = body.get("transactionRequest")
        if not isinstance(tx, dict):
            return _error("E00003", "The element 'getHostedPaymentPageRequest' is missing 'transactionRequest'.")
        problem = self._check_transaction(tx, "authCaptureTransaction")
        if problem:
            return _error(*problem)
        options: dict[str, dict[str, Any]] = {}
        settings = (body.get("hostedPaymentSettings") or {}).get("setting") or []
        for item in settings if isinstance(settings, list) else [settings]:
            name = item.get("settingName") if isinstance(item, dict) else None
            if name not in HOSTED_SETTINGS:
                return _error("E00013", f"The setting name '{name}' is invalid.")
            try:
                value = json.loads(item.get("settingValue") or "")
            except (TypeError, ValueError):
                return _error("E00013", f"The value of setting {name} is not valid JSON.")
            options[name] = value if isinstance(value, dict) else {}
        for key in ("url", "cancelUrl"):
            url = options.get("hostedPaymentReturnOptions", {}).get(key)
            if url is not None and not re.match(r"https?://[^\s]+\Z", str(url)):
                return _error("E00013", f"The hostedPaymentReturnOptions {key} is invalid.")
        token = secrets.token_urlsafe(96)
        self.sessions[token] = Session(token=token, transaction=tx, options=options, created=_now())
        return _ok({"token": token})

    def _check_transaction(self, tx: dict[str, Any], wanted: str) -> tuple[str, str] | None:
        """(code, text) of why the transactionRequest is refused, or None."""
        misplaced = _out_of_order(tx, TRANSACTION_KEYS)
        if misplaced:
            return "E00003", f"The element 'transactionRequest' has invalid child element '{misplaced}'."
        if tx.get("transactionType") != wanted:
            return "E00003", f"The transactionType {tx.get('transactionType')!r} is not supported here (the fake: {wanted})."
        amount = tx.get("amount")
        if not isinstance(amount, str) or not AMOUNT.fullmatch(amount) or Decimal(amount) <= 0:
            return "E00013", "The amount is invalid."
        currency = tx.get("currencyCode")
        if currency is not None and currency not in self.currencies:
            return "E00013", ("The currencyCode is invalid: the supplied currency code is either invalid, not "
                              "supported, not allowed for this merchant or doesn't have an exchange rate.")
        order = tx.get("order") or {}
        if not isinstance(order, dict) or len(str(order.get("invoiceNumber") or "")) > 20 \
                or len(str(order.get("description") or "")) > 255:
            return "E00013", "The order is invalid: invoiceNumber is at most 20 characters, description 255."
        if list(order) != [k for k in ("invoiceNumber", "description", "discountAmount", "taxIsAfterDiscount",
                                       "totalTaxTypeCode", "purchaserVATRegistrationNumber") if k in order]:
            return "E00003", "The element 'order' has invalid child elements."
        email = (tx.get("customer") or {}).get("email")
        if email is not None and (not isinstance(email, str) or len(email) > 255 or "@" not in email):
            return "E00013", "The customer email is invalid."
        return None

    def _transaction(self, body: dict[str, Any]) -> dict[str, Any]:
        tx = body.get("transactionRequest")
        if not isinstance(tx, dict):
            return _error("E00003", "The element 'createTransactionRequest' is missing 'transactionRequest'.")
        problem = self._check_transaction(tx, "refundTransaction")
        if problem:
            return _error(*problem)
        original = self.transactions.get(str(tx.get("refTransId") or ""))
        if original is None or original.type != "authCaptureTransaction" or original.response_code != 1:
            return _declined("16", "The transaction cannot be found.")
        card = ((tx.get("payment") or {}).get("creditCard") or {})
        given = re.sub(r"[^0-9]", "", str(card.get("cardNumber") or ""))[-4:]
        if original.card is None or given != original.card or card.get("expirationDate") != "XXXX":
            return _declined("54", "The referenced transaction does not meet the criteria for issuing a credit.")
        if original.status != "settledSuccessfully":
            return _declined("54", "The referenced transaction does not meet the criteria for issuing a credit.")
        amount = Decimal(tx["amount"])
        invoice = (tx.get("order") or {}).get("invoiceNumber")
        window = _duplicate_window(tx)
        for earlier in self.transactions.values():
            if earlier.type == "refundTransaction" and earlier.ref_trans_id == original.trans_id \
                    and earlier.amount == amount and earlier.invoice_number == invoice \
                    and _now() - earlier.submitted < dt.timedelta(seconds=window if window is not None else 120):
                return _declined("11", "A duplicate transaction has been submitted.",
                                 trans_id=earlier.trans_id if window is not None else "0")
        if original.refunded + amount > original.amount:
            return _declined("55", "The sum of credits against the referenced transaction would exceed original "
                                   "debit amount.")
        refund = Transaction(trans_id=str(next(self._ids)), type="refundTransaction", status="refundPendingSettlement",
                             response_code=1, amount=amount, invoice_number=invoice,
                             description=(tx.get("order") or {}).get("description"), submitted=_now(),
                             card=original.card, ref_trans_id=original.trans_id)
        self.transactions[refund.trans_id] = refund
        original.refunded += amount
        self._notify("net.authorize.payment.refund.created", refund)
        return _ok({"transactionResponse": {
            "responseCode": "1", "authCode": "", "avsResultCode": "P", "cvvResultCode": "", "cavvResultCode": "",
            "transId": refund.trans_id, "refTransID": original.trans_id, "transHash": "", "testRequest": "0",
            "accountNumber": f"XXXX{original.card}", "accountType": "Visa",
            "messages": [{"code": "1", "description": "This transaction has been approved."}],
        }})

    def _details(self, body: dict[str, Any]) -> dict[str, Any]:
        tx = self.transactions.get(str(body.get("transId") or ""))
        if tx is None:
            return _error("E00040", "The record cannot be found.")
        payment: dict[str, Any] = (
            {"creditCard": {"cardNumber": f"XXXX{tx.card}", "expirationDate": "XXXX", "cardType": "Visa"}}
            if tx.card else
            {"bankAccount": {"routingNumber": "XXXX0000", "accountNumber": "XXXX6789", "nameOnAccount": "Pat Payer",
                             "echeckType": "WEB"}})
        details: dict[str, Any] = {"transId": tx.trans_id}
        if tx.ref_trans_id:
            details["refTransId"] = tx.ref_trans_id
        details |= {
            "submitTimeUTC": tx.submitted.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "transactionType": tx.type, "transactionStatus": tx.status, "responseCode": tx.response_code,
            "responseReasonCode": 1 if tx.response_code == 1 else 2,
            "responseReasonDescription": "Approval" if tx.response_code == 1 else "Declined",
            "order": {"invoiceNumber": tx.invoice_number or "", "description": tx.description or ""},
            "authAmount": tx.amount, "settleAmount": tx.amount if tx.response_code == 1 else Decimal(0),
            "taxExempt": False, "payment": payment, "recurringBilling": False,
            "product": "Card Not Present", "marketType": "eCommerce",
        }
        if tx.email:
            details["customer"] = {"email": tx.email}
        return _ok({"transaction": details})

    def _unsettled(self, body: dict[str, Any]) -> dict[str, Any]:
        paging = body.get("paging") or {}
        try:
            limit, offset = int(paging.get("limit", 1000)), int(paging.get("offset", 1))
        except (TypeError, ValueError):
            return _error("E00013", "The paging is invalid.")
        if not 1 <= limit <= 1000 or offset < 1:
            return _error("E00013", "The paging is invalid.")
        descending = str((body.get("sorting") or {}).get("orderDescending")).lower() == "true"
        found = sorted((tx for tx in self.transactions.values() if tx.status not in
                        ("settledSuccessfully", "refundSettledSuccessfully")),
                       key=lambda tx: (tx.submitted, tx.trans_id), reverse=descending)
        page = found[(offset - 1) * limit:offset * limit]
        if not page:
            return {"messages": {"resultCode": "Ok", "message": [{"code": "I00004", "text": "No records found."}]}}
        return _ok({"transactions": [{
            "transId": tx.trans_id, "submitTimeUTC": tx.submitted.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "transactionStatus": tx.status, "invoiceNumber": tx.invoice_number or "",
            "accountType": "Visa" if tx.card else "eCheck",
            "accountNumber": f"XXXX{tx.card}" if tx.card else "XXXX6789",
            "settleAmount": tx.amount if tx.response_code == 1 else Decimal(0),
            "marketType": "eCommerce", "product": "Card Not Present",
        } for tx in page], "totalNumInResultSet": len(found)})

    # -- the hosted form ---------------------------------------------------------------

    def _session(self, token: str) -> Session | None:
        session = self.sessions.get(token)
        if session is None or session.used or _now() - session.created > TOKEN_LIFETIME:
            return None
        return session

    def _form(self, raw: bytes, message: str = "") -> tuple[int, str, bytes]:
        token = dict(parse_qsl(raw.decode("utf-8", "replace"))).get("token", "")
        with self._lock:
            session = self._session(token)
        if session is None:
            return 400, "text/html; charset=utf-8", _page("Error", "<p>The token is invalid or has expired.</p>")
        tx = session.transaction
        order = tx.get("order") or {}
        button = session.options.get("hostedPaymentButtonOptions", {}).get("text") or "Pay"
        cancel = session.options.get("hostedPaymentReturnOptions", {}).get("cancelUrl")
        e = html.escape
        content = (
            (f'<p role="alert">{e(message)}</p>' if message else "")
            + f'<p>Amount: <span id="amount">{e(str(tx.get("amount")))}</span> {e(str(tx.get("currencyCode") or "USD"))}</p>'
            + f'<p>Invoice: <span id="invoice">{e(str(order.get("invoiceNumber") or ""))}</span></p>'
            + f'<p>{e(str(order.get("description") or ""))}</p>'
            + f'<form method="post" action="{PAY_PATH}"><input type="hidden" name="token" value="{e(token)}">'
            + '<label>Card number <input name="cardNumber" value="4111111111111111"></label>'
            + '<label>Expiration <input name="expirationDate" value="12/30"></label>'
            + f'<button type="submit">{e(button)}</button></form>'
            + (f'<p><a href="{e(cancel)}">Cancel</a></p>' if cancel else "")
        )
        return 200, "text/html; charset=utf-8", _page("Payment", content)

    def _pay_form(self, raw: bytes) -> tuple[int, str, bytes]:
        form = dict(parse_qsl(raw.decode("utf-8", "replace")))
        with self._lock:
            session = self._session(form.get("token", ""))
            if session is None:
                return 400, "text/html; charset=utf-8", _page("Error", "<p>The token is invalid or has expired.</p>")
            tx = self._pay(session, form.get("cardNumber", ""), False)
        if tx.response_code != 1:
            return self._form(raw, "This transaction has been declined.")
        url = session.options.get("hostedPaymentReturnOptions", {}).get("url")
        if not url:
            return 200, "text/html; charset=utf-8", _page("Thank you", f"<p>Transaction {tx.trans_id} approved.</p>")
        return 303, "text/plain", str(url).encode()

    def _pay(self, session: Session, card_number: str, bank_account: bool) -> Transaction:
        digits = re.sub(r"[^0-9]", "", card_number)
        approved = bank_account or (len(digits) >= 13 and not digits.endswith(DECLINED_SUFFIX))
        request = session.transaction
        order = request.get("order") or {}
        tx = Transaction(
            trans_id=str(next(self._ids)), type="authCaptureTransaction",
            status="capturedPendingSettlement" if approved else "declined", response_code=1 if approved else 2,
            amount=Decimal(request["amount"]), invoice_number=order.get("invoiceNumber"),
            description=order.get("description"), submitted=_now(),
            card=None if bank_account else (digits[-4:] or "0000"),
            email=(request.get("customer") or {}).get("email"),
        )
        self.transactions[tx.trans_id] = tx
        if approved:
            session.used = True
        self._notify("net.authorize.payment.authcapture.created", tx)
        return tx

    # -- webhooks ----------------------------------------------------------------------

    def _notify(self, event_type: str, tx: Transaction) -> Delivery:
        payload = transaction_payload(tx.trans_id, tx.amount, tx.invoice_number, tx.response_code)
        headers, body = signed_webhook(self.signature_key, event_type, payload)
        delivery = Delivery(event_type=event_type, headers=headers, body=body)
        self.webhooks.append(delivery)
        if self.webhook_url:
            import requests

            try:
                delivery.status = requests.post(self.webhook_url, data=body, headers=headers, timeout=10).status_code
            except requests.RequestException:
                delivery.status = 0
        return delivery


# --------------------------------------------------------------------------------------------
# helpers (also for tests that build deliveries themselves)


def transaction_payload(trans_id: str, amount: Decimal | str, invoice_number: str | None,
                        response_code: int = 1) -> dict[str, Any]:
    """The ``payload`` of a transaction notification, as Authorize.Net writes it."""
    payload: dict[str, Any] = {"responseCode": response_code, "authCode": "QWE123" if response_code == 1 else "",
                               "avsResponse": "Y", "authAmount": Decimal(str(amount))}
    if invoice_number:
        payload["invoiceNumber"] = invoice_number
    return payload | {"entityName": "transaction", "id": str(trans_id)}


def signed_webhook(signature_key: str, event_type: str, payload: dict[str, Any], *,
                   notification_id: str | None = None, event_date: dt.datetime | str | None = None,
                   ) -> tuple[dict[str, str], bytes]:
    """Headers and body of a notification as Authorize.Net would POST it."""
    when = event_date or _now()
    if isinstance(when, dt.datetime):
        when = when.astimezone(dt.UTC)
        when = f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond:06d}0Z"  # 7 fraction digits, as sent
    body = json.dumps({"notificationId": notification_id or str(uuid.uuid4()), "eventType": event_type,
                       "eventDate": when, "webhookId": WEBHOOK_ID, "payload": payload},
                      separators=(",", ":"), default=_number).encode()
    headers = {"Content-Type": "application/json", "X-ANET-Signature": signature(signature_key, body),
               "User-Agent": "Authorize.Net Webhooks"}
    return headers, body


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _number(value: Any) -> Any:
    """Decimal amounts as JSON numbers (2 decimals convert exactly through float's repr)."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _ok(extra: dict[str, Any]) -> dict[str, Any]:
    return extra | {"messages": {"resultCode": "Ok", "message": [OK_MESSAGE]}}


def _error(code: str, text: str) -> dict[str, Any]:
    return {"messages": {"resultCode": "Error", "message": [{"code": code, "text": text}]}}


def _declined(error_code: str, error_text: str, trans_id: str = "0") -> dict[str, Any]:
    """A createTransaction answer for a refused transaction (HTTP 200, resultCode Error)."""
    return {"transactionResponse": {
        "responseCode": "3", "authCode": "", "avsResultCode": "P", "cvvResultCode": "", "cavvResultCode": "",
        "transId": trans_id, "refTransID": "", "transHash": "", "testRequest": "0", "accountNumber": "",
        "accountType": "", "errors": [{"errorCode": error_code, "errorText": error_text}],
    }} | _error(*UNSUCCESSFUL)


def _out_of_order(obj: dict[str, Any], order: list[str]) -> str | None:
    """The first key of ``obj`` that is unknown or out of ``order``, or None."""
    position = -1
    for key in obj:
        if key not in order or order.index(key) < position:
            return key
        position = order.index(key)
    return None


def _duplicate_window(tx: dict[str, Any]) -> int | None:
    items = ((tx.get("transactionSettings") or {}).get("setting")) or []
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict) and item.get("settingName") == "duplicateWindow":
            try:
                return max(0, min(28800, int(Decimal(str(item.get("settingValue"))))))
            except (InvalidOperation, ValueError):
                return None
    return None


def _page(title: str, content: str) -> bytes:
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)} - Authorize.Net "
            f"(local stand-in)</title></head><body><h1>{html.escape(title)}</h1>{content}</body></html>").encode()
