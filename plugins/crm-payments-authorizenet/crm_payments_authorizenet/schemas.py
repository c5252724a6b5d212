"""Settings of the Authorize.Net gateway, per business.

Authorize.Net authenticates API calls with the API Login ID and the Transaction Key (in the
request body, ``merchantAuthentication``), and signs webhooks with the Signature Key. All three
come from the Merchant Interface: Account > Settings > Security Settings > General Security
Settings > API Credentials and Keys. Sandbox and production are separate accounts with separate
credentials and separate addresses; ``api_url`` / ``hosted_url`` override the addresses (tests
point them at a local stand-in).
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, pre_load, validate

ENDPOINTS = {
    "sandbox": ("https://apitest.authorize.net/xml/v1/request.api", "https://test.authorize.net/payment/payment"),
    "production": ("https://api.authorize.net/xml/v1/request.api", "https://accept.authorize.net/payment/payment"),
}

# anchored at both ends: marshmallow's Regexp validator only uses ``match``
LOGIN_ID = re.compile(r"[A-Za-z0-9]{1,25}\Z")
TRANSACTION_KEY = re.compile(r"[A-Za-z0-9]{16}\Z")
SIGNATURE_KEY = re.compile(r"[0-9A-Fa-f]{128}\Z")
PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{0,5}\Z")

SECRETS = frozenset({"transaction_key", "signature_key"})


def _url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("an http(s) address such as https://apitest.authorize.net/xml/v1/request.api")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValidationError("only scheme, host, port and path: no credentials, query or fragment")


class AuthorizeNetSettings(Schema):
    api_login_id = fields.String(
        required=True, validate=validate.Regexp(LOGIN_ID, error="not an API Login ID (1 to 25 letters and digits)"),
        metadata={"label": "API Login ID",
                  "description": "Merchant Interface: Account > Settings > API Credentials and Keys."},
    )
    transaction_key = fields.String(
        required=True,
        validate=validate.Regexp(TRANSACTION_KEY, error="not a Transaction Key (16 letters and digits)"),
        metadata={"label": "Transaction Key", "secret": True,
                  "description": "Created on the same page as the API Login ID (a new one replaces the old)."},
    )
    signature_key = fields.String(
        required=True,
        validate=validate.Regexp(SIGNATURE_KEY, error="not a Signature Key (128 hexadecimal characters)"),
        metadata={"label": "Signature Key", "secret": True,
                  "description": "Signs webhooks: paste it exactly as the Merchant Interface shows it."},
    )
    environment = fields.String(
        load_default="sandbox", validate=validate.OneOf(["sandbox", "production"], error="sandbox or production"),
        metadata={"label": "Environment", "description": "sandbox (test accounts) or production."},
    )
    api_url = fields.String(
        load_default=None, allow_none=True, validate=[validate.Length(max=300), _url],
        metadata={"label": "API address (optional)", "description": "Leave empty: the environment's address."},
    )
    hosted_url = fields.String(
        load_default=None, allow_none=True, validate=[validate.Length(max=300), _url],
        metadata={"label": "Payment form address (optional)",
                  "description": "Leave empty: the environment's Accept Hosted address."},
    )
    reference_prefix = fields.String(
        load_default="A",
        validate=validate.Regexp(PREFIX, error="1 to 6 letters and digits, starting with a letter"),
        metadata={"label": "Invoice number prefix",
                  "description": "Starts the invoice number sent with each payment attempt (A123). Give "
                                 "each installation sharing one Authorize.Net account its own prefix."},
    )
    timeout = fields.Float(
        load_default=10.0, validate=validate.Range(min=0.1, max=10.0),
        metadata={"label": "Timeout (seconds)"},
    )

    @pre_load
    def _strip(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict):
            return {k: (v.strip() or None) if isinstance(v, str) else v for k, v in data.items()}
        return data


def load_settings(settings: Any) -> dict[str, Any]:
    """Stored settings as the gateway uses them (defaults filled, validated again: a ``$env:``
    secret is only known now); the error names fields only, never a value. Parsed once per
    distinct settings (a copy is returned)."""
    items = dict(settings or {})
    try:
        return dict(_cached(tuple(sorted(items.items()))))
    except TypeError:  # a value that is not hashable (not what the schema stores): no cache
        return _load(items)


@functools.lru_cache(maxsize=128)
def _cached(key: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return _load(dict(key))


def _load(items: dict[str, Any]) -> dict[str, Any]:
    try:
        config = AuthorizeNetSettings().load(items)
    except ValidationError as exc:
        names = ", ".join(sorted(exc.messages)) if isinstance(exc.messages, dict) else "settings"
        message = f"the Authorize.Net settings are incomplete or invalid ({names}): check them in the admin"
    else:
        api, hosted = ENDPOINTS[config["environment"]]
        config["api_url"] = config.get("api_url") or api
        config["hosted_url"] = config.get("hosted_url") or hosted
        return config
    # raised outside the except block: the marshmallow error holds the raw input, secrets included
    raise ValueError(message)
