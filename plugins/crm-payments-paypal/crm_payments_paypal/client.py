"""PayPal's REST API as the gateway uses it: OAuth2 access tokens (cached) and JSON calls whose
failures become the contract's TemporaryFailure / PermanentFailure, never quoting a secret.

Tokens come from ``POST /v1/oauth2/token`` (HTTP basic auth with the client ID and secret,
``grant_type=client_credentials``) and live ``expires_in`` seconds (about 9 hours). One token is
kept per API address and app, refreshed shortly before it expires, and once more when an API call
answers 401 (PayPal revoked or forgot it). The cache key includes a hash of the secret, so a
business that names another business's client ID with a wrong secret never borrows its token.

Every operation has one deadline (the gateway's ``timeout``); each request gets the smaller of
the configured per-request timeout and half of what is left (``call`` may take about twice its
timeout to give up on a server that trickles its answer).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from crmcore.messaging.http import Answer, call, scrub
from crmcore.messaging.providers import PermanentFailure, TemporaryFailure

log = logging.getLogger("crm.payments.paypal")

TOKEN_PATH = "/v1/oauth2/token"
MIN_REQUEST_SECONDS = 0.05
#: the clock tokens expire by (tests move it forward instead of waiting hours)
clock = time.monotonic


@dataclass
class _Token:
    value: str
    refresh_at: float  # clock() after which a new token is fetched


_tokens: dict[tuple[str, str, str], _Token] = {}
_key_locks: dict[tuple[str, str, str], threading.Lock] = {}
_guard = threading.Lock()


def clear_token_cache() -> None:
    """Forget every cached access token (tests; a changed app)."""
    with _guard:
        _tokens.clear()


def _refresh_margin(expires_in: float) -> float:
    """How long before its expiry a token is replaced: a fifth of its life, at most 5 minutes."""
    return min(300.0, expires_in / 5)


@dataclass(frozen=True)
class Reply:
    """One answer of the API: the status and the JSON document (``{}`` when there is none)."""

    status: int
    data: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def issues(self) -> set[str]:
        """The ``details[].issue`` codes of an error (ORDER_NOT_APPROVED, ...)."""
        details = self.data.get("details")
        if not isinstance(details, list):
            return set()
        return {d["issue"] for d in details if isinstance(d, dict) and isinstance(d.get("issue"), str)}


@dataclass
class PayPalApi:
    """The API of one app (settings as loaded by ``schemas.load_settings``), for one operation."""

    config: Mapping[str, Any]
    budget: float
    _deadline: float = field(init=False)
    _token: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.budget

    @property
    def base(self) -> str:
        return str(self.config["api_base"]).rstrip("/")

    @property
    def secrets(self) -> list[str | None]:
        return [self.config.get("client_secret"), self._token]

    def timeout(self) -> float:
        left = (self._deadline - time.monotonic()) / 2
        wanted = float(self.config.get("timeout") or 10.0)
        if left < MIN_REQUEST_SECONDS:
            raise TemporaryFailure(f"PayPal did not finish within {self.budget:g} s")
        return min(wanted, left)

    # -- tokens ----------------------------------------------------------------------------

    def _key(self) -> tuple[str, str, str]:
        digest = hashlib.sha256(f"{self.config['client_id']}\0{self.config['client_secret']}".encode()).hexdigest()
        return self.base, str(self.config["client_id"]), digest

    def access_token(self, *, stale: str | None = None) -> str:
        """A valid token: the cached one unless it is ``stale`` (refused by PayPal) or about to expire."""
        key = self._key()
        with _guard:
            lock = _key_locks.setdefault(key, threading.Lock())
        with lock:  # one fetch per app at a time; the others then find it cached
            with _guard:
                cached = _tokens.get(key)
                if cached is not None and (cached.value == stale or clock() >= cached.refresh_at):
                    _tokens.pop(key, None)
                    cached = None
            if cached is None:
                cached = self._fetch_token()
                with _guard:
                    _tokens[key] = cached
        self._token = cached.value
        return cached.value

    def _fetch_token(self) -> _Token:
        answer = call("POST", self.base + TOKEN_PATH, timeout=self.timeout(), what="PayPal",
                      auth=(self.config["client_id"], self.config["client_secret"]),
                      data={"grant_type": "client_credentials"},
                      headers={"Accept": "application/json", "Accept-Language": "en_US"})
        data = _json(answer)
        if answer.status in (400, 401, 403):
            log.warning("PayPal refused the app's credentials (HTTP %s, %s)", answer.status, data.get("error"))
            raise PermanentFailure("PayPal: authentication failed (check the client ID and secret in the "
                                   "plugin's settings, and that api_base is the live or sandbox address "
                                   "they belong to)")
        if answer.status == 429 or answer.status >= 500:
            raise TemporaryFailure(f"PayPal is unavailable (HTTP {answer.status} for an access token)")
        token, expires_in = data.get("access_token"), data.get("expires_in")
        if answer.status != 200 or not isinstance(token, str) or not token:
            raise TemporaryFailure(f"PayPal gave no access token (HTTP {answer.status})")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
            expires_in = 60  # unknown life: use it briefly
        return _Token(token, clock() + expires_in - _refresh_margin(float(expires_in)))

    # -- calls -----------------------------------------------------------------------------

    def request(self, method: str, path: str, *, body: Any = None, request_id: str | None = None,
                prefer: str | None = None) -> Reply:
        """One API call with a bearer token; a 401 refreshes the token and tries once more."""
        token = self.access_token()
        reply = self._send(method, path, token, body, request_id, prefer)
        if reply.status == 401:
            token = self.access_token(stale=token)
            reply = self._send(method, path, token, body, request_id, prefer)
            if reply.status == 401:
                raise PermanentFailure("PayPal refused a fresh access token (HTTP 401): check the app's "
                                       "permissions on the PayPal developer dashboard")
        return reply

    def _send(self, method: str, path: str, token: str, body: Any, request_id: str | None,
              prefer: str | None) -> Reply:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                   "Content-Type": "application/json"}
        if request_id:
            headers["PayPal-Request-Id"] = request_id
        if prefer:
            headers["Prefer"] = prefer
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        answer = call(method, self.base + path, timeout=self.timeout(), what="PayPal", **kwargs)
        return Reply(answer.status, _json(answer))

    def fail(self, reply: Reply, what: str) -> NoReturn:
        """Raise the failure an unexpected answer means (429/5xx temporary, other 4xx permanent)."""
        detail = self.describe(reply)
        if reply.status == 429 or reply.status >= 500:
            raise TemporaryFailure(scrub(f"PayPal is unavailable (HTTP {reply.status} for {what}){detail}",
                                         self.secrets))
        if 300 <= reply.status < 400:
            raise PermanentFailure(f"PayPal answered {what} with a redirect (HTTP {reply.status}): check api_base")
        if reply.ok:
            raise TemporaryFailure(f"PayPal's answer to {what} could not be read (HTTP {reply.status})")
        raise PermanentFailure(scrub(f"PayPal refused {what} (HTTP {reply.status}){detail}", self.secrets))

    @staticmethod
    def describe(reply: Reply) -> str:
        """PayPal's error name, message and first issue, for admins: ``: NAME: message [ISSUE: ...]``."""
        data = reply.data
        name = data.get("name") or data.get("error")
        message = data.get("message") or data.get("error_description")
        out = ""
        if isinstance(name, str) and name:
            out += f": {name[:100]}"
        if isinstance(message, str) and message:
            out += f": {message[:300]}"
        details = data.get("details")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            issue, description = details[0].get("issue"), details[0].get("description")
            if isinstance(issue, str) and issue:
                out += f" [{issue[:100]}" + (f": {description[:300]}" if isinstance(description, str) else "") + "]"
        debug_id = data.get("debug_id")
        if isinstance(debug_id, str) and debug_id:
            out += f" (debug_id {debug_id[:64]})"
        return out


def _json(answer: Answer) -> dict[str, Any]:
    data = answer.json()
    return data if isinstance(data, dict) else {}
