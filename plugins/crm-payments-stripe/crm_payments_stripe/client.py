"""A ``stripe.StripeClient`` per call, and Stripe's errors as the gateway contract's failures.

One client per call, never the module-wide ``stripe.api_key``: businesses with different keys
share the process. Requests go through :func:`crmcore.messaging.http.call`, which bounds the
whole answer by a deadline (``requests`` alone bounds each socket read) and turns connection
problems into :class:`TemporaryFailure` messages that quote no URL or header. ``stripe`` itself
does not retry (``max_network_retries=0``): the owning plugin retries with the same idempotency
key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import stripe
from requests.structures import CaseInsensitiveDict

from crmcore.messaging.http import call, scrub
from crmcore.messaging.providers import PermanentFailure, TemporaryFailure

#: anything that looks like a Stripe key or webhook secret, masked or not, in a provider's text
KEY_LIKE = re.compile(r"\b(?:sk|rk|pk)_(?:test|live)_[0-9A-Za-z*]+|\bwhsec_[0-9A-Za-z+/=_*-]+")

T = TypeVar("T")


class BoundedHttpClient(stripe.HTTPClient):
    """stripe's HTTP client interface over :func:`crmcore.messaging.http.call`."""

    name = "crmcore"

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str, url: str, headers: Mapping[str, str] | None,
                post_data: Any = None) -> tuple[bytes, int, Mapping[str, str]]:
        answer = call(method.upper(), url, timeout=self.timeout, what="Stripe", headers=dict(headers or {}),
                      data=post_data)
        return answer.body, answer.status, CaseInsensitiveDict(answer.headers)

    def close(self) -> None:
        """Nothing stays open: every request closes its connection."""


def new_client(config: Mapping[str, Any]) -> stripe.StripeClient:
    return stripe.StripeClient(config["secret_key"], base_addresses={"api": config["api_base"]},
                               max_network_retries=0, http_client=BoundedHttpClient(config["timeout"]))


def clean(text: str, config: Mapping[str, Any]) -> str:
    """Provider text fit for an admin: no key or secret, whole or masked, and not too long."""
    text = scrub(text, [config.get("secret_key"), config.get("webhook_secret")])
    return KEY_LIKE.sub("[key]", text)[:400]


def calling(what: str, config: Mapping[str, Any], action: Callable[[], T]) -> T:
    """Run ``action`` (one Stripe call); its errors become Temporary- or PermanentFailure
    saying ``what`` failed, without secrets."""
    try:
        return action()
    except stripe.StripeError as exc:
        error = failure(what, exc, config)
    # raised outside the except block: stripe's error holds the request's headers and body
    raise error


def failure(what: str, exc: stripe.StripeError, config: Mapping[str, Any]) -> TemporaryFailure | PermanentFailure:
    status = exc.http_status
    detail = _detail(exc, config)
    if isinstance(exc, stripe.APIConnectionError):
        return TemporaryFailure(f"{what}: could not reach Stripe")
    if isinstance(exc, stripe.AuthenticationError) or status == 401:
        return PermanentFailure(f"{what}: Stripe refused the secret key (HTTP 401): check secret_key in the "
                                f"plugin's settings{detail}")
    if isinstance(exc, stripe.PermissionError) or status == 403:
        return PermanentFailure(f"{what}: the key may not do this (HTTP 403): a restricted key needs write "
                                f"access to Checkout Sessions and Refunds{detail}")
    if isinstance(exc, stripe.IdempotencyError):
        return PermanentFailure(f"{what}: Stripe saw this idempotency key with other parameters (a "
                                f"different amount or payer?); start a new payment attempt{detail}")
    if status is None or status == 429 or status >= 500:
        shown = f"HTTP {status}" if status is not None else "no readable answer"
        return TemporaryFailure(f"{what}: Stripe is unavailable ({shown}){detail}")
    if 300 <= status < 400:
        return PermanentFailure(f"{what}: Stripe answered with a redirect (HTTP {status}): check api_base")
    return PermanentFailure(f"{what}: Stripe refused the request (HTTP {status}){detail}")


def _detail(exc: stripe.StripeError, config: Mapping[str, Any]) -> str:
    error = exc.error
    parts: list[str] = []
    code = getattr(error, "code", None) if error is not None else None
    param = getattr(error, "param", None) if error is not None else None
    message = getattr(error, "message", None) if error is not None else None
    if code:
        parts.append(f"error {code}")
    if param:
        parts.append(f"parameter {param}")
    text = ", ".join(str(p) for p in parts)
    if message:
        text = f"{text}: {message}" if text else str(message)
    return f" - {clean(text, config)}" if text else ""
