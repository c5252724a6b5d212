"""Input schemas of messaging (marshmallow 4: unknown fields are errors)."""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from crmcore.errors import ValidationFailed
from crmcore.messaging.models import Channel, MessageStatus

CHANNELS = tuple(c.value for c in Channel)
STATUSES = tuple(s.value for s in MessageStatus)
#: who a notification rule sends to
RECIPIENTS = ("responsible_user", "deal_team", "client_contact")
RECIPIENT_LABELS = {"responsible_user": "The responsible user (deal owner, or the party's sales reps)",
                    "deal_team": "The deal's team", "client_contact": "The client's contact"}

KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
SUBJECT_MAX = 300
TEXT_MAX = 50_000
HTML_MAX = 200_000
SMS_SOURCE_MAX = 2_000
#: an SMS body longer than this is refused (providers cap a concatenated SMS near 1,600)
SMS_BODY_MAX = 1_600
ATTACHMENTS_MAX = 20


class Trimmed(fields.String):
    """A string with surrounding whitespace removed before length checks."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


class Id(fields.Integer):
    """A positive row id (booleans are not ids)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(min=1, max=2**63 - 1), **kwargs)


def _blank_to_none(data: Any, names: tuple[str, ...]) -> Any:
    if isinstance(data, dict):
        return {k: (None if k in names and isinstance(v, str) and not v.strip() else v) for k, v in data.items()}
    return data


class TemplateInput(Schema):
    key = Trimmed(required=True, validate=[validate.Length(1, 100), validate.Regexp(
        KEY_RE, error="use lower-case letters, digits, '.', '_' and '-' (e.g. deal.won)")])
    name = Trimmed(required=True, validate=validate.Length(1, 200))
    subject = Trimmed(required=True, validate=validate.Length(1, SUBJECT_MAX))
    body_text = fields.String(required=True, validate=validate.Length(1, TEXT_MAX))
    body_html = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=HTML_MAX))
    sms_text = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=SMS_SOURCE_MAX))
    active = fields.Boolean(load_default=True)

    @pre_load
    def _blanks(self, data: Any, **_: Any) -> Any:
        return _blank_to_none(data, ("body_html", "sms_text"))

    @validates_schema
    def _text_not_blank(self, data: dict[str, Any], **_: Any) -> None:
        if "body_text" in data and not data["body_text"].strip():
            raise ValidationError("write the text of the message", "body_text")


class RuleInput(Schema):
    event = Trimmed(required=True, validate=validate.Length(1, 100))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    recipient = fields.String(required=True, validate=validate.OneOf(RECIPIENTS))
    template_id = Id(required=True)
    active = fields.Boolean(load_default=True)


class OptOutInput(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    address = Trimmed(required=True, validate=validate.Length(1, 320))
    reason = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=300))
    party_id = Id(load_default=None, allow_none=True)
    source = fields.String(load_default="admin", validate=validate.OneOf(
        ("admin", "unsubscribe_link", "sms_stop", "import")))

    @pre_load
    def _blanks(self, data: Any, **_: Any) -> Any:
        return _blank_to_none(data, ("reason",))


class _SendBase(Schema):
    to = Trimmed(required=True, validate=validate.Length(1, 320))
    to_name = Trimmed(load_default=None, allow_none=True, validate=validate.Length(max=200))
    template_key = Trimmed(load_default=None, allow_none=True, validate=validate.Length(1, 100))
    event = Trimmed(load_default=None, allow_none=True, validate=validate.Length(1, 100))
    variables = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$")),
                            load_default=dict)
    party_id = Id(load_default=None, allow_none=True)
    contact_id = Id(load_default=None, allow_none=True)
    record_id = Id(load_default=None, allow_none=True)


class SendEmailInput(_SendBase):
    subject = Trimmed(load_default=None, allow_none=True, validate=validate.Length(1, SUBJECT_MAX))
    text = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, TEXT_MAX))
    html = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, HTML_MAX))
    attachments = fields.List(Id(), load_default=list, validate=validate.Length(max=ATTACHMENTS_MAX))
    reply_to = Trimmed(load_default=None, allow_none=True, validate=validate.Length(1, 320))

    @validates_schema
    def _content(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("template_key"):
            given = [k for k in ("subject", "text", "html") if data.get(k)]
            if given:
                raise ValidationError("give a template or the content, not both", given[0])
            return
        if not data.get("subject"):
            raise ValidationError("give a subject (or a template_key)", "subject")
        if not data.get("text"):
            raise ValidationError("give the text of the email (or a template_key)", "text")


class SendSmsInput(_SendBase):
    text = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, SMS_BODY_MAX))

    @validates_schema
    def _content(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("template_key") and data.get("text"):
            raise ValidationError("give a template or the text, not both", "text")
        if not data.get("template_key") and not (data.get("text") or "").strip():
            raise ValidationError("give the text of the SMS (or a template_key)", "text")


class LogQuery(Schema):
    channel = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CHANNELS))
    status = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(STATUSES))
    party_id = Id(load_default=None, allow_none=True)
    record_id = Id(load_default=None, allow_none=True)

    @pre_load
    def _blanks(self, data: Any, **_: Any) -> Any:
        return _blank_to_none(data, ("channel", "status"))


def _region(value: str) -> None:
    if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError("use a two-letter country code such as BE, NL or US")


def messaging_settings_schema(email_transports: list[str], sms_providers: list[str]) -> type[Schema]:
    """The core-messaging settings of a business; the driver choices are the installed ones."""

    def choice(names: list[str], label: str, help_text: str) -> fields.String:
        checks = [validate.OneOf(names)] if names else [validate.Length(max=100)]
        return fields.String(load_default=None, allow_none=True, validate=checks,
                             metadata={"label": label, "help": help_text})

    class MessagingSettings(Schema):
        email_transport = choice(
            email_transports, "Email transport",
            "Which email plugin sends when several are enabled (none chosen: the only one enabled).")
        sms_provider = choice(
            sms_providers, "SMS provider",
            "Which SMS plugin sends when several are enabled (none chosen: the only one enabled).")
        default_region = fields.String(
            load_default=None, allow_none=True, validate=_region,
            metadata={"label": "Default country for phone numbers",
                      "help": "Two letters (BE, NL, US): reads national numbers such as 0470 12 34 56."})
        reply_to = fields.Email(load_default=None, allow_none=True, metadata={
            "label": "Reply-To address", "help": "Where replies to emails go (empty: the sender)."})

        @pre_load
        def _blanks(self, data: Any, **_: Any) -> Any:
            data = _blank_to_none(data, ("email_transport", "sms_provider", "default_region", "reply_to"))
            if isinstance(data, dict) and isinstance(data.get("default_region"), str):
                data["default_region"] = data["default_region"].strip().upper()
            return data

    return MessagingSettings


def load(schema: type[Schema], data: Any, what: str) -> dict[str, Any]:
    """Validate ``data``; a bad value becomes ValidationFailed naming ``what`` and the fields."""
    if not isinstance(data, dict):
        raise ValidationFailed(f"invalid {what}", {"_schema": ["expected an object"]})
    try:
        return schema().load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        error = ValidationFailed(f"invalid {what}: check {', '.join(sorted(messages))}", messages)
    raise error
