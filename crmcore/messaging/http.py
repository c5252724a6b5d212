"""One HTTP call with a bounded duration and errors that carry no secret: for provider plugins.

Part of the public API for transport and provider plugins (docs/plugins.md): the SMS plugins
use it, and any HTTP-speaking provider should, rather than keep its own copy.

``requests`` applies its read timeout to each socket read, not to the whole answer, so the body
is read in chunks against a deadline as well: a server that trickles bytes cannot hold a worker
longer than about twice ``timeout``. Connection problems become :class:`TemporaryFailure` with a
message written here (the library's messages may quote the URL).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from crmcore.messaging.providers import TemporaryFailure

MAX_ANSWER_BYTES = 256 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None


def call(method: str, url: str, *, timeout: float, what: str, **kwargs: Any) -> Answer:
    """Send one request; raise TemporaryFailure (naming ``what``) when no full answer came in time."""
    deadline = time.monotonic() + timeout
    try:
        response = requests.request(method, url, timeout=(min(timeout, 5.0), timeout), stream=True,
                                    allow_redirects=False, **kwargs)
    except requests.Timeout:
        raise TemporaryFailure(f"{what} did not answer within {timeout:g} s") from None
    except requests.ConnectionError:
        raise TemporaryFailure(f"could not connect to {what}") from None
    except requests.RequestException as exc:
        raise TemporaryFailure(f"the request to {what} failed ({type(exc).__name__})") from None
    try:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(8192):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                break
            if time.monotonic() > deadline:
                raise TemporaryFailure(f"{what} did not finish its answer within {timeout:g} s")
    except requests.RequestException:
        raise TemporaryFailure(f"{what} did not finish its answer within {timeout:g} s") from None
    finally:
        response.close()
    return Answer(response.status_code, dict(response.headers), b"".join(chunks)[:MAX_ANSWER_BYTES])


def scrub(text: str, secrets: list[str | None]) -> str:
    """``text`` with any secret (of 4 characters or more) replaced: provider text shown to admins."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[secret]")
    return text
