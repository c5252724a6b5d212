"""A local stand-in for PayPal's REST API, for tests (ours and those of plugins that take payments).

It speaks the documented endpoints the gateway uses and checks what it receives:

- ``POST /v1/oauth2/token``: HTTP basic auth with the client ID and secret,
  ``grant_type=client_credentials``; answers a bearer token living ``token_lifetime`` seconds;
- ``POST /v2/checkout/orders``, ``GET /v2/checkout/orders/{id}``,
  ``POST /v2/checkout/orders/{id}/capture``, ``POST /v2/payments/captures/{id}/refund``,
  ``GET /v2/payments/captures/{id}``: a bearer token on every call; ``PayPal-Request-Id`` makes a
  POST idempotent (the same id gets the same order, capture or refund back); errors are PayPal's
  documents (``name``, ``message``, ``debug_id``, ``details[].issue``);
- ``GET /checkoutnow?token={order id}``: the payer's approval page, whose "Approve" button marks
  the order approved and redirects to ``return_url?token=...&PayerID=...`` ("Cancel": to
  ``cancel_url``);
- ``GET /v1/notifications/certs/{name}``: the certificate webhooks are signed with, served over
  https too (``tls_url``: a second listener with a certificate of the fake's own CA; the gateway
  fetches certificates only over https). While the fake runs as a context manager it sets
  ``REQUESTS_CA_BUNDLE`` to the bundle in use plus that CA (``trust_tls=False`` to leave it).

:meth:`FakePayPal.webhook` builds a signed delivery (body and ``PAYPAL-*`` headers) the way
PayPal does. Switches: ``script(500, ...)`` answers the next requests with those statuses,
``hang = True`` holds requests unanswered until ``release()``, ``expire_tokens()`` makes every
issued token invalid (401), ``capture_outcome`` picks what a capture does.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import html
import json
import os
import re
import secrets
import shutil
import ssl
import tempfile
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from crmcore.testing import HttpAnswer, HttpRequest, LocalHTTPServer, parse_basic_auth

#: credentials and a webhook ID in PayPal's formats, for tests (they open nothing real)
TEST_CLIENT_ID = "AZDxjDScFpQtjWTOUtWKbyN_bDt4OgqaF4eYXlewfBP4-8aqX3PiV8e1GWU6liB2CUXlkA59kJXE7M6R"
TEST_CLIENT_SECRET = "EGnHDxD_qRPdaLdZz8iCr8N7_MzF-YHPTkjs6NKYQvQSBngp4PTTVWkPZRbL"
TEST_WEBHOOK_ID = "8PT597110X687430LU"

#: currencies PayPal's REST API accepts, and how many decimals it takes in each
CURRENCY_DECIMALS = {
    "AUD": 2, "BRL": 2, "CAD": 2, "CNY": 2, "CZK": 2, "DKK": 2, "EUR": 2, "HKD": 2, "HUF": 0, "ILS": 2,
    "JPY": 0, "MYR": 2, "MXN": 2, "TWD": 0, "NZD": 2, "NOK": 2, "PHP": 2, "PLN": 2, "GBP": 2, "SGD": 2,
    "SEK": 2, "CHF": 2, "THB": 2, "USD": 2,
}
VALUE = re.compile(r"[0-9]{1,10}(?:\.([0-9]+))?\Z")
ORDER_PATH = re.compile(r"/v2/checkout/orders/([A-Z0-9]+)(/capture)?\Z")
CAPTURE_PATH = re.compile(r"/v2/payments/captures/([A-Z0-9]+)(/refund)?\Z")
CERT_PATH = re.compile(r"/v1/notifications/certs/(CERT-[a-f0-9]+)\Z")
ERROR_NAMES = {400: "INVALID_REQUEST", 401: "AUTHENTICATION_FAILURE", 403: "NOT_AUTHORIZED",
               404: "RESOURCE_NOT_FOUND", 422: "UNPROCESSABLE_ENTITY", 429: "RATE_LIMIT_REACHED",
               500: "INTERNAL_SERVER_ERROR", 503: "SERVICE_UNAVAILABLE"}


def _paypal_id(length: int = 17) -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- keys and certificates ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A test CA with a server certificate for 127.0.0.1/localhost, and a webhook signing key."""

    ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    signing_key: rsa.RSAPrivateKey
    signing_cert_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "crmcore test PayPal"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: rsa.RSAPrivateKey, issuer: str, issuer_key: rsa.RSAPrivateKey, *,
                 ca: bool = False, hosts: tuple[str, ...] = ()) -> x509.Certificate:
    import ipaddress

    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@functools.lru_cache(maxsize=1)
def pki() -> Pki:
    """Made once per process (RSA key generation is the slow part)."""
    ca_key, server_key, signing_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
                                       for _ in range(3))
    ca = _certificate("crmcore test CA", ca_key, "crmcore test CA", ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, "crmcore test CA", ca_key, hosts=("127.0.0.1", "localhost"))
    signing = _certificate("messageverificationcerts.paypal.com", signing_key, "messageverificationcerts.paypal.com",
                           signing_key)
    pem = serialization.Encoding.PEM
    return Pki(
        ca_pem=ca.public_bytes(pem), server_cert_pem=server.public_bytes(pem),
        server_key_pem=server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()),
        signing_key=signing_key, signing_cert_pem=signing.public_bytes(pem),
    )


def sign_webhook(key: rsa.RSAPrivateKey, transmission_id: str, transmission_time: str, webhook_id: str,
                 body: bytes) -> str:
    """PAYPAL-TRANSMISSION-SIG: base64 RSA-SHA256 over ``id|time|webhook id|crc32(body)``."""
    message = f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}".encode()
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


# -- the server's records ------------------------------------------------------------------------


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Capture:
    id: str
    order_id: str
    status: str
    currency: str
    value: str
    custom_id: str | None
    invoice_id: str | None
    create_time: str
    refunded: Decimal = Decimal(0)


@dataclass
class Refund:
    id: str
    capture_id: str
    currency: str
    value: str
    status: str
    create_time: str
    custom_id: str | None
    invoice_id: str | None


@dataclass
class Order:
    id: str
    body: dict[str, Any]
    status: str
    create_time: str
    payer_id: str | None = None
    captures: list[str] = field(default_factory=list)

    @property
    def unit(self) -> dict[str, Any]:
        return self.body["purchase_units"][0]

    @property
    def context(self) -> dict[str, Any]:
        source = self.body.get("payment_source") or {}
        return (source.get("paypal") or {}).get("experience_context") or self.body.get("application_context") or {}


class _Failure(Exception):
    def __init__(self, status: int, issue: str, description: str, field_: str | None = None) -> None:
        super().__init__(issue)
        self.status, self.issue, self.description, self.field = status, issue, description, field_


@dataclass
class FakePayPal(LocalHTTPServer):
    client_id: str = TEST_CLIENT_ID
    client_secret: str = TEST_CLIENT_SECRET
    token_lifetime: int = 32400
    trust_tls: bool = True
    #: what a capture does: COMPLETED, PENDING, DECLINED (a 201 with a declined capture) or
    #: INSTRUMENT_DECLINED (a 422: the payer's funding source was refused)
    capture_outcome: str = "COMPLETED"
    #: while True, every request waits (until ``release()`` or shutdown) without an answer
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    orders: dict[str, Order] = field(default_factory=dict)
    captures: dict[str, Capture] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    cert_name: str = field(default_factory=lambda: "CERT-" + secrets.token_hex(8))
    _scripted: list[tuple[str | None, int, dict[str, Any] | None]] = field(default_factory=list)
    _idempotent: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _tls_url: str | None = None
    _dir: str | None = None
    _saved_bundle: str | None = None
    methods = ("GET", "POST", "PATCH")

    # -- control (start, stop, url: the plain-http address, as ``api_base``; hang, release:
    # -- crmcore.testing.LocalHTTPServer) --------------------------------------------------------

    @property
    def tls_url(self) -> str:
        """The same server over https (certificate from :attr:`ca_bundle`)."""
        assert self._tls_url is not None, "start the fake first"
        return self._tls_url

    @property
    def cert_url(self) -> str:
        """Where the webhook signing certificate is served (PAYPAL-CERT-URL)."""
        return f"{self.tls_url}/v1/notifications/certs/{self.cert_name}"

    @property
    def ca_bundle(self) -> str:
        """The CA bundle requests used when the fake started (REQUESTS_CA_BUNDLE, else certifi's)
        plus the fake's CA: for REQUESTS_CA_BUNDLE."""
        assert self._dir is not None, "start the fake first"
        return os.path.join(self._dir, "ca-bundle.pem")

    def script(self, *answers: int | tuple[int, dict[str, Any]], path: str | None = None) -> None:
        """Answer the next requests (whose path starts with ``path``, if given) with these HTTP
        statuses, or (status, JSON body) pairs, instead of serving them."""
        with self._lock:
            for answer in answers:
                status, body = answer if isinstance(answer, tuple) else (answer, None)
                self._scripted.append((path, status, body))

    def expire_tokens(self) -> None:
        """Every access token issued so far is refused from now on (as after PayPal revoked them)."""
        with self._lock:
            self.tokens.clear()

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.startswith(path_prefix)
                    and (method is None or r.method == method)]

    def approve(self, order_id: str) -> str:
        """What the payer's "Approve" does; returns the URL PayPal redirects the payer to."""
        with self._lock:
            order = self.orders[order_id]
            if order.status in ("CREATED", "PAYER_ACTION_REQUIRED"):
                order.status, order.payer_id = "APPROVED", _paypal_id(13)
            return _with_query(order.context.get("return_url", ""), token=order.id, PayerID=order.payer_id or "")

    def start(self) -> FakePayPal:
        self._dir = tempfile.mkdtemp(prefix="fake-paypal-")
        keys = pki()
        cert_file, key_file = os.path.join(self._dir, "server.pem"), os.path.join(self._dir, "server.key")
        with open(cert_file, "wb") as out:
            out.write(keys.server_cert_pem)
        with open(key_file, "wb") as out:
            out.write(keys.server_key_pem)
        import certifi

        trusted = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or ""
        trusted = trusted if os.path.isfile(trusted) else certifi.where()
        with open(trusted, "rb") as src, open(self.ca_bundle, "wb") as out:
            out.write(src.read() + b"\n" + keys.ca_pem)
        super().start()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._tls_url = self.listen(tls=context)
        return self

    def stop(self) -> None:
        super().stop()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakePayPal:
        self.start()
        if self.trust_tls:
            self._saved_bundle = os.environ.get("REQUESTS_CA_BUNDLE")
            os.environ["REQUESTS_CA_BUNDLE"] = self.ca_bundle
        return self

    def __exit__(self, *_exc: Any) -> None:
        if self.trust_tls:
            if self._saved_bundle is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = self._saved_bundle
        self.stop()

    def settings(self, webhook_id: str = TEST_WEBHOOK_ID, **over: Any) -> dict[str, Any]:
        """The gateway's settings for this server (``enable_plugin(ctx, "payments-paypal", ...)``)."""
        return {"client_id": self.client_id, "client_secret": self.client_secret, "webhook_id": webhook_id,
                "api_base": self.url, **over}

    # -- webhooks ------------------------------------------------------------------------------

    def webhook(self, event_type: str, resource: dict[str, Any], webhook_id: str = TEST_WEBHOOK_ID, *,
                sent_at: dt.datetime | None = None, event_id: str | None = None, cert_url: str | None = None,
                resource_type: str = "capture", summary: str | None = None) -> tuple[dict[str, str], bytes]:
        """Headers and raw body of a webhook delivery as PayPal POSTs it, signed for ``webhook_id``."""
        event_id = event_id or f"WH-{_paypal_id(17)}-{_paypal_id(17)}"
        event = {"id": event_id, "event_version": "1.0", "create_time": _now(), "resource_type": resource_type,
                 "resource_version": "2.0", "event_type": event_type, "summary": summary or event_type,
                 "resource": resource,
                 "links": [{"href": f"{self.url}/v1/notifications/webhooks-events/{event_id}", "rel": "self",
                            "method": "GET"}]}
        body = json.dumps(event, indent=1).encode()
        sent = (sent_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        transmission_id = str(uuid.uuid1())
        headers = {
            "Content-Type": "application/json", "User-Agent": "PayPal/AUHD-214.0-58158624",
            "PAYPAL-TRANSMISSION-ID": transmission_id, "PAYPAL-TRANSMISSION-TIME": sent,
            "PAYPAL-TRANSMISSION-SIG": sign_webhook(pki().signing_key, transmission_id, sent, webhook_id, body),
            "PAYPAL-CERT-URL": cert_url or self.cert_url, "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }
        return headers, body

    def capture_webhook(self, capture_id: str, webhook_id: str = TEST_WEBHOOK_ID, event_type: str = "PAYMENT.CAPTURE.COMPLETED",
                        **kwargs: Any) -> tuple[dict[str, str], bytes]:
        """A signed PAYMENT.CAPTURE.* delivery about a capture made on this server."""
        with self._lock:
            capture = self.captures[capture_id]
            resource = self._capture_json(capture)
        resource["supplementary_data"] = {"related_ids": {"order_id": capture.order_id}}
        return self.webhook(event_type, resource, webhook_id, **kwargs)

    def refund_webhook(self, refund_id: str, webhook_id: str = TEST_WEBHOOK_ID, **kwargs: Any) -> tuple[dict[str, str], bytes]:
        """A signed PAYMENT.CAPTURE.REFUNDED delivery about a refund made on this server."""
        with self._lock:
            resource = self._refund_json(self.refunds[refund_id])
        return self.webhook("PAYMENT.CAPTURE.REFUNDED", resource, webhook_id, resource_type="refund", **kwargs)

    # -- requests ------------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpAnswer | None:
        status, headers, body = self._respond(request.method, request.target, dict(request.headers), request.body)
        if status == 0:
            return None  # hung and released: close without an answer
        return HttpAnswer(status, body, headers=headers)

    def _respond(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        path, query = parts.path, dict(parse_qsl(parts.query))
        record = Received(method, path, headers, _decode(raw, headers))
        with self._lock:
            self.received.append(record)
            scripted = next((s for s in self._scripted if s[0] is None or path.startswith(s[0])), None)
            if scripted is not None:
                self._scripted.remove(scripted)
        if self.hang:
            self.hold()
            return 0, {}, b""
        if scripted is not None:
            status, body = scripted[1], scripted[2]
            if body is None:
                body = self._error_body(status, ERROR_NAMES.get(status, "ERROR"), "Scripted failure.")
            record.status = status
            return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
        try:
            with self._lock:
                status, answer_headers, body_bytes = self._route(method, path, query, headers, record.body)
        except _Failure as failure:
            status = failure.status
            details = [{"issue": failure.issue, "description": failure.description, "location": "body",
                        **({"field": failure.field} if failure.field else {})}]
            body = self._error_body(status, ERROR_NAMES.get(status, "UNPROCESSABLE_ENTITY"),
                                    _error_message(status), details)
            answer_headers, body_bytes = {"Content-Type": "application/json"}, json.dumps(body).encode()
        record.status = status
        return status, answer_headers, body_bytes

    @staticmethod
    def _error_body(status: int, name: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "message": message, "debug_id": secrets.token_hex(6)}
        if details:
            body["details"] = details
            body["links"] = [{"href": f"https://developer.paypal.com/api/rest/reference/orders/v2/errors/#{d['issue']}",
                              "rel": "information_link", "method": "GET"} for d in details]
        return body

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: Any) -> tuple[int, dict[str, str], bytes]:
        if path == "/checkoutnow":
            return self._approval_page(method, query, body)
        cert = CERT_PATH.fullmatch(path)
        if cert and method == "GET":
            if cert.group(1) != self.cert_name:
                raise _Failure(404, "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
            return 200, {"Content-Type": "application/x-pem-file"}, pki().signing_cert_pem
        if path == "/v1/oauth2/token" and method == "POST":
            return self._json(*self._token(headers, body))
        self._authorize(headers)
        request_id = headers.get("paypal-request-id")
        if request_id is not None and not 1 <= len(request_id) <= 108:
            raise _Failure(400, "INVALID_PARAMETER_VALUE", "PayPal-Request-Id must be 1 to 108 characters.")
        if request_id and (path, request_id) in self._idempotent:
            return self._json(*self._idempotent[(path, request_id)])
        if path == "/v2/checkout/orders" and method == "POST":
            answer = self._create_order(body)
        elif (match := ORDER_PATH.fullmatch(path)) and method == "GET" and not match.group(2):
            answer = 200, self._order_json(self._order(match.group(1)))
        elif match and method == "POST" and match.group(2):
            answer = self._capture(self._order(match.group(1)), headers)
        elif (match := CAPTURE_PATH.fullmatch(path)) and method == "GET" and not match.group(2):
            answer = 200, self._capture_json(self._capture_of(match.group(1)))
        elif match and method == "POST" and match.group(2):
            answer = self._refund(self._capture_of(match.group(1)), body)
        else:
            raise _Failure(404, "INVALID_RESOURCE_ID", f"No such endpoint: {method} {path}.")
        if request_id and 200 <= answer[0] < 300:
            self._idempotent[(path, request_id)] = answer
        return self._json(*answer)

    @staticmethod
    def _json(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json"}, json.dumps(body).encode()

    # -- OAuth2 --------------------------------------------------------------------------------

    def _token(self, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        auth = parse_basic_auth(headers.get("authorization"))
        if auth != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
        if not isinstance(body, dict) or body.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"}
        token = "A21AA" + secrets.token_urlsafe(48)
        self.tokens.add(token)
        return 200, {"scope": "https://uri.paypal.com/services/payments/payment", "access_token": token,
                     "token_type": "Bearer", "app_id": "APP-80W284485P519543T",
                     "expires_in": self.token_lifetime, "nonce": f"{_now()}{secrets.token_hex(8)}"}

    def _authorize(self, headers: dict[str, str]) -> None:
        value = headers.get("authorization") or ""
        if not value.startswith("Bearer ") or value[7:] not in self.tokens:
            raise _Failure(401, "INVALID_TOKEN", "Access Token not found in cache or invalid.")

    # -- orders --------------------------------------------------------------------------------

    def _create_order(self, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            raise _Failure(400, "MALFORMED_REQUEST_JSON", "The request JSON is not well formed.")
        if body.get("intent") not in ("CAPTURE", "AUTHORIZE"):
            raise _Failure(400, "MISSING_REQUIRED_PARAMETER" if "intent" not in body else "INVALID_PARAMETER_VALUE",
                           "intent must be CAPTURE or AUTHORIZE.", "/intent")
        units = body.get("purchase_units")
        if not isinstance(units, list) or not 1 <= len(units) <= 10 or not all(isinstance(u, dict) for u in units):
            raise _Failure(400, "INVALID_ARRAY_MAX_ITEMS", "purchase_units: 1 to 10 items.", "/purchase_units")
        for unit in units:
            _check_amount(unit.get("amount"), "/purchase_units/@reference_id=='default'/amount")
            for name, limit in (("reference_id", 256), ("custom_id", 127), ("invoice_id", 127), ("description", 127)):
                if name in unit and (not isinstance(unit[name], str) or not 1 <= len(unit[name]) <= limit):
                    raise _Failure(400, "INVALID_STRING_LENGTH", f"{name}: 1 to {limit} characters.",
                                   f"/purchase_units/@reference_id=='default'/{name}")
        order = Order(id=_paypal_id(), body=body, status="CREATED", create_time=_now())
        context = order.context
        for name in ("return_url", "cancel_url"):
            if name in context and not re.match(r"https?://[^/\s]+", str(context[name])):
                raise _Failure(400, "INVALID_PARAMETER_SYNTAX", f"{name} is not a URL.",
                               f"/payment_source/paypal/experience_context/{name}")
        if context.get("user_action", "CONTINUE") not in ("CONTINUE", "PAY_NOW"):
            raise _Failure(400, "INVALID_PARAMETER_VALUE", "user_action: CONTINUE or PAY_NOW.")
        if "brand_name" in context and not 1 <= len(str(context["brand_name"])) <= 127:
            raise _Failure(400, "INVALID_STRING_LENGTH", "brand_name: 1 to 127 characters.")
        if "payment_source" in body:
            order.status = "PAYER_ACTION_REQUIRED"
        self.orders[order.id] = order
        return 201, self._order_json(order)

    def _order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise _Failure(404, "INVALID_RESOURCE_ID", "Specified resource ID does not exist. Please check "
                                                       "the resource ID and try again.")
        return order

    def _order_json(self, order: Order) -> dict[str, Any]:
        base = f"{self.url}/v2/checkout/orders/{order.id}"
        unit = dict(order.unit)
        unit.setdefault("reference_id", "default")
        unit["payee"] = {"email_address": "merchant@example.com", "merchant_id": "C92NPPXDJSMXE"}
        if order.captures:
            unit["payments"] = {"captures": [self._capture_json(self.captures[c]) for c in order.captures]}
        out: dict[str, Any] = {"id": order.id, "intent": order.body["intent"], "status": order.status,
                               "purchase_units": [unit], "create_time": order.create_time}
        links = [{"href": base, "rel": "self", "method": "GET"}]
        if order.status == "PAYER_ACTION_REQUIRED":
            links.append({"href": f"{self.url}/checkoutnow?token={order.id}", "rel": "payer-action", "method": "GET"})
        elif order.status == "CREATED":
            links += [{"href": f"{self.url}/checkoutnow?token={order.id}", "rel": "approve", "method": "GET"},
                      {"href": base, "rel": "update", "method": "PATCH"},
                      {"href": f"{base}/capture", "rel": "capture", "method": "POST"}]
        elif order.status == "APPROVED":
            links.append({"href": f"{base}/capture", "rel": "capture", "method": "POST"})
        out["links"] = links
        if order.payer_id:
            payer = {"email_address": "payer@example.com", "account_id": order.payer_id,
                     "name": {"given_name": "Test", "surname": "Payer"}}
            out["payment_source"] = {"paypal": {**payer, "account_status": "VERIFIED"}}
            out["payer"] = {"name": payer["name"], "email_address": payer["email_address"],
                            "payer_id": order.payer_id}
        return out

    def _capture(self, order: Order, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if order.status in ("CREATED", "PAYER_ACTION_REQUIRED"):
            raise _Failure(422, "ORDER_NOT_APPROVED", "Payer has not yet approved the Order for payment. "
                                                      "Please redirect the payer to the 'approve' url.")
        if order.captures:
            raise _Failure(422, "ORDER_ALREADY_CAPTURED", "Order already captured. If 'intent=CAPTURE' "
                                                          "only one capture per order is allowed.")
        if self.capture_outcome == "INSTRUMENT_DECLINED":
            raise _Failure(422, "INSTRUMENT_DECLINED", "The instrument presented was either declined by the "
                                                       "processor or bank, or it can't be used for this payment.")
        unit = order.unit
        status = self.capture_outcome if self.capture_outcome in ("COMPLETED", "PENDING", "DECLINED") else "COMPLETED"
        capture = Capture(id=_paypal_id(), order_id=order.id, status=status, currency=unit["amount"]["currency_code"],
                          value=unit["amount"]["value"], custom_id=unit.get("custom_id"),
                          invoice_id=unit.get("invoice_id"), create_time=_now())
        self.captures[capture.id] = capture
        order.captures.append(capture.id)
        order.status = "COMPLETED"
        prefer = headers.get("prefer") or ""
        full = self._order_json(order)
        if "return=representation" in prefer:
            return 201, full
        return 201, {"id": order.id, "status": order.status, "payment_source": full.get("payment_source", {}),
                     "purchase_units": [{"reference_id": full["purchase_units"][0]["reference_id"],
                                         "payments": full["purchase_units"][0]["payments"]}],
                     "payer": full.get("payer", {}), "links": full["links"]}

    def _capture_of(self, capture_id: str) -> Capture:
        capture = self.captures.get(capture_id)
        if capture is None:
            raise _Failure(404, "INVALID_RESOURCE_ID", "Specified resource ID does not exist. Please check "
                                                       "the resource ID and try again.")
        return capture

    def _capture_json(self, capture: Capture) -> dict[str, Any]:
        base = f"{self.url}/v2/payments/captures/{capture.id}"
        out: dict[str, Any] = {
            "id": capture.id, "status": capture.status,
            "amount": {"currency_code": capture.currency, "value": capture.value},
            "final_capture": True, "seller_protection": {"status": "ELIGIBLE"},
            "create_time": capture.create_time, "update_time": capture.create_time,
            "links": [{"href": base, "rel": "self", "method": "GET"},
                      {"href": f"{base}/refund", "rel": "refund", "method": "POST"},
                      {"href": f"{self.url}/v2/checkout/orders/{capture.order_id}", "rel": "up", "method": "GET"}],
        }
        for name in ("custom_id", "invoice_id"):
            if getattr(capture, name) is not None:
                out[name] = getattr(capture, name)
        if capture.status == "PENDING":
            out["status_details"] = {"reason": "PENDING_REVIEW"}
        elif capture.status == "DECLINED":
            out["status_details"] = {"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"}
        return out

    # -- refunds -------------------------------------------------------------------------------

    def _refund(self, capture: Capture, body: Any) -> tuple[int, dict[str, Any]]:
        if capture.status not in ("COMPLETED", "PARTIALLY_REFUNDED"):
            raise _Failure(422, "CAPTURE_FULLY_REFUNDED" if capture.status == "REFUNDED" else "REFUND_NOT_ALLOWED",
                           f"The capture is {capture.status.lower()}: it cannot be refunded.")
        remaining = Decimal(capture.value) - capture.refunded
        amount = (body or {}).get("amount") if isinstance(body, dict) else None
        if amount is None:
            value = remaining
        else:
            value = _check_amount(amount, "/amount")
            if amount["currency_code"] != capture.currency:
                raise _Failure(422, "REFUND_CURRENCY_MISMATCH", "Refund must be in the same currency as the capture.")
            if value > remaining:
                raise _Failure(422, "REFUND_AMOUNT_EXCEEDED", "The refund amount must be less than or equal to "
                                                              "the capture amount that has not yet been refunded.")
        capture.refunded += value
        capture.status = "REFUNDED" if capture.refunded == Decimal(capture.value) else "PARTIALLY_REFUNDED"
        refund = Refund(id=_paypal_id(), capture_id=capture.id, currency=capture.currency,
                        value=amount["value"] if amount else format(value, "f"), status="COMPLETED", create_time=_now(), custom_id=capture.custom_id,
                        invoice_id=capture.invoice_id)
        self.refunds[refund.id] = refund
        return 201, self._refund_json(refund)

    def _refund_json(self, refund: Refund) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": refund.id, "status": refund.status,
            "amount": {"currency_code": refund.currency, "value": refund.value},
            "create_time": refund.create_time, "update_time": refund.create_time,
            "links": [{"href": f"{self.url}/v2/payments/refunds/{refund.id}", "rel": "self", "method": "GET"},
                      {"href": f"{self.url}/v2/payments/captures/{refund.capture_id}", "rel": "up", "method": "GET"}],
        }
        for name in ("custom_id", "invoice_id"):
            if getattr(refund, name) is not None:
                out[name] = getattr(refund, name)
        return out

    # -- the payer's approval page -------------------------------------------------------------

    def _approval_page(self, method: str, query: dict[str, str], form: Any) -> tuple[int, dict[str, str], bytes]:
        values = form if method == "POST" and isinstance(form, dict) else query
        order = self.orders.get(str(values.get("token") or ""))
        if order is None:
            return _page(404, "<h1>This checkout session does not exist</h1>")
        if method == "POST":
            if values.get("action") == "cancel":
                return 303, {"Location": _with_query(order.context.get("cancel_url", ""), token=order.id)}, b""
            return 303, {"Location": self.approve(order.id)}, b""
        unit, esc = order.unit, html.escape
        if order.status not in ("CREATED", "PAYER_ACTION_REQUIRED"):
            return _page(200, f"<h1>Order {esc(order.id)} is {esc(order.status.lower())}</h1>")
        brand = order.context.get("brand_name") or "Merchant"
        return _page(200, f"""<h1>Pay {esc(str(brand))} with PayPal (test)</h1>
<p id="description">{esc(str(unit.get('description') or ''))}</p>
<p id="amount">{esc(unit['amount']['value'])} {esc(unit['amount']['currency_code'])}</p>
<form method="post" action="/checkoutnow">
<input type="hidden" name="token" value="{esc(order.id)}">
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="cancel">Cancel and return to {esc(str(brand))}</button>
</form>""")


def _check_amount(amount: Any, where: str) -> Decimal:
    if not isinstance(amount, dict) or "currency_code" not in amount or "value" not in amount:
        raise _Failure(400, "MISSING_REQUIRED_PARAMETER", "amount needs currency_code and value.", where)
    currency, value = amount["currency_code"], amount["value"]
    if currency not in CURRENCY_DECIMALS:
        raise _Failure(422, "CURRENCY_NOT_SUPPORTED", "Currency code is not supported.", f"{where}/currency_code")
    match = VALUE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _Failure(400, "INVALID_PARAMETER_SYNTAX", "The value of a field does not conform to the expected "
                                                        "format.", f"{where}/value")
    if len(match.group(1) or "") > CURRENCY_DECIMALS[currency]:
        raise _Failure(422, "DECIMAL_PRECISION", f"{currency} takes at most {CURRENCY_DECIMALS[currency]} decimals.",
                       f"{where}/value")
    try:
        number = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already refused it
        raise _Failure(400, "INVALID_PARAMETER_SYNTAX", "Not a number.", f"{where}/value") from None
    if number <= 0:
        raise _Failure(422, "AMOUNT_MUST_BE_POSITIVE" if number == 0 else "CANNOT_BE_NEGATIVE",
                       "The amount must be greater than zero.", f"{where}/value")
    return number


def _error_message(status: int) -> str:
    return {400: "Request is not well-formed, syntactically incorrect, or violates schema.",
            401: "Authentication failed due to invalid authentication credentials or a missing Authorization header.",
            404: "The specified resource does not exist.",
            422: "The requested action could not be performed, semantically incorrect, or failed business "
                 "validation."}.get(status, "An internal server error has occurred.")


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _page(status: int, content: str) -> tuple[int, dict[str, str], bytes]:
    document = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>PayPal checkout (test)"
                f"</title></head><body>{content}</body></html>")
    return status, {"Content-Type": "text/html; charset=utf-8"}, document.encode()


def _decode(raw: bytes, headers: dict[str, str]) -> Any:
    if not raw:
        return None
    kind = headers.get("content-type") or ""
    text = raw.decode("utf-8", "replace")
    if "application/x-www-form-urlencoded" in kind:
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        return json.loads(text)
    except ValueError:
        return text
