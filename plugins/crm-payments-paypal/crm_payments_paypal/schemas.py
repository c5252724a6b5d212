"""Settings of the PayPal gateway, per business.

PayPal's REST API authenticates with an app's client ID and secret (OAuth2 client credentials);
webhooks are verified against the ID PayPal gave the webhook subscription, which is part of the
signed message. ``api_base`` picks live or sandbox (tests point it at a local server).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, pre_load, validate

LIVE_API_BASE = "https://api-m.paypal.com"
SANDBOX_API_BASE = "https://api-m.sandbox.paypal.com"
#: PayPal's client IDs and secrets are base64url-like strings of about 80 characters
CREDENTIAL = re.compile(r"[A-Za-z0-9_\-]{8,128}\Z")
#: a webhook ID such as 8PT597110X687430LU (the simulator's mock events use "WEBHOOK_ID")
WEBHOOK_ID = re.compile(r"[A-Za-z0-9_]{1,50}\Z")
SECRETS = frozenset({"client_secret"})


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _api_base(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"an https address such as {LIVE_API_BASE} (sandbox: {SANDBOX_API_BASE})")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValidationError("only scheme, host and port: no credentials, path, query or fragment")
    if parts.scheme != "https" and not _loopback(parts.hostname):
        raise ValidationError("must be https (plain http only for a local test server)")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValidationError("the port is not a number between 0 and 65535") from None


class PayPalSettings(Schema):
    client_id = fields.String(
        required=True,
        validate=validate.Regexp(CREDENTIAL, error="not a PayPal client ID (letters, digits, - and _, "
                                                   "as shown on the app's page of the PayPal developer dashboard)"),
        metadata={"label": "Client ID", "description": "Of the REST app, on developer.paypal.com > Apps & Credentials."},
    )
    client_secret = fields.String(
        required=True,
        validate=validate.Regexp(CREDENTIAL, error="not a PayPal client secret"),
        metadata={"label": "Client secret", "secret": True},
    )
    webhook_id = fields.String(
        required=True,
        validate=validate.Regexp(WEBHOOK_ID, error="not a PayPal webhook ID (letters and digits, such as "
                                                   "8PT597110X687430LU)"),
        metadata={"label": "Webhook ID",
                  "description": "Shown once the webhook URL is added to the app; webhooks are verified with it."},
    )
    api_base = fields.String(
        load_default=LIVE_API_BASE, validate=[validate.Length(max=200), _api_base],
        metadata={"label": "API address",
                  "description": f"{LIVE_API_BASE} (live) or {SANDBOX_API_BASE} (sandbox)."},
    )
    brand_name = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=1, max=127),
        metadata={"label": "Brand name (optional)", "description": "Shown to the payer on PayPal's pages."},
    )
    timeout = fields.Float(
        load_default=10.0, validate=validate.Range(min=0.1, max=10.0),
        metadata={"label": "Timeout (seconds)", "description": "For each request to PayPal."},
    )

    @pre_load
    def _strip(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict):
            out = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in data.items()}
            if isinstance(out.get("api_base"), str):
                out["api_base"] = out["api_base"].rstrip("/")
            if out.get("api_base") is None:
                out.pop("api_base", None)
            return out
        return data


def load_settings(settings: Any) -> dict[str, Any]:
    """Stored settings as the gateway uses them (defaults filled, validated again); the error
    names fields only, never a value. Parsed once per distinct settings (a copy is returned)."""
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
        return PayPalSettings().load(items)
    except ValidationError as exc:
        names = ", ".join(sorted(exc.messages)) if isinstance(exc.messages, dict) else "settings"
        raise ValueError(f"the PayPal settings are incomplete or invalid ({names}): check them in the admin") from None
