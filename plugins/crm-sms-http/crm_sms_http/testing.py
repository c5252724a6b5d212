"""A local SMS gateway of the kind crm-sms-http talks to, for tests (ours and the core's chaos test).

It takes ``GET`` or ``POST`` (form or JSON) on ``path``, checks the authentication it was
given, requires the recipient and text fields, and answers ``200`` with
``{"messages": [{"id": ..., "status": "accepted"}]}`` (or ``OK: <id>`` as text). With an
``idempotency_field`` it behaves like a gateway that deduplicates: a repeated key gets the first
answer again and reaches nobody. Everything that "reached a phone" is in :attr:`delivered`, so
a test can count duplicates. Tests can script the next answers (``script(429, 500)``), make it
hang (``hang = True``) or slow (``delay``).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from crmcore.testing import HttpAnswer, HttpRequest, LocalHTTPServer

NUMBER = re.compile(r"\+?[1-9][0-9]{6,14}")


@dataclass(frozen=True)
class Delivered:
    """One SMS that reached a phone."""

    id: str
    to: str
    text: str
    sender: str | None
    key: str | None
    query: dict[str, str]


@dataclass
class FakeGateway(LocalHTTPServer):
    path: str = "/api/send"
    #: None, ("basic", user, password), ("bearer", token) or ("header", name, value)
    auth: tuple[str, ...] | None = None
    to_field: str = "to"
    text_field: str = "text"
    from_field: str = "from"
    idempotency_field: str | None = None
    #: "json": {"messages": [{"id": ...}]}; "text": "OK: <id>"
    answer: str = "json"
    #: seconds between accepting an SMS and answering (the window in which a client that dies
    #: has sent it without knowing: chaos tests widen it)
    delay: float = 0.0
    hang: bool = False
    delivered: list[Delivered] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    duplicates_dropped: int = 0
    _keys: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- control (start, stop, script, hang, release: crmcore.testing.LocalHTTPServer) ----

    @property
    def url(self) -> str:
        """The send endpoint: the server's address and :attr:`path`."""
        return super().url + self.path

    def copies(self, by: str = "ref") -> Counter[str]:
        """How many times each message reached a phone, by a query parameter the URL template
        carries (``...&ref={message_id}``)."""
        with self._lock:
            return Counter(d.query.get(by, "") for d in self.delivered)

    def handle(self, request: HttpRequest) -> HttpAnswer | None:
        status, content_type, body = self._handle(request.method, request.target, dict(request.headers), request.body)
        return None if status == 0 else HttpAnswer(status, body.encode(), content_type)

    # -- the gateway ---------------------------------------------------------------------

    def _handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, str, str]:
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        lower = {k.lower(): v for k, v in headers.items()}
        fields: dict[str, Any] = dict(query)
        content_type = lower.get("content-type", "")
        if method == "POST":
            if "json" in content_type:
                try:
                    loaded = json.loads(raw.decode())
                except ValueError:
                    return 400, "application/json", json.dumps({"error": "body is not JSON"})
                if not isinstance(loaded, dict):
                    return 400, "application/json", json.dumps({"error": "body is not an object"})
                fields.update(loaded)
            else:
                fields.update(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
        with self._lock:
            self.requests.append({"method": method, "path": parts.path, "query": query, "fields": fields,
                                  "headers": lower, "content_type": content_type})
        scripted = self.next_scripted()
        if self.hang:
            self.hold()
            return 0, "", ""
        if parts.path != self.path:
            return 404, "application/json", json.dumps({"error": "no such endpoint"})
        if not self._authorized(lower) or scripted in (401, 403):
            return scripted or 401, "application/json", json.dumps({"error": "unauthorized"})
        if scripted is not None:
            return scripted, "application/json", json.dumps({"error": f"scripted {scripted}"})
        to = str(fields.get(self.to_field, ""))
        text = str(fields.get(self.text_field, ""))
        if not NUMBER.fullmatch(to):
            return 400, "application/json", json.dumps({"error": f"invalid number {to!r}"})
        if not text:
            return 400, "application/json", json.dumps({"error": "empty text"})
        key = str(fields[self.idempotency_field]) if self.idempotency_field and fields.get(self.idempotency_field) else None
        with self._lock:
            if key is not None and key in self._keys:
                self.duplicates_dropped += 1
                ident = self._keys[key]
            else:
                ident = uuid.uuid4().hex
                if key is not None:
                    self._keys[key] = ident
                self.delivered.append(Delivered(ident, to, text, fields.get(self.from_field), key, query))
        if self.delay:
            time.sleep(self.delay)  # accepted, answering slowly: a client dying now has sent it
        if self.answer == "text":
            return 200, "text/plain", f"OK: {ident}"
        return 200, "application/json", json.dumps({"messages": [{"id": ident, "status": "accepted", "to": to}]})

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.auth is None:
            return True
        kind = self.auth[0]
        if kind == "basic":
            expected = "Basic " + base64.b64encode(f"{self.auth[1]}:{self.auth[2]}".encode()).decode()
            return headers.get("authorization") == expected
        if kind == "bearer":
            return headers.get("authorization") == f"Bearer {self.auth[1]}"
        if kind == "header":
            return headers.get(self.auth[1].lower()) == self.auth[2]
        return False
