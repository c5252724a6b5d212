"""Settings of the generic HTTP gateway, and their parsed form (:class:`GatewayConfig`).

Everything an admin types is a plain value (a string, a number, a choice, a checkbox), so the
core's generated settings form can edit it: structured settings are small text formats parsed
here (``extra_params`` as a query string, ``status_map`` as ``VALUE=status`` pairs,
``success_statuses`` as ``200-299`` or ``200, 202``). The provider loads the stored settings
through this schema again before each use, so it never acts on settings that do not validate.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

#: placeholders a URL template may use (values are URL-encoded where they are substituted)
PLACEHOLDERS = {
    "to": "the recipient (in the configured number format)",
    "to_e164": "the recipient in E.164 (+32470123456)",
    "to_digits": "the recipient's digits without + (32470123456)",
    "sender": "the sender (the message's, else the settings')",
    "text": "the message text",
    "message_id": "the core's message id",
    "idempotency_key": "the idempotency key (stable across retries)",
    "callback_url": "the status callback URL",
}
STATUSES = ("sent", "delivered", "failed", "ignore")
DEFAULT_STATUS_MAP = ("delivered=delivered, delivrd=delivered, sent=sent, accepted=sent, enroute=sent, "
                      "queued=sent, failed=failed, undelivered=failed, undeliv=failed, rejected=failed, "
                      "rejectd=failed, expired=failed")
SECRETS = frozenset({"password", "token", "header_value", "callback_secret"})
_FIELD_NAME = validate.Regexp(re.compile(r"[A-Za-z0-9_.\-\[\]]{1,64}\Z"),
                              error="letters, digits and _ . - [ ] only (at most 64)")
_PATH = re.compile(r"(?:\$\.?)?[^.\s]+(?:\.[^.\s]+)*\Z")


def template_fields(template: str) -> list[str]:
    """The placeholders of ``template``; ValueError naming what is wrong."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"unbalanced braces ({exc}); write {{{{ or }}}} for a literal brace") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name == "" or spec or conversion:
            raise ValueError("write placeholders as {name}, without format specs or conversions")
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}}: use {known}")
        names.append(name)
    return names


def _check_template(value: str) -> None:
    try:
        names = template_fields(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    sample = value.format(**{n: "x" for n in names})
    parts = urlsplit(sample)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("start with http:// or https:// and a host")
    if parts.username or parts.password:
        raise ValidationError("no credentials in the URL: use the auth settings (secrets are encrypted there)")
    if "{" in (urlsplit(value).netloc or ""):
        raise ValidationError("placeholders may not be used in the host")


def parse_pairs(text: str, what: str) -> dict[str, str]:
    """``a=x, b=y`` (commas, semicolons or new lines between pairs) as a dict, keys lower-cased."""
    out: dict[str, str] = {}
    for item in re.split(r"[,;\n]", text or ""):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{what}: write VALUE=status pairs separated by commas (got {item[:40]!r})")
        out[key.strip().lower()] = value.strip().lower()
    return out


def parse_status_map(text: str) -> dict[str, str]:
    mapping = parse_pairs(text, "status map")
    wrong = sorted({v for v in mapping.values() if v not in STATUSES})
    if wrong:
        raise ValueError(f"status map: {', '.join(wrong)} is not one of {', '.join(STATUSES)}")
    return mapping


def parse_statuses(text: str) -> tuple[tuple[int, int], ...]:
    """``200-299`` / ``200, 202`` as inclusive ranges."""
    out = []
    for item in re.split(r"[,\s]+", (text or "").strip()):
        if not item:
            continue
        match = re.fullmatch(r"([1-5][0-9]{2})(?:-([1-5][0-9]{2}))?", item)
        if match is None:
            raise ValueError(f"{item[:20]!r} is not an HTTP status or a range such as 200-299")
        low, high = int(match[1]), int(match[2] or match[1])
        if high < low:
            raise ValueError(f"{item} is an empty range")
        out.append((low, high))
    if not out:
        raise ValueError("give at least one status, e.g. 200-299")
    return tuple(out)


def parse_extra(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text or "", keep_blank_values=True, strict_parsing=bool(text))
    except ValueError:
        raise ValueError("extra fields: write them as a query string, e.g. route=premium&type=text") from None


def _compiles(value: str) -> None:
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise ValidationError(f"not a regular expression: {exc}") from None
    if pattern.groups > 1 and "id" not in pattern.groupindex:
        raise ValidationError("use one capture group (or name one (?P<id>...))")


def _parses(parser: Any) -> Any:
    def check(value: str) -> None:
        try:
            parser(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
    return check


def _optional(**kwargs: Any) -> dict[str, Any]:
    return {"load_default": None, "allow_none": True, **kwargs}


class HttpGatewaySettings(Schema):
    # -- sending -------------------------------------------------------------------------
    url_template = fields.String(
        required=True, validate=[validate.Length(max=1000), _check_template],
        metadata={"label": "URL", "description": "e.g. https://sms.example.com/api/send or "
                  "https://gw.example/send?to={to}&text={text}; placeholders: " + ", ".join(PLACEHOLDERS)},
    )
    method = fields.String(load_default="POST", validate=validate.OneOf(["POST", "GET"]),
                           metadata={"label": "HTTP method"})
    body_format = fields.String(
        load_default="form", validate=validate.OneOf(["form", "json"], labels=["form (urlencoded)", "JSON"]),
        metadata={"label": "Body format", "description": "POST only; a GET sends the fields in the query string."},
    )
    to_field = fields.String(load_default="to", validate=_FIELD_NAME, metadata={"label": "Recipient field"})
    from_field = fields.String(**_optional(validate=_FIELD_NAME),
                               metadata={"label": "Sender field", "description": "Empty: no sender is sent."})
    text_field = fields.String(load_default="text", validate=_FIELD_NAME, metadata={"label": "Text field"})
    idempotency_field = fields.String(
        **_optional(validate=_FIELD_NAME),
        metadata={"label": "Idempotency key field",
                  "description": "Only if the gateway drops a repeated key: retries then never send twice."},
    )
    callback_url_field = fields.String(
        **_optional(validate=_FIELD_NAME),
        metadata={"label": "Callback URL field", "description": "Where the gateway takes a delivery-report URL."},
    )
    number_format = fields.String(
        load_default="e164", validate=validate.OneOf(["e164", "digits"], labels=["+32470123456", "32470123456"]),
        metadata={"label": "Number format"},
    )
    sender = fields.String(**_optional(validate=validate.Length(max=32)), metadata={"label": "Default sender"})
    extra_params = fields.String(
        **_optional(validate=[validate.Length(max=1000), _parses(parse_extra)]),
        metadata={"label": "Extra fields", "description": "Sent with every message, as a query string: route=1&type=text"},
    )
    # -- authentication ------------------------------------------------------------------
    auth_type = fields.String(
        load_default="none", validate=validate.OneOf(["none", "basic", "bearer", "header"],
                                                     labels=["none", "HTTP basic", "bearer token", "custom header"]),
        metadata={"label": "Authentication"},
    )
    username = fields.String(**_optional(validate=validate.Length(max=200)), metadata={"label": "User name (basic)"})
    password = fields.String(**_optional(validate=validate.Length(max=500)),
                             metadata={"label": "Password (basic)", "secret": True})
    token = fields.String(**_optional(validate=validate.Length(max=2000)),
                          metadata={"label": "Bearer token", "secret": True})
    header_name = fields.String(
        **_optional(validate=validate.Regexp(re.compile(r"[A-Za-z0-9-]{1,64}\Z"), error="a header name (letters, digits, -)")),
        metadata={"label": "Header name (custom header)", "description": "e.g. X-API-Key"},
    )
    header_value = fields.String(**_optional(validate=validate.Length(max=2000)),
                                 metadata={"label": "Header value (custom header)", "secret": True})
    # -- the answer ----------------------------------------------------------------------
    success_statuses = fields.String(
        load_default="200-299", validate=[validate.Length(max=200), _parses(parse_statuses)],
        metadata={"label": "Success statuses", "description": "e.g. 200-299, or 200, 202"},
    )
    message_id_path = fields.String(
        **_optional(validate=validate.Regexp(_PATH, error="a dotted path such as data.id or messages.0.id")),
        metadata={"label": "Message id: JSON path", "description": "e.g. messages.0.id"},
    )
    message_id_regex = fields.String(
        **_optional(validate=[validate.Length(max=300), _compiles]),
        metadata={"label": "Message id: regular expression", "description": "for a text answer, e.g. ^OK:(\\w+)"},
    )
    error_regex = fields.String(
        **_optional(validate=[validate.Length(max=300), _compiles]),
        metadata={"label": "Error in a success answer", "description": "e.g. ^ERR: a matching answer is a refusal"},
    )
    timeout = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=10.0),
                           metadata={"label": "Timeout (seconds)"})
    # -- status callbacks ----------------------------------------------------------------
    callbacks = fields.Boolean(load_default=False, metadata={"label": "Read delivery reports"})
    callback_auth = fields.String(
        load_default="hmac",
        validate=validate.OneOf(["hmac", "url_token", "none"],
                                labels=["HMAC signature header", "secret token in the callback URL",
                                        "none (anyone knowing a message id could change its status)"]),
        metadata={"label": "Delivery report check"},
    )
    callback_secret = fields.String(**_optional(validate=validate.Length(min=16, max=500)),
                                    metadata={"label": "Shared secret", "secret": True})
    signature_header = fields.String(
        load_default="X-Signature", validate=validate.Regexp(re.compile(r"[A-Za-z0-9-]{1,64}\Z"), error="a header name"),
        metadata={"label": "Signature header"},
    )
    signature_algorithm = fields.String(load_default="sha256", validate=validate.OneOf(["sha256", "sha512", "sha1"]),
                                        metadata={"label": "Signature HMAC"})
    signature_encoding = fields.String(load_default="hex", validate=validate.OneOf(["hex", "base64"]),
                                       metadata={"label": "Signature encoding"})
    signature_covers = fields.String(
        load_default="body", validate=validate.OneOf(["body", "url_and_body"], labels=["the body", "the URL, then the body"]),
        metadata={"label": "Signature covers"},
    )
    callback_id_field = fields.String(load_default="id", validate=validate.Regexp(_PATH, error="a field name or dotted path"),
                                      metadata={"label": "Report: message id field"})
    callback_status_field = fields.String(load_default="status", validate=validate.Regexp(_PATH, error="a field name or dotted path"),
                                          metadata={"label": "Report: status field"})
    callback_error_field = fields.String(**_optional(validate=validate.Regexp(_PATH, error="a field name or dotted path")),
                                         metadata={"label": "Report: error field"})
    status_map = fields.String(
        load_default=DEFAULT_STATUS_MAP, validate=[validate.Length(max=2000), _parses(parse_status_map)],
        metadata={"label": "Report: status values",
                  "description": "gateway value=sent|delivered|failed|ignore, comma separated (case-insensitive)"},
    )

    @pre_load
    def _strip(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict):
            return {k: (v.strip() or None) if isinstance(v, str) and k not in SECRETS else v
                    for k, v in data.items()}
        return data

    @validates_schema
    def _complete(self, data: dict[str, Any], **kwargs: Any) -> None:
        # a secret left empty on a later save keeps its stored value: missing from ``data`` but
        # named in ``partial`` (whether it is set is unknown here; the provider checks again)
        partial = kwargs.get("partial")
        kept = set(partial) if isinstance(partial, tuple | list | set) else set()

        def present(name: str) -> bool:
            return bool(data.get(name)) or name in kept

        errors: dict[str, list[str]] = {}
        auth = data.get("auth_type", "none")
        needs = {"basic": ("username", "password"), "bearer": ("token",),
                 "header": ("header_name", "header_value")}.get(auth, ())
        for name in needs:
            if not present(name):
                errors[name] = [f"needed for {auth} authentication"]
        if data.get("message_id_path") and data.get("message_id_regex"):
            errors["message_id_regex"] = ["give a JSON path or a regular expression, not both"]
        if data.get("callbacks") and data.get("callback_auth", "hmac") != "none" and not present("callback_secret"):
            errors["callback_secret"] = ["needed to check delivery reports (or choose no check)"]
        if data.get("method") == "GET" and data.get("body_format") == "json":
            errors["body_format"] = ["a GET request has no body: choose form (fields go in the query string)"]
        if errors:
            raise ValidationError(errors)


@dataclass(frozen=True)
class GatewayConfig:
    """The settings, parsed and validated, as the provider uses them."""

    raw: dict[str, Any]
    extra: tuple[tuple[str, str], ...]
    success: tuple[tuple[int, int], ...]
    status_map: dict[str, str]
    id_regex: re.Pattern[str] | None
    error_regex: re.Pattern[str] | None

    @property
    def idempotent(self) -> bool:
        """The gateway gets the idempotency key (a field, or in the URL) and drops repeats."""
        return bool(self.raw.get("idempotency_field")) or "{idempotency_key}" in self.raw["url_template"]

    def is_success(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.success)

    def secrets(self) -> list[str | None]:
        return [self.raw.get(name) for name in SECRETS]


def load_config(settings: Any) -> GatewayConfig:
    """Stored settings (secrets decrypted) as a :class:`GatewayConfig`; ValueError naming the
    fields (never a value) when they do not validate. Parsed once per distinct settings."""
    items = dict(settings or {})
    try:
        key = tuple(sorted(items.items()))
        hash(key)
    except TypeError:  # a value that is not hashable (not what the schema stores): no cache
        return _load_config(items)
    return _cached_config(key)


@functools.lru_cache(maxsize=128)
def _cached_config(key: tuple[tuple[str, Any], ...]) -> GatewayConfig:
    return _load_config(dict(key))


def _load_config(items: dict[str, Any]) -> GatewayConfig:
    try:
        raw = HttpGatewaySettings().load(items)
    except ValidationError as exc:
        names = ", ".join(sorted(exc.messages)) if isinstance(exc.messages, dict) else "settings"
        raise ValueError(f"the HTTP gateway settings are incomplete or invalid ({names}): check them in the admin") from None
    return GatewayConfig(
        raw=raw,
        extra=tuple(parse_extra(raw.get("extra_params") or "")),
        success=parse_statuses(raw["success_statuses"]),
        status_map=parse_status_map(raw["status_map"]),
        id_regex=re.compile(raw["message_id_regex"], re.MULTILINE) if raw.get("message_id_regex") else None,
        error_regex=re.compile(raw["error_regex"], re.MULTILINE) if raw.get("error_regex") else None,
    )
