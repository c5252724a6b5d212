"""A small payment gateway for the tests, and the local HTTP provider it talks to.

``TestPay`` is a real :class:`PaymentGateway` (registered with ``register_driver``), speaking
HTTP through :func:`crmcore.messaging.http.call` to :class:`FakeProvider`, a server on
127.0.0.1 started by the test:

- ``POST /v1/sessions`` (``Authorization: Bearer <api key>``, ``Idempotency-Key``; JSON
  ``amount`` in minor units, ``currency``, ``reference``, ``return_url``, ``cancel_url``,
  ``metadata``): 201 ``{"id", "url", "status": "open"}``; the same key gives the same session;
- ``GET /v1/sessions/<id>``: the session, with ``payment_id`` once paid;
- ``POST /v1/refunds`` (``Idempotency-Key``; JSON ``payment_id``, ``amount`` in minor units,
  ``currency``): 201 ``{"id": "re_...", "amount", "currency", "status"}``; the same key gives the
  same refund, more than is left of the payment is a 400;
- webhooks are signed ``TestPay-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">``
  with the webhook secret; a timestamp more than 300 s away is refused. ``payment.updated``
  names the session only: the gateway asks the provider for it (a 5xx there is a
  TemporaryFailure, as Stripe's ``charge.refunded`` listing the charge's refunds).

Tests script failures (``script(500)``), make it hang (``hang = True``), pay a session as the
payer would (``pay``) and build signed webhooks (``webhook``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from marshmallow import Schema, fields

from crmcore import PluginInfo
from crmcore.messaging.http import call
from crmcore.payments.gateways import (
    PAYMENT_GATEWAYS_GROUP,
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
from crmcore.plugins.drivers import register_driver, unregister_driver
from crmcore.plugins.service import enable_plugin

NAME = "testpay"
PLUGIN = "testpay-plugin"
TOLERANCE = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class TestPaySettings(Schema):
    __test__ = False  # not a pytest test class
    api_url = fields.String(required=True)
    api_key = fields.String(required=True, metadata={"secret": True})
    webhook_secret = fields.String(required=True, metadata={"secret": True})
    redirect_method = fields.String(load_default="GET")
    #: appended to the payer's address (tests of its escaping)
    url_suffix = fields.String(load_default="")


class TestPay(PaymentGateway):
    __test__ = False  # not a pytest test class
    name = NAME
    title = "TestPay"
    timeout = 2.0

    def create_session(self, request: PaymentRequest, settings: Any) -> PaymentSession:
        answer = call("POST", f"{settings['api_url']}/v1/sessions", timeout=self.timeout, what="TestPay",
                      headers={"Authorization": f"Bearer {settings['api_key']}",
                               "Idempotency-Key": request.idempotency_key},
                      json={"amount": minor_units(request.amount, request.currency), "currency": request.currency,
                            "reference": request.reference, "return_url": request.return_url,
                            "cancel_url": request.cancel_url, "metadata": dict(request.metadata)})
        if answer.status >= 500:
            raise TemporaryFailure(f"TestPay answered {answer.status}")
        if answer.status != 201:
            raise PermanentFailure(f"TestPay refused the session ({answer.status})")
        body = answer.json()
        if settings.get("redirect_method") == "POST":
            return PaymentSession(body["id"], redirect_url=body["url"], redirect_method="POST",
                                  redirect_fields={"session": body["id"], "note": "<&>"})
        return PaymentSession(body["id"], redirect_url=body["url"] + settings.get("url_suffix", ""))

    def refund(self, provider_payment_id: str, amount: Any, currency: str, idempotency_key: str,
               settings: Any) -> RefundResult:
        answer = call("POST", f"{settings['api_url']}/v1/refunds", timeout=self.timeout, what="TestPay",
                      headers={"Authorization": f"Bearer {settings['api_key']}", "Idempotency-Key": idempotency_key},
                      json={"payment_id": provider_payment_id, "amount": minor_units(amount, currency),
                            "currency": currency})
        if answer.status >= 500:
            raise TemporaryFailure(f"TestPay answered {answer.status}")
        if answer.status != 201:
            error = (answer.json() or {}).get("error", "") if answer.body else ""
            raise PermanentFailure(f"TestPay refused the refund ({answer.status}: {error})")
        body = answer.json()
        return RefundResult(body["id"], from_minor_units(int(body["amount"]), body["currency"]), body["status"])

    def handle_return(self, request: ReturnRequest, settings: Any) -> list[PaymentEvent]:
        return self._confirm(request.provider_reference, None, settings)

    def _confirm(self, session_id: str, event_id: str | None, settings: Any) -> list[PaymentEvent]:
        """What the provider says of the session now (a 5xx: TemporaryFailure)."""
        answer = call("GET", f"{settings['api_url']}/v1/sessions/{session_id}", timeout=self.timeout,
                      what="TestPay", headers={"Authorization": f"Bearer {settings['api_key']}"})
        if answer.status >= 500:
            raise TemporaryFailure(f"TestPay answered {answer.status}")
        body = answer.json() or {}
        if answer.status != 200 or body.get("status") != "paid":
            return []
        return [_event(EventKind.SUCCEEDED, body, event_id)]

    def parse_webhook(self, request: WebhookRequest, settings: Any, *, now: dt.datetime | None = None
                      ) -> list[PaymentEvent]:
        header = request.header("TestPay-Signature") or ""
        parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        try:
            timestamp = int(parts.get("t", ""))
        except ValueError:
            raise InvalidWebhook("no timestamp in the signature") from None
        expected = signature(settings["webhook_secret"], timestamp, request.body)
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            raise InvalidWebhook("bad signature")
        current = (now or dt.datetime.now(dt.UTC)).timestamp()
        if abs(current - timestamp) > TOLERANCE:
            raise InvalidWebhook("stale timestamp")
        try:
            body = json.loads(request.body)
        except ValueError:
            raise InvalidWebhook("not JSON") from None
        if body.get("type") == "payment.updated":  # names the session only: ask the provider
            return self._confirm(str((body.get("data") or {}).get("id", "")), body["id"], settings)
        kind = {"payment.succeeded": EventKind.SUCCEEDED, "payment.failed": EventKind.FAILED,
                "payment.refunded": EventKind.REFUNDED, "payment.pending": EventKind.PENDING}.get(body.get("type"))
        if kind is None:
            return []
        return [_event(kind, body["data"], body["id"])]


def _event(kind: str, data: dict[str, Any], event_id: str | None) -> PaymentEvent:
    metadata = data.get("metadata") or {}
    attempt = metadata.get("attempt_id")
    return PaymentEvent(kind=kind, provider_reference=data.get("id"), provider_payment_id=data.get("payment_id"),
                        amount=from_minor_units(int(data["amount"]), data["currency"]) if "amount" in data else None,
                        currency=data.get("currency"), attempt_id=int(attempt) if attempt else None,
                        provider_event_id=event_id, detail=data.get("detail"),
                        provider_refund_id=data.get("refund_id") if kind == EventKind.REFUNDED else None)


@dataclass
class FakeProvider:
    api_key: str = "sk_test_" + "k" * 24
    webhook_secret: str = "whsec_" + "s" * 24
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    hang: bool = False
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds_by_key: dict[str, str] = field(default_factory=dict)
    #: called in the server's thread with each session request (before it is answered)
    on_session: Callable[[dict[str, Any]], None] | None = None
    #: called in the server's thread with each refund request (before it is answered)
    on_refund: Callable[[dict[str, Any]], None] | None = None
    _scripted: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def settings(self, **changes: Any) -> dict[str, Any]:
        return {"api_url": self.url, "api_key": self.api_key, "webhook_secret": self.webhook_secret, **changes}

    def script(self, *statuses: int) -> None:
        with self._lock:
            self._scripted.extend(statuses)

    # -- the payer and the provider's side -------------------------------------------------

    def pay(self, session_id: str, amount: int | None = None) -> dict[str, Any]:
        """The payer pays the session (``amount`` in minor units: default the session's)."""
        with self._lock:
            session = self.sessions[session_id]
            session["status"] = "paid"
            session["payment_id"] = "pi_" + uuid.uuid4().hex[:16]
            if amount is not None:
                session["amount"] = amount
            return dict(session)

    def webhook(self, kind: str, session: dict[str, Any], *, event_id: str | None = None,
                secret: str | None = None, timestamp: int | None = None, **data: Any) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"id": event_id or "evt_" + uuid.uuid4().hex[:16], "type": kind,
                           "data": {**session, **data}}).encode()
        stamp = int(time.time()) if timestamp is None else timestamp
        sig = signature(secret or self.webhook_secret, stamp, body)
        return body, {"TestPay-Signature": f"t={stamp},v1={sig}", "Content-Type": "application/json"}

    # -- the server --------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = fake._create(self.path, dict(self.headers), raw)
                if status:
                    self._answer(status, body)

            def do_GET(self) -> None:  # noqa: N802
                status, body = fake._get(self.path, dict(self.headers))
                self._answer(status, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.hang = False
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _authorized(self, headers: dict[str, str]) -> bool:
        return {k.lower(): v for k, v in headers.items()}.get("authorization") == f"Bearer {self.api_key}"

    def _create(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        lower = {k.lower(): v for k, v in headers.items()}
        request = {"path": path, "headers": lower, "json": json.loads(raw or b"{}")}
        with self._lock:
            self.received.append(request)
            scripted = self._scripted.pop(0) if self._scripted else None
        hook = {"/v1/sessions": self.on_session, "/v1/refunds": self.on_refund}.get(path)
        if hook is not None:
            hook(request)
        if self.hang:
            self._released.wait(timeout=30)
            return 0, None
        if path not in ("/v1/sessions", "/v1/refunds"):
            return 404, {"error": "not found"}
        if not self._authorized(headers):
            return 401, {"error": "unauthorized"}
        if scripted is not None:
            return scripted, {"error": "scripted"}
        key = lower.get("idempotency-key")
        if not key:
            return 400, {"error": "an Idempotency-Key is required"}
        if path == "/v1/refunds":
            return self._refund(key, request["json"])
        with self._lock:
            if key in self.by_key:
                return 201, dict(self.sessions[self.by_key[key]])
            body = request["json"]
            session_id = "cs_" + uuid.uuid4().hex[:16]
            session = {"id": session_id, "url": f"{self.url}/checkout/{session_id}", "status": "open",
                       "amount": int(body["amount"]), "currency": body["currency"], "metadata": body.get("metadata")}
            self.sessions[session_id] = session
            self.by_key[key] = session_id
            return 201, dict(session)

    def _refund(self, key: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            if key in self.refunds_by_key:
                return 201, dict(self.refunds[self.refunds_by_key[key]])
            paid = next((s for s in self.sessions.values() if s.get("payment_id") == body.get("payment_id")), None)
            if paid is None:
                return 404, {"error": "no such payment"}
            left = paid["amount"] - sum(r["amount"] for r in self.refunds.values()
                                        if r["payment_id"] == paid["payment_id"])
            amount = int(body.get("amount") or 0)
            if amount < 1 or amount > left:
                return 400, {"error": f"amount must be 1 to {left}"}
            refund = {"id": "re_" + uuid.uuid4().hex[:16], "payment_id": paid["payment_id"], "amount": amount,
                      "currency": paid["currency"], "status": "succeeded"}
            self.refunds[refund["id"]] = refund
            self.refunds_by_key[key] = refund["id"]
            return 201, dict(refund)

    def _get(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        with self._lock:
            scripted = self._scripted.pop(0) if self._scripted else None
        if scripted is not None:
            return scripted, {"error": "scripted"}
        if not self._authorized(headers):
            return 401, {"error": "unauthorized"}
        session_id = path.rsplit("/", 1)[-1]
        with self._lock:
            session = self.sessions.get(session_id)
            return (200, dict(session)) if session is not None and path.startswith("/v1/sessions/") else \
                (404, {"error": "not found"})


class GatewayOwner:
    """The plugin owning TestPay (its settings configure it)."""


@contextmanager
def installed(ctx: Any, **settings: Any) -> Iterator[FakeProvider]:
    """TestPay enabled in ctx's business against a fresh local provider."""
    fake = FakeProvider().start()
    registry = ctx.crm.registry
    registry.register(PLUGIN, GatewayOwner(), info=PluginInfo(title="TestPay", settings_schema=TestPaySettings),
                      source="test")
    register_driver(PAYMENT_GATEWAYS_GROUP, NAME, TestPay, PLUGIN)
    try:
        enable_plugin(ctx, PLUGIN, fake.settings(**settings))
        yield fake
    finally:
        unregister_driver(PAYMENT_GATEWAYS_GROUP, NAME)
        registry.unregister(PLUGIN)
        fake.stop()
