"""Settings of the Stripe gateway, per business.

Stripe authenticates API calls with a secret key (``sk_test_...`` / ``sk_live_...``) or a
restricted key (``rk_...``) that may only create Checkout Sessions and refunds; the mode (test or
live) is part of the key. Each webhook endpoint has its own signing secret (``whsec_...``),
shown in the Dashboard beside the endpoint.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, pre_load, validate

DEFAULT_API_BASE = "https://api.stripe.com"
# anchored at both ends: marshmallow's Regexp validator only uses ``match``
SECRET_KEY = re.compile(r"(?:sk|rk)_(?:test|live)_[0-9A-Za-z]{10,247}\Z")
WEBHOOK_SECRET = re.compile(r"whsec_[0-9A-Za-z+/=_-]{10,250}\Z")
#: a payment method type as Stripe names them (card, ideal, sepa_debit, us_bank_account, ...)
METHOD_TYPE = re.compile(r"[a-z][a-z0-9_]{1,39}\Z")
#: Stripe's rules for a statement descriptor (suffix): Latin letters, digits and punctuation,
#: at least one letter, none of < > \ ' " *
DESCRIPTOR = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 .,:;!?&@#%+/()_-]{1,22}\Z")
MAX_METHOD_TYPES = 20


def _base_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("an http(s) address such as https://api.stripe.com")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValidationError("only scheme, host, port and path: no credentials, query or fragment")


class MethodTypes(fields.Field):
    """A list of payment method types, typed as a list or as ``card, ideal`` (a form, the CLI)."""

    default_error_messages = {
        "invalid": "a list of Stripe payment method types, such as card, ideal, sepa_debit",
        "type": "'{value}' is not a Stripe payment method type (lower case letters, digits and _)",
        "many": f"at most {MAX_METHOD_TYPES} payment method types",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str] | None:
        if isinstance(value, str):
            items: list[Any] = [part for part in value.replace(";", ",").split(",")]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise self.make_error("invalid")
        out: list[str] = []
        for item in items:
            if not isinstance(item, str):
                raise self.make_error("invalid")
            item = item.strip().lower()
            if not item:
                continue
            if not METHOD_TYPE.match(item):
                raise self.make_error("type", value=item[:40])
            if item not in out:
                out.append(item)
        if len(out) > MAX_METHOD_TYPES:
            raise self.make_error("many")
        return out or None

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> list[str] | None:
        return list(value) if value else None


class StripeSettings(Schema):
    secret_key = fields.String(
        required=True,
        validate=validate.Regexp(SECRET_KEY, error="not a Stripe secret key (sk_test_..., sk_live_..., "
                                                   "or a restricted key rk_test_..., rk_live_...)"),
        metadata={"label": "Secret key", "secret": True,
                  "description": "Dashboard > Developers > API keys. sk_test_... takes test payments only."},
    )
    webhook_secret = fields.String(
        required=True,
        validate=validate.Regexp(WEBHOOK_SECRET, error="not a webhook signing secret (whsec_...)"),
        metadata={"label": "Webhook signing secret", "secret": True,
                  "description": "whsec_..., shown beside the webhook endpoint in the Dashboard."},
    )
    statement_descriptor_suffix = fields.String(
        load_default=None, allow_none=True,
        validate=validate.Regexp(DESCRIPTOR, error="up to 22 Latin letters, digits or punctuation, at least "
                                                   "one letter, none of < > \\ ' \" *"),
        metadata={"label": "Statement descriptor suffix (optional)",
                  "description": "Added to your account's prefix on the payer's card statement."},
    )
    payment_method_types = MethodTypes(
        load_default=None, allow_none=True,
        metadata={"label": "Payment methods (optional)",
                  "description": "e.g. card, ideal, bancontact; empty: those enabled in the Dashboard."},
    )
    api_base = fields.String(
        load_default=DEFAULT_API_BASE, validate=[validate.Length(max=200), _base_url],
        metadata={"label": "API address", "description": "Leave as is; tests point it at a local server."},
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


SECRETS = frozenset({"secret_key", "webhook_secret"})


def load_settings(settings: Any) -> dict[str, Any]:
    """Stored settings as the gateway uses them (defaults filled, validated again); the error
    names fields only, never a value."""
    try:
        loaded = StripeSettings().load(dict(settings or {}))
    except ValidationError as exc:
        names = ", ".join(sorted(exc.messages)) if isinstance(exc.messages, dict) else "settings"
        error = ValueError(f"the Stripe settings are incomplete or invalid ({names}): check them in the admin")
    else:
        loaded["api_base"] = loaded["api_base"].rstrip("/")
        return loaded
    # raised outside the except block: the marshmallow error holds the secrets as typed
    raise error


def is_test_mode(secret_key: str) -> bool:
    """Stripe's test mode is chosen by the key: test keys move no real money."""
    return secret_key[3:8] == "test_"
