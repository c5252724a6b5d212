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
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a killed worker, a timeout) is not an error worth printing."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


@dataclass
class FakeGateway:
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
    _scripted: list[int] = field(default_factory=list)
    _keys: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    # -- control -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    def script(self, *statuses: int) -> None:
        with self._lock:
            self._scripted.extend(statuses)

    def release(self) -> None:
        self.hang = False
        self._released.set()
        self._released.clear()

    def copies(self, by: str = "ref") -> Counter[str]:
        """How many times each message reached a phone, by a query parameter the URL template
        carries (``...&ref={message_id}``)."""
        with self._lock:
            return Counter(d.query.get(by, "") for d in self.delivered)

    def start(self) -> FakeGateway:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, content_type, body = gateway._handle(self.command, self.path, dict(self.headers.items()), raw)
                if status == 0:
                    self.close_connection = True
                    return
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve  # noqa: N815
            do_POST = _serve  # noqa: N815

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeGateway:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

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
            scripted = self._scripted.pop(0) if self._scripted else None
        if self.hang:
            self._released.wait(timeout=30)
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
