"""What the transport's tests need besides crmcore.testing's real SMTP servers
(``make_smtp_server``) and self-signed certificate (``tls_certificate``): the login the servers
accept, and ports that never answer or refuse. Nothing is patched: the transport talks SMTP."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

USER, PASSWORD = "mailer@acme.example", "s3cret-smtp-pa55word"


@pytest.fixture
def login() -> tuple[str, str]:
    """The user name and password the test servers accept (``make_smtp_server(login=login)``)."""
    return USER, PASSWORD


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (no SMTP greeting)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    listener.close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port
