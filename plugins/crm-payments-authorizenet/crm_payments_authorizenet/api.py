"""Authorize.Net's JSON API: one POST address, the request named by its root key.

``POST {api_url}`` with ``{"<name>Request": {"merchantAuthentication": {"name": <API Login ID>,
"transactionKey": <Transaction Key>}, ...}}``. The API is its XML schema in JSON clothing: the
keys of an object must come in the schema's order (``merchantAuthentication`` first, then
``refId``, ...), which the request builders here respect. The answer is JSON preceded by a UTF-8
byte order mark, and an HTTP 200 is no success: ``messages.resultCode`` is ``"Ok"`` or
``"Error"``, with ``messages.message[0]`` giving a code (``E00007``) and a text.

Amounts are read as Decimal (never float). Failures become :class:`TemporaryFailure` (no answer
in time, HTTP 429/5xx, Authorize.Net's "try again" codes) or :class:`PermanentFailure`
(credentials, a refused request), with Authorize.Net's text and never a secret.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from crmcore.messaging.http import call, scrub
from crmcore.payments.gateways import GatewayError, PermanentFailure, TemporaryFailure

WHAT = "Authorize.Net"
#: "an error occurred during processing, try again", "server too busy", "in maintenance"
TEMPORARY_CODES = frozenset({"E00001", "E00053", "E00104"})
#: what an admin should do about a code
HINTS = {
    "E00007": "check api_login_id and transaction_key, and the environment (sandbox credentials do not "
              "work in production, nor the reverse)",
    "E00008": "the API user or the account is inactive: check it in the Merchant Interface",
    "E00011": "enable the Transaction Details API in the Merchant Interface (Account > Settings > "
              "Transaction Details API)",
}


class Budget:
    """The time one gateway call may take, shared by its API requests: each request gets at most
    half of what is left (``call`` may take about twice its timeout), so the whole stays bounded."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def timeout(self, wanted: float) -> float:
        left = self.deadline - time.monotonic()
        if left < 0.2:
            raise TemporaryFailure(f"{WHAT}: no time left for another request (try again)")
        return min(wanted, left / 2)


def secrets_of(config: Mapping[str, Any]) -> list[str | None]:
    return [config.get("transaction_key"), config.get("signature_key")]


def post(config: Mapping[str, Any], name: str, body: Mapping[str, Any], budget: Budget) -> dict[str, Any]:
    """Send ``{name}Request`` (``body`` after ``merchantAuthentication``); the decoded answer,
    whatever its resultCode. Transport failures and unreadable answers raise."""
    request = {f"{name}Request": {
        "merchantAuthentication": {"name": config["api_login_id"], "transactionKey": config["transaction_key"]},
        **body,
    }}
    answer = call("POST", config["api_url"], timeout=budget.timeout(config["timeout"]), what=WHAT,
                  data=json.dumps(request).encode("utf-8"),
                  headers={"Content-Type": "application/json", "Accept": "application/json"})
    if answer.status == 429 or answer.status >= 500:
        raise TemporaryFailure(f"{WHAT} is unavailable (HTTP {answer.status})")
    if answer.status != 200:
        raise PermanentFailure(f"{WHAT} answered HTTP {answer.status}: check the API address (api_url, environment)")
    data = decode(answer.body)
    if not isinstance(data, dict) or not isinstance(data.get("messages"), dict):
        raise TemporaryFailure(f"{WHAT}'s answer to {name} cannot be read")
    return data


def decode(body: bytes) -> Any:
    """JSON after the optional byte order mark, numbers with a fraction as Decimal; None if unreadable."""
    try:
        return json.loads(body.decode("utf-8-sig"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def ok(data: Mapping[str, Any]) -> bool:
    return data.get("messages", {}).get("resultCode") == "Ok"


def first_message(data: Mapping[str, Any]) -> tuple[str, str]:
    """(code, text) of the answer's first message ("" when absent)."""
    messages = data.get("messages", {}).get("message")
    first = messages[0] if isinstance(messages, list) and messages else messages
    if not isinstance(first, dict):
        return "", ""
    return str(first.get("code") or "")[:20], str(first.get("text") or "")[:300]


def failure(data: Mapping[str, Any], action: str, config: Mapping[str, Any]) -> GatewayError:
    """The exception for an answer whose resultCode is Error."""
    code, text = first_message(data)
    message = f"{WHAT} refused to {action}: {code or 'error'}" + (f" {text}" if text else "")
    if code in HINTS:
        message += f" ({HINTS[code]})"
    message = scrub(message, secrets_of(config))
    return TemporaryFailure(message) if code in TEMPORARY_CODES else PermanentFailure(message)


def checked(config: Mapping[str, Any], name: str, body: Mapping[str, Any], budget: Budget,
            action: str) -> dict[str, Any]:
    """:func:`post`, raising on a resultCode of Error."""
    data = post(config, name, body, budget)
    if not ok(data):
        raise failure(data, action, config)
    return data
