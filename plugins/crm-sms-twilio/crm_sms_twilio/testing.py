"""A local stand-in for Twilio's Messages API, for tests (ours and those of code built on this plugin).

It speaks the documented endpoint: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``,
HTTP basic auth with the Account SID + Auth Token or an API key SID + secret, form fields
``To``, ``From`` / ``MessagingServiceSid``, ``Body``, ``StatusCallback``; answers 201 with the
Message resource as JSON, or an error document (``code``, ``message``, ``more_info``,
``status``). It checks what it receives and records every request. Tests can script the next
answers (``script(429, 500)``), make it hang until released (``hang = True``), and build signed
status callbacks the way Twilio does (:func:`signed_callback`).
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from crm_sms_twilio.provider import signature
from crmcore.messaging.sms import sms_parts
from crmcore.testing import HttpAnswer, HttpRequest, LocalHTTPServer, parse_basic_auth

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
PATH = re.compile(r"/2010-04-01/Accounts/(?P<sid>AC[0-9a-fA-F]{32})/Messages\.json")


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    auth: tuple[str, str] | None
    form: dict[str, str]
    answered: int = 0
    sid: str | None = None


@dataclass
class FakeTwilio(LocalHTTPServer):
    """Start, stop, ``url``, ``script(400, 401, 429, 500, ...)``, ``hang`` and ``release()``
    are crmcore.testing.LocalHTTPServer's; the rest is Twilio's API."""

    account_sid: str
    auth_token: str
    api_keys: dict[str, str] = field(default_factory=dict)  # api key sid -> secret
    received: list[Received] = field(default_factory=list)
    #: while True, every request waits (until ``release()`` or shutdown) without answering
    hang: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sent(self) -> list[Received]:
        """Requests that were accepted (201)."""
        with self._lock:
            return [r for r in self.received if r.answered == 201]

    def handle(self, request: HttpRequest) -> HttpAnswer | None:
        if request.method != "POST":
            return HttpAnswer(405)
        status, body = self._handle(request.target, request.headers.get("authorization"), request.body,
                                    request.headers.get("content-type") or "")
        return None if status == 0 else HttpAnswer.json(status, body)  # 0: hung and released

    # -- the API -----------------------------------------------------------------------

    def _handle(self, path: str, authorization: str | None, raw: bytes, content_type: str) -> tuple[int, Any]:
        auth = parse_basic_auth(authorization)
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        record = Received(path=path, auth=auth, form=form)
        with self._lock:
            self.received.append(record)
        scripted = self.next_scripted()
        if self.hang:
            self.hold()
            record.answered = 0
            return 0, None
        status, body = self._answer(path, auth, form, content_type, scripted)
        record.answered = status
        record.sid = body.get("sid") if status == 201 else None
        return status, body

    def _answer(self, path: str, auth: tuple[str, str] | None, form: dict[str, str], content_type: str,
                scripted: int | None) -> tuple[int, dict[str, Any]]:
        match = PATH.fullmatch(path)
        if match is None:
            return _error(404, 20404, "The requested resource was not found")
        if not self._authenticated(match["sid"], auth) or scripted == 401:
            return _error(401, 20003, "Authenticate")
        if scripted == 429:
            return _error(429, 20429, "Too Many Requests")
        if scripted is not None and scripted >= 500:
            return _error(scripted, 20500, "Internal Server Error")
        if "application/x-www-form-urlencoded" not in content_type:
            return _error(400, 20001, "Content-Type must be application/x-www-form-urlencoded")
        to = form.get("To", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not E164.fullmatch(to) or scripted == 400:
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' phone number is required.")
        body = form.get("Body", "")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        callback = form.get("StatusCallback")
        if callback is not None and not re.match(r"https?://", callback):
            return _error(400, 21609, "Invalid StatusCallback")
        sid = "SM" + uuid.uuid4().hex
        return 201, {
            "sid": sid, "account_sid": match["sid"], "to": to, "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"), "body": body,
            "status": "accepted" if form.get("MessagingServiceSid") else "queued",
            "num_segments": "0" if form.get("MessagingServiceSid") else str(sms_parts(body).segments),
            "direction": "outbound-api", "api_version": "2010-04-01", "price": None,
            "error_code": None, "error_message": None,
            "uri": f"/2010-04-01/Accounts/{match['sid']}/Messages/{sid}.json",
        }

    def _authenticated(self, account: str, auth: tuple[str, str] | None) -> bool:
        if auth is None or account != self.account_sid:
            return False
        user, password = auth
        if user == self.account_sid:
            return password == self.auth_token
        return self.api_keys.get(user) == password


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"code": code, "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


def signed_callback(auth_token: str, url: str, params: dict[str, str]) -> tuple[dict[str, str], bytes]:
    """Headers and body of a status callback as Twilio would POST it to ``url``."""
    body = urlencode(params).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": signature(auth_token, url, list(params.items())),
               "User-Agent": "TwilioProxy/1.1"}
    return headers, body


def status_params(account_sid: str, message_sid: str, status: str, error_code: str | None = None,
                  to: str = "+15558675310", sender: str = "+15017122661") -> dict[str, str]:
    """The form fields of a Twilio message status callback."""
    params = {"AccountSid": account_sid, "ApiVersion": "2010-04-01", "From": sender, "To": to,
              "MessageSid": message_sid, "SmsSid": message_sid, "MessageStatus": status, "SmsStatus": status}
    if error_code:
        params["ErrorCode"] = error_code
    return params
