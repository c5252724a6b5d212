"""Settings of the Twilio provider, per business.

Twilio authenticates REST calls with HTTP basic auth: the Account SID and its Auth Token, or an
API key (SID + secret, which can be revoked alone). Status callbacks are signed with the Auth
Token only, so the token is needed for delivery reports even when an API key sends.
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

DEFAULT_API_BASE_URL = "https://api.twilio.com"
# anchored at both ends: marshmallow's Regexp validator only uses ``match``
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}\Z")
API_KEY_SID = re.compile(r"SK[0-9a-fA-F]{32}\Z")
SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}\Z")
#: a phone number in E.164, or an alphanumeric sender ID (1-11 letters, digits, spaces; one letter)
SENDER = re.compile(r"(?:\+[1-9][0-9]{6,14}|(?=[A-Za-z0-9 ]*[A-Za-z])[A-Za-z0-9 ]{1,11})\Z")


def _sid(pattern: re.Pattern[str], what: str, prefix: str) -> validate.Validator:
    return validate.Regexp(pattern, error=f"not a {what} (\"{prefix}\" followed by 32 hexadecimal digits)")


def _base_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("an http(s) address such as https://api.twilio.com")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValidationError("only scheme, host, port and path: no credentials, query or fragment")


class TwilioSettings(Schema):
    account_sid = fields.String(
        required=True, validate=_sid(ACCOUNT_SID, "Twilio Account SID", "AC"),
        metadata={"label": "Account SID", "description": "AC..., on the Twilio console's dashboard."},
    )
    auth_token = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=16, max=128),
        metadata={"label": "Auth token", "secret": True,
                  "description": "Signs status callbacks; also authenticates sends when no API key is set."},
    )
    api_key_sid = fields.String(
        load_default=None, allow_none=True, validate=_sid(API_KEY_SID, "Twilio API key SID", "SK"),
        metadata={"label": "API key SID (optional)", "description": "SK...; sends with this key instead of the auth token."},
    )
    api_key_secret = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=16, max=128),
        metadata={"label": "API key secret", "secret": True},
    )
    from_number = fields.String(
        load_default=None, allow_none=True,
        validate=validate.Regexp(SENDER, error="a phone number in international form (+15017122661) "
                                               "or an alphanumeric sender ID of up to 11 characters"),
        metadata={"label": "From", "description": "A Twilio number (+1...) or alphanumeric sender ID."},
    )
    messaging_service_sid = fields.String(
        load_default=None, allow_none=True, validate=_sid(SERVICE_SID, "Messaging Service SID", "MG"),
        metadata={"label": "Messaging Service SID (optional)",
                  "description": "MG...; Twilio picks the sender from the service's pool (wins over From)."},
    )
    status_callbacks = fields.Boolean(
        load_default=True,
        metadata={"label": "Ask for delivery reports",
                  "description": "Needs the auth token and the installation's public_url."},
    )
    api_base_url = fields.String(
        load_default=DEFAULT_API_BASE_URL, validate=[validate.Length(max=200), _base_url],
        metadata={"label": "API address", "description": "Leave as is; tests point it at a local server."},
    )
    timeout = fields.Float(
        load_default=10.0, validate=validate.Range(min=0.1, max=10.0),
        metadata={"label": "Timeout (seconds)"},
    )

    @pre_load
    def _strip(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict):
            return {k: (v.strip() or None) if isinstance(v, str) and k not in SECRETS else v
                    for k, v in data.items()}
        return data

    @validates_schema
    def _complete(self, data: dict[str, Any], **kwargs: Any) -> None:
        # a secret left empty on a later save keeps its stored value: it is missing from ``data``
        # and named in ``partial``, and whether that stored value is set is unknown here, so no
        # rule fails on it (the provider checks the complete settings again at send time)
        partial = kwargs.get("partial")
        kept = set(partial) if isinstance(partial, tuple | list | set) else set()

        def present(name: str) -> bool:
            return bool(data.get(name)) or name in kept

        errors: dict[str, list[str]] = {}
        if not present("from_number") and not present("messaging_service_sid"):
            errors["from_number"] = ["give a From number (or sender ID) or a Messaging Service SID"]
        if "api_key_secret" not in kept and bool(data.get("api_key_sid")) != bool(data.get("api_key_secret")):
            missing = "api_key_secret" if data.get("api_key_sid") else "api_key_sid"
            errors[missing] = ["an API key needs both its SID and its secret"]
        if not present("auth_token") and not present("api_key_sid"):
            errors["auth_token"] = ["give the auth token (or an API key SID and secret)"]
        if errors:
            raise ValidationError(errors)


SECRETS = frozenset({"auth_token", "api_key_secret"})


def load_settings(settings: Any) -> dict[str, Any]:
    """Stored settings as the provider uses them (defaults filled, validated again); the error
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
        return TwilioSettings().load(items)
    except ValidationError as exc:
        fields_ = ", ".join(sorted(exc.messages)) if isinstance(exc.messages, dict) else "settings"
        raise ValueError(f"the Twilio settings are incomplete or invalid ({fields_}): check them in the admin") from None
