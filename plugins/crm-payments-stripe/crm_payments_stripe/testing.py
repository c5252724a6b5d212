"""A local stand-in for Stripe, for tests (ours and those of plugins that take payments).

It speaks what the gateway calls, as the ``stripe`` package sends it (form-encoded, nested keys
such as ``line_items[0][price_data][currency]``, ``Authorization: Bearer <key>``):

- ``POST /v1/checkout/sessions``: validates the parameters as Stripe does (unknown or empty
  parameters, URLs, currency, amount limits, metadata limits, locale) and answers the session;
- ``GET /v1/checkout/sessions/{id}``;
- ``POST /v1/refunds`` (``payment_intent`` or ``charge``, ``amount``);
- ``GET /v1/refunds`` (filters ``charge`` and ``payment_intent``, ``limit`` 1 to 100, default 10,
  and the ``starting_after`` / ``ending_before`` cursors): newest first, as Stripe lists them;
- ``Idempotency-Key``: the same key with the same parameters answers the saved response again
  (``Idempotent-Replayed: true``), with other parameters a 400 ``idempotency_error``;
- a wrong or missing key is a 401 with Stripe's error document (the key masked, as Stripe does).

And the payer's side: ``GET /checkout/{id}`` is a small hosted payment page whose "Pay" button
(``POST /checkout/{id}/pay``) marks the session paid, delivers the signed
``checkout.session.completed`` webhook when :attr:`FakeStripe.webhook_url` is set, and redirects
the browser to ``success_url``. Tests drive the rest: :meth:`FakeStripe.mark_paid`,
:meth:`~FakeStripe.mark_processing` / :meth:`~FakeStripe.settle` (delayed methods such as SEPA
debit), :meth:`~FakeStripe.expire`, :meth:`~FakeStripe.settle_refund` (a pending refund
succeeds or fails), events built from the current objects (:meth:`~FakeStripe.session_event`,
:meth:`~FakeStripe.refund_event` for ``charge.refunded``, :meth:`~FakeStripe.refund_object_event`
for ``refund.*``) and signed as Stripe signs them (:meth:`~FakeStripe.signed`, :meth:`~FakeStripe.webhook`); :meth:`~FakeStripe.fail_next`
answers the next API requests with 429/5xx, :meth:`~FakeStripe.hang_next` makes them hang until
:meth:`~FakeStripe.release` (or the server stops). A scripted failure is not saved under its
idempotency key (it stands for a failure in front of Stripe's API, which never ran the request).
"""

from __future__ import annotations

import copy
import html
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from crm_payments_stripe.webhooks import HEADER, signature_header
from crmcore.payments.gateways import WebhookRequest, from_minor_units
from crmcore.testing import HttpAnswer, HttpRequest, LocalHTTPServer

API_VERSION = "2024-06-20"
SESSION_PATH = re.compile(r"/v1/checkout/sessions/(?P<id>[A-Za-z0-9_]+)")
PAGE_PATH = re.compile(r"/checkout/(?P<id>[A-Za-z0-9_]+)(?P<pay>/pay)?")
FORM_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)\Z")
REFUND_LIST_PARAMS = frozenset({"charge", "payment_intent", "limit", "starting_after", "ending_before", "created",
                                "expand"})
LOCALES = frozenset({"auto", "bg", "cs", "da", "de", "el", "en", "en-GB", "es", "es-419", "et", "fi", "fil",
                     "fr", "fr-CA", "hi-IN", "hr", "hu", "id", "it", "ja", "ko", "lt", "lv", "ms", "mt", "nb",
                     "nl", "pl", "pt", "pt-BR", "ro", "ru", "sk", "sl", "sv", "th", "tr", "vi", "zh", "zh-HK",
                     "zh-TW"})
SESSION_PARAMS = frozenset({"mode", "line_items", "success_url", "cancel_url", "client_reference_id", "metadata",
                            "payment_intent_data", "customer_email", "locale", "payment_method_types",
                            "expires_at", "submit_type", "expand"})
INTENT_PARAMS = frozenset({"metadata", "description", "statement_descriptor_suffix", "receipt_email"})
#: Stripe's smallest charge per currency, in minor units (most currencies: the equivalent of 0.50 USD)
MINIMUM = {"gbp": 30, "jpy": 50, "huf": 17500, "dkk": 250, "nok": 300, "sek": 300, "czk": 1500, "pln": 200,
           "mxn": 1000, "hkd": 400, "aed": 200, "thb": 1000}
MAX_AMOUNT = 99_999_999
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+\Z")


class StripeApiError(Exception):
    """A Stripe error document: ``{"error": {"type", "message", "code"?, "param"?}}``."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": {"type": type_, "message": message}}
        if code:
            self.body["error"]["code"] = code
            self.body["error"]["doc_url"] = f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
        if param:
            self.body["error"]["param"] = param


@dataclass
class Received:
    """One API request as the server saw it."""

    method: str
    path: str
    authorization: str | None
    idempotency_key: str | None
    form: dict[str, Any]  # the parameters: the body of a POST, the query of a GET
    answered: int = 0


@dataclass
class FakeStripe(LocalHTTPServer):
    secret_key: str
    webhook_secret: str = field(default_factory=lambda: "whsec_" + secrets.token_hex(16))
    #: where paying on the hosted page delivers ``checkout.session.completed`` (None: nowhere)
    webhook_url: str | None = None
    #: the status new refunds get ("succeeded", or "pending" as for some payment methods)
    refund_status: str = "succeeded"
    received: list[Received] = field(default_factory=list)
    deliveries: list[tuple[str, int | str]] = field(default_factory=list)  # (event type, HTTP status or error)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    _line_items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _intent_data: dict[str, dict[str, Any]] = field(default_factory=dict)
    _idempotent: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = field(default_factory=dict)
    _hangs: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def random(cls, **kwargs: Any) -> FakeStripe:
        """A fake with fresh test-mode credentials (not started)."""
        return cls(secret_key="sk_test_" + secrets.token_hex(16), **kwargs)

    # -- control (start, stop, url: crmcore.testing.LocalHTTPServer) -------------------------

    def settings(self, **over: Any) -> dict[str, Any]:
        """Settings of the ``payments-stripe`` plugin pointing at this server."""
        return {"secret_key": self.secret_key, "webhook_secret": self.webhook_secret, "api_base": self.url,
                "timeout": 2.0, **over}

    def fail_next(self, *statuses: int) -> None:
        """Answer the next API requests with these HTTP statuses (429, 500, 503, ...)."""
        self.script(*(statuses or (500,)))

    def hang_next(self, count: int = 1) -> None:
        """The next ``count`` API requests wait without an answer, until :meth:`release`."""
        with self._lock:
            self._hangs += count

    def release(self) -> None:
        """Requests hanging now are dropped unanswered; no more hangs are pending."""
        with self._lock:
            self._hangs = 0
        super().release()

    def api_requests(self, method: str | None = None, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if (method is None or r.method == method)
                    and (path is None or r.path == path)]

    # -- what the payer and Stripe do ------------------------------------------------------

    def session(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.sessions[session_id])

    def mark_paid(self, session_id: str) -> dict[str, Any]:
        """The payer paid (a card): PaymentIntent and charge succeeded, the session complete."""
        with self._lock:
            session = self._open(session_id)
            intent = self._new_intent(session, "succeeded")
            self._charge(intent)
            session.update(status="complete", payment_status="paid", payment_intent=intent["id"], url=None)
            return copy.deepcopy(session)

    def mark_processing(self, session_id: str) -> dict[str, Any]:
        """The payer chose a delayed method (SEPA debit, ...): complete, unpaid, processing."""
        with self._lock:
            session = self._open(session_id)
            intent = self._new_intent(session, "processing")
            session.update(status="complete", payment_status="unpaid", payment_intent=intent["id"], url=None)
            return copy.deepcopy(session)

    def settle(self, session_id: str, succeeded: bool = True) -> dict[str, Any]:
        """A delayed payment settles (paid) or fails (the debit was refused)."""
        with self._lock:
            session = self.sessions[session_id]
            intent = self.payment_intents[session["payment_intent"]]
            if intent["status"] != "processing":
                raise ValueError(f"{session_id} has no payment in processing")
            if succeeded:
                intent["status"] = "succeeded"
                self._charge(intent)
                session["payment_status"] = "paid"
            else:
                intent["status"] = "requires_payment_method"
            return copy.deepcopy(session)

    def expire(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            session = self._open(session_id)
            session.update(status="expired", url=None)
            return copy.deepcopy(session)

    # -- events ----------------------------------------------------------------------------

    def event(self, type_: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
        """An Event as Stripe sends it, about ``obj``."""
        return {"id": "evt_" + secrets.token_hex(12), "object": "event", "api_version": API_VERSION,
                "created": int(time.time()) if created is None else created,
                "data": {"object": copy.deepcopy(obj)}, "livemode": self._livemode(),
                "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}, "type": type_}

    def session_event(self, type_: str, session_id: str) -> dict[str, Any]:
        """``checkout.session.*`` about the session as it is now."""
        return self.event(type_, self.session(session_id))

    def refund_event(self, payment_intent: str) -> dict[str, Any]:
        """``charge.refunded`` about the payment's charge as it is now."""
        with self._lock:
            charge = self.charges[self.payment_intents[payment_intent]["latest_charge"]]
            return self.event("charge.refunded", charge)

    def refund_object_event(self, type_: str, refund_id: str) -> dict[str, Any]:
        """``refund.created`` / ``refund.updated`` / ... about the refund as it is now."""
        with self._lock:
            return self.event(type_, self.refunds[refund_id])

    def settle_refund(self, refund_id: str, succeeded: bool = True) -> dict[str, Any]:
        """A pending refund succeeds, or fails (its amount is refundable again)."""
        with self._lock:
            refund = self.refunds[refund_id]
            if refund["status"] != "pending":
                raise ValueError(f"{refund_id} is {refund['status']}, not pending")
            if succeeded:
                refund["status"] = "succeeded"
            else:
                refund.update(status="failed", failure_reason="lost_or_stolen_card")
                charge = self.charges[refund["charge"]]
                charge["amount_refunded"] -= refund["amount"]
                charge["refunded"] = False
            return copy.deepcopy(refund)

    def signed(self, event: dict[str, Any] | bytes, *, secret: str | None = None,
               timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """Body and headers of the webhook delivery of ``event``, signed as Stripe signs it."""
        body = event if isinstance(event, bytes) else json.dumps(event, indent=2).encode()
        stamp = int(time.time()) if timestamp is None else timestamp
        return body, {"Content-Type": "application/json; charset=utf-8",
                      HEADER: signature_header(secret or self.webhook_secret, body, stamp),
                      "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}

    def webhook(self, event: dict[str, Any] | bytes, *, secret: str | None = None, timestamp: int | None = None,
                url: str = "https://crm.example.com/hooks/payments/stripe/acme") -> WebhookRequest:
        """The delivery of ``event`` as the gateway receives it."""
        body, headers = self.signed(event, secret=secret, timestamp=timestamp)
        return WebhookRequest(method="POST", url=url, headers=headers, query={}, body=body)

    def deliver(self, event: dict[str, Any], url: str | None = None) -> int | str:
        """POST the signed ``event`` to ``url`` (default :attr:`webhook_url`); its HTTP status."""
        target = url or self.webhook_url
        assert target, "no webhook URL"
        body, headers = self.signed(event)
        request = urllib.request.Request(target, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - a test's own URL
                outcome: int | str = answer.status
        except urllib.error.HTTPError as exc:
            outcome = exc.code
        except OSError as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.deliveries.append((event["type"], outcome))
        return outcome

    # -- the objects -----------------------------------------------------------------------

    def _livemode(self) -> bool:
        return "_live_" in self.secret_key

    def _open(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        if session["status"] != "open":
            raise ValueError(f"{session_id} is {session['status']}, not open")
        return session

    def _new_intent(self, session: dict[str, Any], status: str) -> dict[str, Any]:
        data = self._intent_data.get(session["id"], {})
        intent = {"id": "pi_" + secrets.token_hex(12), "object": "payment_intent", "amount": session["amount_total"],
                  "amount_received": session["amount_total"] if status == "succeeded" else 0,
                  "currency": session["currency"], "status": status, "created": int(time.time()),
                  "description": data.get("description"), "metadata": dict(data.get("metadata") or {}),
                  "statement_descriptor_suffix": data.get("statement_descriptor_suffix"),
                  "latest_charge": None, "livemode": self._livemode()}
        self.payment_intents[intent["id"]] = intent
        return intent

    def _charge(self, intent: dict[str, Any]) -> dict[str, Any]:
        charge = {"id": "ch_" + secrets.token_hex(12), "object": "charge", "amount": intent["amount"],
                  "amount_captured": intent["amount"], "amount_refunded": 0, "currency": intent["currency"],
                  "payment_intent": intent["id"], "paid": True, "captured": True, "refunded": False,
                  "status": "succeeded", "created": int(time.time()), "livemode": self._livemode(),
                  # Stripe copies the PaymentIntent's metadata onto its charges
                  "metadata": dict(intent["metadata"])}
        self.charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        intent["amount_received"] = intent["amount"]
        return charge

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpAnswer | None:
        if request.path.startswith("/checkout/"):
            return self._page(request.method, request.path)
        # the stripe package sends a GET's parameters in the query
        raw = request.query_string.encode("latin-1") if request.method == "GET" else request.body
        answer = self._api(request.method, request.path, request.headers.get("authorization"),
                           request.headers.get("idempotency-key"), raw)
        if answer is None:
            return None  # hung and released: no answer
        status, body, extra = answer
        headers = {"Request-Id": "req_" + secrets.token_hex(7), "Stripe-Version": API_VERSION, **extra}
        return HttpAnswer.json(status, body, headers=headers, indent=2)

    def _api(self, method: str, path: str, authorization: str | None, key: str | None,
             raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        try:
            form = parse_form(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError):
            form = {}
        record = Received(method, path, authorization, key, form)
        with self._lock:
            self.received.append(record)
            hang = self._hangs > 0
            if hang:
                self._hangs -= 1
            scripted = None if hang else self.next_scripted()
        if hang:
            self.hold()
            return None
        extra: dict[str, str] = {"Idempotency-Key": key} if key else {}
        try:
            self._authenticate(authorization)
            if scripted is not None:
                raise _scripted_error(scripted)
            if raw and not form:
                raise StripeApiError(400, "Invalid request: the body is not a form")
            status, body = self._idempotent_call(method, path, key, form, extra)
        except StripeApiError as exc:
            status, body = exc.status, exc.body
        record.answered = status
        return status, body, extra

    def _authenticate(self, authorization: str | None) -> None:
        if not authorization or not authorization.startswith("Bearer "):
            raise StripeApiError(401, "You did not provide an API key. You need to provide your API key in the "
                                      "Authorization header, using Bearer auth.")
        given = authorization[7:].strip()
        if not secrets.compare_digest(given.encode(), self.secret_key.encode()):
            shown = given[:8] + "*" * max(len(given) - 12, 0) + given[-4:] if len(given) > 12 else "****"
            raise StripeApiError(401, f"Invalid API Key provided: {shown}")

    def _idempotent_call(self, method: str, path: str, key: str | None, form: dict[str, Any],
                         extra: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if method != "POST" or not key:
            return self._route(method, path, form)
        with self._lock:  # one request per key at a time, as Stripe locks a key in flight
            saved = self._idempotent.get(key)
            if saved is not None:
                saved_path, saved_form, status, body = saved
                if saved_path != path or saved_form != form:
                    raise StripeApiError(
                        400, "Keys for idempotent requests can only be used with the same parameters they were "
                             f"first used with. Try using a key other than '{key}' if you meant to execute a "
                             "different request.", type_="idempotency_error")
                extra["Idempotent-Replayed"] = "true"
                return status, copy.deepcopy(body)
            status, body = self._route(method, path, form)
            self._idempotent[key] = (path, copy.deepcopy(form), status, copy.deepcopy(body))
            return status, body

    def _route(self, method: str, path: str, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "/v1/checkout/sessions" and method == "POST":
            return 200, self._create_session(form)
        if path == "/v1/refunds" and method == "POST":
            return 200, self._create_refund(form)
        if path == "/v1/refunds" and method == "GET":
            return 200, self._list_refunds(form)
        match = SESSION_PATH.fullmatch(path)
        if match and method == "GET":
            with self._lock:
                session = self.sessions.get(match["id"])
                if session is None:
                    raise StripeApiError(404, f"No such checkout.session: '{match['id']}'", code="resource_missing",
                                         param="session")
                return 200, copy.deepcopy(session)
        raise StripeApiError(404, f"Unrecognized request URL ({method}: {path}).")

    # -- POST /v1/checkout/sessions --------------------------------------------------------

    def _create_session(self, form: dict[str, Any]) -> dict[str, Any]:
        _no_empty_strings(form)
        unknown = sorted(set(form) - SESSION_PARAMS)
        if unknown:
            raise StripeApiError(400, f"Received unknown parameter: {unknown[0]}", code="parameter_unknown",
                                 param=unknown[0])
        if form.get("mode") != "payment":
            raise StripeApiError(400, "This fake supports mode=payment only.", param="mode")
        for name in ("success_url", "cancel_url"):
            value = form.get(name)
            if value is None:
                raise StripeApiError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
            if not _is_url(value):
                raise StripeApiError(400, "Not a valid URL", code="url_invalid", param=name)
        items = form.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeApiError(400, "line_items is required in payment mode.", code="parameter_missing",
                                 param="line_items")
        currency, total = None, 0
        for index, item in enumerate(items):
            where = f"line_items[{index}]"
            price = item.get("price_data") if isinstance(item, dict) else None
            if not isinstance(price, dict):
                raise StripeApiError(400, "You must specify either `price` or `price_data`.", param=where)
            quantity = _integer(item.get("quantity"), f"{where}[quantity]", minimum=1)
            item_currency = price.get("currency")
            if not isinstance(item_currency, str) or not re.fullmatch(r"[a-z]{3}", item_currency):
                raise StripeApiError(400, f"Invalid currency: {item_currency}", param=f"{where}[price_data][currency]")
            if currency is not None and item_currency != currency:
                raise StripeApiError(400, "All line items must use the same currency.", param=where)
            currency = item_currency
            total += quantity * _integer(price.get("unit_amount"), f"{where}[price_data][unit_amount]", minimum=0)
            product = price.get("product_data")
            if not isinstance(product, dict) or not product.get("name"):
                raise StripeApiError(400, "Missing required param: product_data[name].", code="parameter_missing",
                                     param=f"{where}[price_data][product_data][name]")
        assert currency is not None
        if total < MINIMUM.get(currency, 50):
            raise StripeApiError(400, "The Checkout Session's total amount due must add up to at least the "
                                      "minimum charge amount.", code="amount_too_small", param="line_items")
        if total > MAX_AMOUNT:
            raise StripeApiError(400, "The Checkout Session's total amount due must be no more than 99,999,999.",
                                 code="amount_too_large", param="line_items")
        metadata = _metadata(form.get("metadata"), "metadata")
        intent_data = form.get("payment_intent_data") or {}
        if not isinstance(intent_data, dict) or set(intent_data) - INTENT_PARAMS:
            raise StripeApiError(400, "Received unknown parameter in payment_intent_data",
                                 code="parameter_unknown", param="payment_intent_data")
        intent_data = {**intent_data, "metadata": _metadata(intent_data.get("metadata"),
                                                              "payment_intent_data[metadata]")}
        email = form.get("customer_email")
        if email is not None and not EMAIL.match(email):
            raise StripeApiError(400, "Invalid email address: " + email, code="email_invalid", param="customer_email")
        locale = form.get("locale")
        if locale is not None and locale not in LOCALES:
            raise StripeApiError(400, f"Invalid locale: {locale}", param="locale")
        reference = form.get("client_reference_id")
        if reference is not None and len(reference) > 200:
            raise StripeApiError(400, "client_reference_id: at most 200 characters", param="client_reference_id")
        methods = form.get("payment_method_types") or ["card"]
        if not isinstance(methods, list):
            raise StripeApiError(400, "Invalid array", param="payment_method_types")
        now = int(time.time())
        session_id = "cs_" + ("live_" if self._livemode() else "test_") + secrets.token_hex(24)
        session = {
            "id": session_id, "object": "checkout.session", "amount_subtotal": total, "amount_total": total,
            "cancel_url": form["cancel_url"], "client_reference_id": reference, "created": now,
            "currency": currency, "customer": None, "customer_details": {"email": email} if email else None,
            "customer_email": email, "expires_at": now + 24 * 3600, "livemode": self._livemode(),
            "locale": locale, "metadata": metadata, "mode": "payment", "payment_intent": None,
            "payment_method_types": methods, "payment_status": "unpaid", "status": "open",
            "success_url": form["success_url"], "url": f"{self.url}/checkout/{session_id}",
        }
        with self._lock:
            self.sessions[session_id] = session
            self._line_items[session_id] = copy.deepcopy(items)
            self._intent_data[session_id] = intent_data
        return copy.deepcopy(session)

    # -- POST /v1/refunds ------------------------------------------------------------------

    def _create_refund(self, form: dict[str, Any]) -> dict[str, Any]:
        _no_empty_strings(form)
        with self._lock:
            if form.get("payment_intent"):
                intent = self.payment_intents.get(form["payment_intent"])
                if intent is None:
                    raise StripeApiError(404, f"No such payment_intent: '{form['payment_intent']}'",
                                         code="resource_missing", param="payment_intent")
                charge = self.charges.get(intent["latest_charge"] or "")
                if charge is None:
                    raise StripeApiError(400, f"This PaymentIntent ({intent['id']}) does not have a successful "
                                              "charge to refund.", code="charge_not_refundable",
                                         param="payment_intent")
            elif form.get("charge"):
                charge = self.charges.get(form["charge"])
                if charge is None:
                    raise StripeApiError(404, f"No such charge: '{form['charge']}'", code="resource_missing",
                                         param="charge")
            else:
                raise StripeApiError(400, "One of the following params should be provided for this request: "
                                          "payment_intent or charge.", code="parameter_missing")
            left = charge["amount"] - charge["amount_refunded"]
            if left == 0:
                raise StripeApiError(400, f"Charge {charge['id']} has already been refunded.",
                                     code="charge_already_refunded")
            amount = left if form.get("amount") is None else _integer(form["amount"], "amount", minimum=1)
            if amount > left:
                cur = charge["currency"].upper()
                raise StripeApiError(400, f"Refund amount ({from_minor_units(amount, cur)} {cur}) is greater than "
                                          f"unrefunded amount on charge ({from_minor_units(left, cur)} {cur})",
                                     code="amount_too_large", param="amount")
            refund = {"id": "re_" + secrets.token_hex(12), "object": "refund", "amount": amount,
                      "currency": charge["currency"], "charge": charge["id"],
                      "payment_intent": charge["payment_intent"], "status": self.refund_status,
                      "created": int(time.time()), "metadata": {}, "reason": form.get("reason"),
                      "failure_reason": "unknown" if self.refund_status == "failed" else None}
            self.refunds[refund["id"]] = refund
            if self.refund_status in ("succeeded", "pending"):
                charge["amount_refunded"] += amount
                charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            return copy.deepcopy(refund)

    # -- GET /v1/refunds ---------------------------------------------------------------------

    def _list_refunds(self, query: dict[str, Any]) -> dict[str, Any]:
        _no_empty_strings(query)
        unknown = sorted(set(query) - REFUND_LIST_PARAMS)
        if unknown:
            raise StripeApiError(400, f"Received unknown parameter: {unknown[0]}", code="parameter_unknown",
                                 param=unknown[0])
        limit = 10 if query.get("limit") is None else _integer(query["limit"], "limit", minimum=1)
        if limit > 100:
            raise StripeApiError(400, "This value must be less than or equal to 100.", param="limit")
        with self._lock:
            for name, known in (("charge", self.charges), ("payment_intent", self.payment_intents)):
                if query.get(name) is not None and query[name] not in known:
                    raise StripeApiError(404, f"No such {name}: '{query[name]}'", code="resource_missing",
                                         param=name)
            # newest first; created is in seconds, so ties keep the order of creation
            found = [r for r in reversed(self.refunds.values())
                     if query.get("charge") in (None, r["charge"])
                     and query.get("payment_intent") in (None, r["payment_intent"])]
            ids = [r["id"] for r in found]
            for cursor in ("starting_after", "ending_before"):
                if query.get(cursor) is not None and query[cursor] not in ids:
                    raise StripeApiError(404, f"No such refund: '{query[cursor]}'", code="resource_missing",
                                         param=cursor)
            if query.get("starting_after") is not None:
                found = found[ids.index(query["starting_after"]) + 1:]
                page, has_more = found[:limit], len(found) > limit
            elif query.get("ending_before") is not None:
                found = found[:ids.index(query["ending_before"])]
                page, has_more = found[-limit:], len(found) > limit
            else:
                page, has_more = found[:limit], len(found) > limit
            return {"object": "list", "data": copy.deepcopy(page), "has_more": has_more, "url": "/v1/refunds"}

    # -- the hosted payment page -----------------------------------------------------------

    def _page(self, method: str, path: str) -> HttpAnswer:
        match = PAGE_PATH.fullmatch(path)
        with self._lock:
            session = self.sessions.get(match["id"]) if match else None
            session = copy.deepcopy(session) if session else None
        if session is None or match is None:
            return _html(404, "<h1>Not found</h1><p>No such Checkout Session.</p>")
        if method == "POST" and match["pay"]:
            try:
                paid = self.mark_paid(session["id"])
            except ValueError:
                return _html(409, f"<h1>Not payable</h1><p>This session is {html.escape(session['status'])}.</p>")
            if self.webhook_url:
                self.deliver(self.event("checkout.session.completed", paid))
            target = paid["success_url"].replace("{CHECKOUT_SESSION_ID}", paid["id"])
            return HttpAnswer(303, headers={"Location": target})
        if method != "GET" or match["pay"]:
            return _html(405, "<h1>Method not allowed</h1>")
        return _html(200, self._page_body(session))

    def _page_body(self, session: dict[str, Any]) -> str:
        currency = session["currency"].upper()
        amount = f"{from_minor_units(session['amount_total'], currency):,} {currency}"
        items = self._line_items.get(session["id"], [])
        product = items[0]["price_data"]["product_data"] if items else {}
        name = html.escape(str(product.get("name", "")))
        description = html.escape(str(product.get("description", "")))
        if session["status"] != "open":
            state = "paid" if session["payment_status"] == "paid" else session["status"]
            return (f"<h1>{name}</h1><p class='amount'>{html.escape(amount)}</p>"
                    f"<p class='state'>This payment is {html.escape(state)}.</p>")
        return (
            f"<h1>{name}</h1><p class='description'>{description}</p>"
            f"<p class='amount'>{html.escape(amount)}</p>"
            f"<form method='post' action='/checkout/{html.escape(session['id'])}/pay'>"
            f"<button type='submit' id='pay'>Pay {html.escape(amount)}</button></form>"
            f"<p><a id='cancel' href='{html.escape(session['cancel_url'])}'>Cancel and go back</a></p>"
        )


def _html(status: int, body: str) -> HttpAnswer:
    data = ("<!doctype html><html><head><meta charset='utf-8'><title>Stripe Checkout (test)</title></head>"
            f"<body><p class='test-mode'>TEST MODE</p>{body}</body></html>").encode()
    return HttpAnswer(status, data, "text/html; charset=utf-8")


def _scripted_error(status: int) -> StripeApiError:
    if status == 429:
        return StripeApiError(429, "Request rate limit exceeded. Learn more about rate limits here "
                                   "https://docs.stripe.com/rate-limits.", code="rate_limit")
    if status == 401:
        return StripeApiError(401, "Invalid API Key provided: sk_test_****")
    if status >= 500:
        return StripeApiError(status, "Something went wrong on Stripe's end.", type_="api_error")
    return StripeApiError(status, "Scripted error.")


# -- the form encoding of the stripe package -------------------------------------------------


def parse_form(raw: str) -> dict[str, Any]:
    """``a[b][0][c]=1`` into ``{"a": {"b": [{"c": "1"}]}}`` (ValueError on a malformed key)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True, strict_parsing=True):
        match = FORM_KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"malformed key {key!r}")
        parts = [match[1], *re.findall(r"\[([^\[\]]*)\]", match[2])]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"key {key!r} conflicts with a value")
        if isinstance(node.get(parts[-1]), dict):
            raise ValueError(f"key {key!r} conflicts with an object")
        node[parts[-1]] = value
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    children = {k: _listify(v) for k, v in node.items()}
    if children and all(k.isdigit() for k in children):
        indexes = sorted(int(k) for k in children)
        if indexes == list(range(len(indexes))):
            return [children[str(i)] for i in indexes]
    return children


def _no_empty_strings(form: dict[str, Any], prefix: str = "") -> None:
    for key, value in form.items():
        name = f"{prefix}[{key}]" if prefix else key
        if value == "" and "metadata" not in prefix:
            raise StripeApiError(400, f"You passed an empty string for '{name}'. We assume empty values are an "
                                      f"attempt to unset a parameter; however '{name}' cannot be unset. You should "
                                      f"remove '{name}' from your request or supply a non-empty value.",
                                 param=name)
        if isinstance(value, dict):
            _no_empty_strings(value, name)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    _no_empty_strings(item, f"{name}[{index}]")


def _integer(value: Any, param: str, *, minimum: int) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?[0-9]{1,12}", value):
        raise StripeApiError(400, f"Invalid integer: {value}", param=param)
    number = int(value)
    if number < minimum:
        raise StripeApiError(400, f"This value must be greater than or equal to {minimum}.", param=param)
    return number


def _metadata(value: Any, param: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StripeApiError(400, "Invalid object", param=param)
    if len(value) > 50:
        raise StripeApiError(400, "You can have at most 50 metadata keys.", param=param)
    for key, item in value.items():
        if len(key) > 40:
            raise StripeApiError(400, "Metadata keys can have up to 40 characters.", param=f"{param}[{key}]")
        if not isinstance(item, str) or len(item) > 500:
            raise StripeApiError(400, "Metadata values can have up to 500 characters.", param=f"{param}[{key}]")
    return dict(value)


def _is_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 5000:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)

