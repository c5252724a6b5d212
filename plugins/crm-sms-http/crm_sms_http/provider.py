"""The ``http`` SMS provider: any gateway reachable by one HTTP request per message.

The request is built from the settings (:mod:`crm_sms_http.schemas`): the URL template with its
placeholders URL-encoded, the method, the recipient / sender / text fields (plus the
idempotency key and the callback URL where the gateway takes them, and fixed extra fields) in
the query string (GET), a form or a JSON body, and the authentication. The answer is a success
when its HTTP status is in ``success_statuses`` and its body does not match ``error_regex``;
the gateway's message id is read with a JSON path or a regular expression. 408, 429 and 5xx
answers and timeouts are temporary (retried), any other answer permanent.

With an idempotency field the provider declares itself idempotent for that business
(:meth:`supports_idempotency_for`): the gateway is trusted to drop a repeated key, so a retry
after a lost answer never reaches the recipient twice.

Delivery reports: the gateway calls ``/hooks/sms/http/<business>`` (GET or POST; a JSON object,
a JSON list of objects, a form or the query string) with the message id and a status mapped
through ``status_map``. They are authenticated by an HMAC signature header over the body (or
the URL and the body) with the shared secret, or by a secret token the provider adds to the
callback URL it hands the gateway; checked in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from crm_sms_http.schemas import GatewayConfig, load_config, template_fields
from crmcore.messaging.http import Answer, call, scrub
from crmcore.messaging.providers import (
    CallbackRequest,
    InvalidCallback,
    OutgoingSms,
    PermanentFailure,
    SendResult,
    SmsProvider,
    StatusUpdate,
    TemporaryFailure,
)

log = logging.getLogger("crm.sms.http")

TEMPORARY = {408, 425, 429}
TOKEN_PARAM = "token"
MAX_REPORTS = 1000


def _path(data: Any, path: str) -> Any:
    """``data`` followed along a dotted path (``messages.0.id``, optionally ``$.``-prefixed)."""
    if path.startswith("$"):
        path = path[1:].lstrip(".")
    for part in path.split(".") if path else []:
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.lstrip("-").isdigit():
            index = int(part)
            data = data[index] if -len(data) <= index < len(data) else None
        else:
            return None
        if data is None:
            return None
    return data


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def callback_signature(secret: str, content: bytes, algorithm: str = "sha256", encoding: str = "hex") -> str:
    """The signature a gateway sends with a delivery report (for gateway authors and tests)."""
    digest = hmac.new(secret.encode("utf-8"), content, getattr(hashlib, algorithm)).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode("ascii")


class HttpSmsProvider(SmsProvider):
    name = "http"
    title = "HTTP gateway"
    #: one call: connect (<= 5 s) + answer (<= the ``timeout`` setting, at most 10 s) + body read
    timeout = 30.0
    #: without settings, no: see :meth:`supports_idempotency_for`
    supports_idempotency = False

    def supports_idempotency_for(self, settings: Mapping[str, Any]) -> bool:
        try:
            return load_config(settings).idempotent
        except ValueError:
            return False

    # -- sending --------------------------------------------------------------------------

    def send(self, message: OutgoingSms, settings: Mapping[str, Any]) -> SendResult:
        try:
            config = load_config(settings)
        except ValueError as exc:
            raise PermanentFailure(str(exc)) from None
        c = config.raw
        callback = self._callback_url(config, message.status_callback_url)
        sender = message.sender or c.get("sender") or ""
        e164 = message.to
        digits = e164.lstrip("+")
        values = {
            "to": e164 if c["number_format"] == "e164" else digits, "to_e164": e164, "to_digits": digits,
            "sender": sender, "text": message.body, "message_id": str(message.message_id),
            "idempotency_key": message.idempotency_key, "callback_url": callback or "",
        }
        url = c["url_template"].format(**{name: quote(values[name], safe="")
                                          for name in template_fields(c["url_template"])})
        fields: dict[str, str] = dict(config.extra)
        fields[c["to_field"]] = values["to"]
        if c.get("from_field") and sender:
            fields[c["from_field"]] = sender
        fields[c["text_field"]] = message.body
        if c.get("idempotency_field"):
            fields[c["idempotency_field"]] = message.idempotency_key
        if c.get("callback_url_field") and callback:
            fields[c["callback_url_field"]] = callback
        kwargs: dict[str, Any] = {"headers": {"Accept": "application/json, text/plain;q=0.9, */*;q=0.5"}}
        if c["method"] == "GET":
            kwargs["params"] = fields
        elif c["body_format"] == "json":
            kwargs["json"] = fields
        else:
            kwargs["data"] = fields
        self._authenticate(c, kwargs)
        answer = call(c["method"], url, timeout=c["timeout"], what="the SMS gateway", **kwargs)
        return self._result(config, answer)

    @staticmethod
    def _callback_url(config: GatewayConfig, url: str | None) -> str | None:
        c = config.raw
        if not url or not c["callbacks"]:
            return None
        if c["callback_auth"] == "url_token":
            return f"{url}{'&' if '?' in url else '?'}{TOKEN_PARAM}={quote(c['callback_secret'] or '', safe='')}"
        return url

    @staticmethod
    def _authenticate(c: dict[str, Any], kwargs: dict[str, Any]) -> None:
        if c["auth_type"] == "basic":
            kwargs["auth"] = (c.get("username") or "", c.get("password") or "")
        elif c["auth_type"] == "bearer":
            kwargs["headers"]["Authorization"] = f"Bearer {c.get('token') or ''}"
        elif c["auth_type"] == "header":
            kwargs["headers"][c["header_name"]] = c.get("header_value") or ""

    def _result(self, config: GatewayConfig, answer: Answer) -> SendResult:
        text = answer.body.decode("utf-8", "replace")
        secrets = config.secrets()
        if config.is_success(answer.status):
            if config.error_regex is not None:
                found = config.error_regex.search(text)
                if found:
                    raise PermanentFailure(scrub(f"the SMS gateway refused the message: {found.group(0)[:200]}", secrets))
            return SendResult(provider_message_id=self._message_id(config, answer, text), status="sent")
        snippet = scrub(" ".join(text.split())[:200], secrets)
        if answer.status in (401, 403):
            raise PermanentFailure(f"the SMS gateway refused the credentials (HTTP {answer.status}): "
                                   "check the authentication settings")
        if answer.status in TEMPORARY or answer.status >= 500:
            raise TemporaryFailure(f"the SMS gateway is unavailable (HTTP {answer.status})"
                                   + (f": {snippet}" if snippet else ""))
        raise PermanentFailure(f"the SMS gateway refused the message (HTTP {answer.status})"
                               + (f": {snippet}" if snippet else ""))

    @staticmethod
    def _message_id(config: GatewayConfig, answer: Answer, text: str) -> str | None:
        c = config.raw
        value: Any = None
        if c.get("message_id_path"):
            value = _path(answer.json(), c["message_id_path"])
        elif config.id_regex is not None:
            found = config.id_regex.search(text)
            if found:
                value = found.group("id") if "id" in config.id_regex.groupindex else \
                    found.group(1) if config.id_regex.groups else found.group(0)
        else:
            return None
        if value is None or isinstance(value, dict | list) or str(value) == "":
            # sent (the status said so) but the id is not where the settings say: reports for
            # it cannot be matched; never a failure (a retry would send the SMS again)
            log.warning("the SMS gateway's answer holds no message id where the settings say")
            return None
        return str(value)[:200]

    # -- status callbacks ----------------------------------------------------------------

    def parse_callback(self, request: CallbackRequest, settings: Mapping[str, Any]) -> list[StatusUpdate]:
        try:
            config = load_config(settings)
        except ValueError as exc:
            raise InvalidCallback(str(exc)) from None
        c = config.raw
        if not c["callbacks"]:
            raise InvalidCallback("delivery reports are switched off in the HTTP gateway settings")
        self._verify(config, request)
        reports = self._reports(request)
        updates = []
        for report in reports[:MAX_REPORTS]:
            ident = _path(report, c["callback_id_field"])
            raw_status = _path(report, c["callback_status_field"])
            if ident is None or raw_status is None or isinstance(ident, dict | list):
                continue
            status = config.status_map.get(str(raw_status).strip().lower())
            if status in (None, "ignore"):
                continue
            error = None
            if status == "failed":
                detail = _path(report, c["callback_error_field"]) if c.get("callback_error_field") else None
                error = f"the gateway reported {str(raw_status)[:50]}" + (f": {str(detail)[:200]}" if detail else "")
            updates.append(StatusUpdate(provider_message_id=str(ident)[:200], status=status, error=error))
        return updates

    @staticmethod
    def _verify(config: GatewayConfig, request: CallbackRequest) -> None:
        c = config.raw
        mode = c["callback_auth"]
        if mode == "none":
            return
        secret = c.get("callback_secret") or ""
        if not secret:
            raise InvalidCallback("no shared secret in the HTTP gateway settings: reports cannot be checked")
        if mode == "url_token":
            given = str(request.query.get(TOKEN_PARAM) or "")
            if not given or not hmac.compare_digest(given.encode(), secret.encode()):
                raise InvalidCallback("the callback URL's token does not match")
            return
        given = (_header(request.headers, c["signature_header"]) or "").strip()
        if not given:
            raise InvalidCallback(f"no {c['signature_header']} header")
        if "=" in given[:8] and given.split("=", 1)[0].lower() in ("sha256", "sha512", "sha1"):
            given = given.split("=", 1)[1]  # "sha256=<digest>", as several gateways write it
        content = request.body if c["signature_covers"] == "body" else request.url.encode("utf-8") + request.body
        expected = callback_signature(secret, content, c["signature_algorithm"], c["signature_encoding"])
        if c["signature_encoding"] == "hex":
            given = given.lower()
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
            raise InvalidCallback(f"{c['signature_header']} does not match")

    @staticmethod
    def _reports(request: CallbackRequest) -> list[Mapping[str, Any]]:
        """The reports a callback carries: a JSON object or list, else the form, else the query."""
        content_type = (_header(request.headers, "Content-Type") or "").lower()
        body = request.body.strip()
        if "json" in content_type or body[:1] in (b"{", b"["):
            try:
                data = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return []
            items = data if isinstance(data, list) else [data]
            return [item for item in items if isinstance(item, Mapping)]
        if request.form:
            return [request.form]
        return [request.query] if request.query else []
