"""The ``twilio`` SMS provider: Twilio's Messages REST API and its status callbacks.

Send: ``POST {api}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with the form fields ``To``,
``From`` or ``MessagingServiceSid``, ``Body`` and ``StatusCallback``; HTTP basic auth with the
Account SID and Auth Token, or an API key SID and secret. The answer (201) is the Message resource
as JSON (``sid``, ``status``, ``num_segments``); an error is JSON with ``code``, ``message``,
``more_info`` and ``status``.

Twilio's Messages API takes no idempotency key, so ``supports_idempotency`` is False: a worker
killed after Twilio accepted a message but before the answer was recorded sends it again on
retry. The core counts such possible duplicates (docs/sms.md).

Status callback: Twilio POSTs a form (``MessageSid``, ``MessageStatus``, ``ErrorCode``, ...) and
signs it in ``X-Twilio-Signature``: base64 of HMAC-SHA1, keyed by the Auth Token, over the full
callback URL followed by every POST parameter's name and value, sorted by name. Checked here in
constant time; a report without a valid signature is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from crm_sms_twilio.schemas import load_settings
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

log = logging.getLogger("crm.sms.twilio")

#: Twilio's message statuses, as the core's (None: nothing to record, e.g. an inbound message)
STATUS_MAP = {
    "accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
    "delivered": "delivered", "read": "delivered",
    "undelivered": "failed", "failed": "failed", "canceled": "failed",
    "partially_delivered": None, "receiving": None, "received": None,
}

#: a few delivery error codes, explained (https://www.twilio.com/docs/api/errors)
ERROR_CODES = {
    "21211": "invalid 'To' phone number",
    "21408": "sending to this region is not enabled on the Twilio account",
    "21610": "the recipient replied STOP (unsubscribed from this sender)",
    "21614": "the 'To' number is not a mobile number",
    "30003": "unreachable handset",
    "30004": "message blocked",
    "30005": "unknown destination handset",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier",
    "30008": "unknown error",
}


def signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """X-Twilio-Signature of a request: base64(HMAC-SHA1(auth token, url + sorted name+value))."""
    # sorted by name, a repeated name's values sorted and each counted once (as Twilio does)
    payload = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with the default port added or removed: which form Twilio signed
    depends on how the callback URL was written and on proxies in between."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    out = [url]
    if default is None or parts.hostname is None:
        return out
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    try:
        port = parts.port
    except ValueError:
        return out
    if port is None:
        out.append(urlunsplit(parts._replace(netloc=f"{host}:{default}")))
    elif port == default:
        out.append(urlunsplit(parts._replace(netloc=host)))
    return out


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


class TwilioSmsProvider(SmsProvider):
    name = "twilio"
    title = "Twilio"
    #: one call: connect (<= 5 s) + answer (<= the ``timeout`` setting, at most 10 s) + body read
    timeout = 30.0
    supports_idempotency = False

    # -- sending --------------------------------------------------------------------------

    def send(self, message: OutgoingSms, settings: Mapping[str, Any]) -> SendResult:
        try:
            config = load_settings(settings)
        except ValueError as exc:
            raise PermanentFailure(str(exc)) from None
        secrets = [config.get("auth_token"), config.get("api_key_secret")]
        form = {"To": message.to, "Body": message.body}
        if config.get("messaging_service_sid"):
            form["MessagingServiceSid"] = config["messaging_service_sid"]
        sender = message.sender or config.get("from_number")
        if sender and not config.get("messaging_service_sid"):
            form["From"] = sender
        if message.status_callback_url and config.get("status_callbacks") and config.get("auth_token"):
            form["StatusCallback"] = message.status_callback_url
        if config.get("api_key_sid"):
            auth = (config["api_key_sid"], config["api_key_secret"])
        else:
            auth = (config["account_sid"], config["auth_token"])
        url = (f"{config['api_base_url'].rstrip('/')}/2010-04-01/Accounts/"
               f"{quote(config['account_sid'], safe='')}/Messages.json")
        answer = call("POST", url, timeout=config["timeout"], what="Twilio", data=form, auth=auth,
                      headers={"Accept": "application/json"})
        return self._result(answer, secrets)

    def _result(self, answer: Answer, secrets: list[str | None]) -> SendResult:
        data = answer.json()
        data = data if isinstance(data, dict) else {}
        if 200 <= answer.status < 300:
            sid = data.get("sid")
            if not isinstance(sid, str) or not sid:
                # accepted, but the answer is unreadable: do not retry (that would send twice)
                log.warning("Twilio accepted a message but its answer has no sid (HTTP %s)", answer.status)
                return SendResult(provider_message_id=None, status="sent")
            status = STATUS_MAP.get(str(data.get("status") or "queued"), "sent") or "sent"
            if status == "failed":
                raise PermanentFailure(self._error_text("Twilio did not accept the message", data, secrets))
            return SendResult(provider_message_id=sid[:200], status=status, segments=_segments(data))
        if answer.status in (401, 403):
            raise PermanentFailure("Twilio: authentication failed (check the account SID and the auth "
                                   "token or API key in the plugin's settings)")
        if answer.status == 429 or answer.status >= 500:
            raise TemporaryFailure(self._error_text(f"Twilio is unavailable (HTTP {answer.status})", data, secrets))
        if 300 <= answer.status < 400:
            raise PermanentFailure(f"Twilio answered with a redirect (HTTP {answer.status}): check the API address")
        raise PermanentFailure(self._error_text(f"Twilio refused the message (HTTP {answer.status})", data, secrets))

    @staticmethod
    def _error_text(prefix: str, data: dict[str, Any], secrets: list[str | None]) -> str:
        code = data.get("code") or data.get("error_code")
        text = data.get("message") or data.get("error_message")
        detail = ""
        if code is not None:
            detail += f" error {code}"
        if isinstance(text, str) and text:
            detail += f": {text[:300]}"
        return scrub(prefix + detail, secrets)

    # -- status callbacks ----------------------------------------------------------------

    def parse_callback(self, request: CallbackRequest, settings: Mapping[str, Any]) -> list[StatusUpdate]:
        if request.method.upper() != "POST":
            raise InvalidCallback("Twilio status callbacks are POST requests")
        token = (settings or {}).get("auth_token")
        if not token:
            raise InvalidCallback("no auth token in the Twilio settings: callbacks cannot be verified")
        given = _header(request.headers, "X-Twilio-Signature")
        if not given:
            raise InvalidCallback("no X-Twilio-Signature header")
        params = self._params(request)
        if not any(hmac.compare_digest(signature(token, url, params).encode(), given.strip().encode())
                   for url in _url_variants(request.url)):
            raise InvalidCallback("X-Twilio-Signature does not match")
        if "bodySHA256" in request.query:  # a JSON webhook: the URL (signed) carries the body's hash
            digest = hashlib.sha256(request.body).hexdigest()
            if not hmac.compare_digest(digest.encode(), str(request.query["bodySHA256"]).encode()):
                raise InvalidCallback("the body does not match bodySHA256")
        values = dict(params)
        sid = values.get("MessageSid") or values.get("SmsSid")
        status = STATUS_MAP.get((values.get("MessageStatus") or values.get("SmsStatus") or "").lower())
        if not sid or status is None:
            return []
        error = None
        if status == "failed":
            code = values.get("ErrorCode") or ""
            error = f"Twilio error {code}: {ERROR_CODES.get(code, 'not delivered')}" if code else \
                f"Twilio reported the message {values.get('MessageStatus') or values.get('SmsStatus')}"
        return [StatusUpdate(provider_message_id=sid, status=status, error=error)]

    @staticmethod
    def _params(request: CallbackRequest) -> list[tuple[str, str]]:
        """The POST parameters as sent (a repeated name keeps every value): from the raw body
        when it is a form, else the parsed form."""
        content_type = (_header(request.headers, "Content-Type") or "").lower()
        if "application/json" in content_type:
            return []  # signed over the URL alone (which carries bodySHA256)
        if request.body:
            try:
                return parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            except (UnicodeDecodeError, ValueError):
                raise InvalidCallback("the body is not a form") from None
        return [(k, str(v)) for k, v in request.form.items()]


def _segments(data: dict[str, Any]) -> int | None:
    try:
        value = int(data.get("num_segments"))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None  # a Messaging Service answers 0 until a sender is picked
