"""Messaging use cases: send an email or an SMS, templates, opt-outs and the message log.

A send never talks to a provider. It validates the address, checks opt-outs, renders, and writes
a ``messages`` row and an ``outbox`` row (kind ``email`` or ``sms``) in the CURRENT transaction:
called inside another use case (activating an invoice) it joins that transaction, so a rollback
sends nothing. After commit the outbox job (:mod:`crmcore.messaging.delivery`) hands it to the
business's transport and records what the provider said on the row. A recipient who opted out
gets a row with status ``suppressed`` and no outbox row: the log says why nothing went out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select

from crmcore.context import Context, get_or_404, use_case
from crmcore.errors import Conflict, NotFound, ValidationFailed
from crmcore.messaging import templates as tpl
from crmcore.messaging.models import (
    Channel,
    Message,
    MessageStatus,
    MessageTemplate,
    NotificationRule,
    OptOut,
)
from crmcore.messaging.schemas import (
    SMS_BODY_MAX,
    LogQuery,
    OptOutInput,
    SendEmailInput,
    SendSmsInput,
    TemplateInput,
    load,
)
from crmcore.paging import Page, capped_count, keyset_page
from crmcore.parties.models import Contact, ContactMechanism, Party
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

#: the core plugin whose settings hold the business's messaging choices (crmcore.messaging.plugin)
PLUGIN_NAME = "core-messaging"
UNSUBSCRIBE_SALT = "crmcore.messaging.unsubscribe"
SUMMARY_SUBJECT = 80


# --------------------------------------------------------------------------------------------
# settings, addresses


def messaging_settings(ctx: Context) -> dict[str, Any]:
    """The business's messaging settings (transport choice, default country, Reply-To)."""
    from crmcore.plugins.settings import load_settings

    return load_settings(ctx, PLUGIN_NAME)


def normalize_address(ctx: Context, channel: str, raw: str, *, party_id: int | None = None,
                      field: str = "to") -> str:
    """An email address (email-validator, the core's normaliser) or an E.164 number (read in
    the business's default country, else the party's); ValidationFailed names ``field``."""
    if channel == Channel.EMAIL:
        from crmcore.parties.normalize import NormalizeError, normalize_email

        try:
            return normalize_email(raw).value
        except NormalizeError as exc:
            raise ValidationFailed(f"{raw!r} is not an email address we can send to", {field: [str(exc)]}) from None
    if channel == Channel.SMS:
        from crmcore.messaging.sms import normalize_number

        region = messaging_settings(ctx).get("default_region")
        if not region and party_id is not None:
            from crmcore.parties.inputs import party_region

            region = party_region(ctx, party_id)
        try:
            return normalize_number(raw, region)
        except ValueError as exc:
            raise ValidationFailed(f"{raw!r} is not a phone number we can send to", {field: [str(exc)]}) from None
    raise ValidationFailed(f"unknown channel {channel!r}", {"channel": ["use email or sms"]})


def opt_out_key(channel: str, address: str) -> str:
    """How an address is matched against opt-outs: emails lower-cased, numbers as E.164."""
    return address.strip().lower() if channel == Channel.EMAIL else address.strip()


# --------------------------------------------------------------------------------------------
# the values a template sees


def _mechanisms(ctx: Context, *, party_id: int | None = None, contact_id: int | None = None) -> list[ContactMechanism]:
    stmt = select(ContactMechanism).order_by(ContactMechanism.position, ContactMechanism.id)
    if party_id is not None:
        stmt = stmt.where(ContactMechanism.party_id == party_id)
    else:
        stmt = stmt.where(ContactMechanism.contact_id == contact_id)
    return list(ctx.session.scalars(stmt))


def _user(ctx: Context, user_id: int | None) -> Any:
    from crmcore.auth.models import User

    return ctx.session.get(User, user_id) if user_id is not None else None


def build_context(ctx: Context, *, party: Party | None = None, contact: Contact | None = None,
                  record: Record | None = None, recipient: Mapping[str, Any] | None = None,
                  extra: Mapping[str, Any] | None = None, unsubscribe_url: str | None = None) -> dict[str, Any]:
    """The variables of one message: business, party, contact, record, user (who acted),
    recipient, unsubscribe_url and the event's own (``extra``). Missing objects are None."""
    from crmcore.pipelines.models import Stage

    record_vars = None
    if record is not None:
        stage = ctx.session.get(Stage, record.stage_id) if record.stage_id else None
        record_vars = tpl.record_vars(record, stage.name if stage else None, _user(ctx, record.owner_id))
    context: dict[str, Any] = {
        "business": tpl.business_vars(ctx.business),
        "party": tpl.party_vars(party, _mechanisms(ctx, party_id=party.id)) if party is not None else None,
        "contact": tpl.contact_vars(contact, _mechanisms(ctx, contact_id=contact.id)) if contact is not None else None,
        "record": record_vars,
        "user": tpl.user_vars(ctx.user),
        "recipient": dict(recipient) if recipient else None,
        "unsubscribe_url": unsubscribe_url,
    }
    for key, value in (extra or {}).items():
        if key not in context:
            context[key] = tpl.plain(value)
    return context


def _subjects(ctx: Context, party: Any, contact: Any, record: Any) -> tuple[Party | None, Contact | None, Record | None]:
    """Load what a message is about (instances or ids, always re-read within the business);
    the record fills in its party and contact, a contact its party."""
    def load_one(model: type, value: Any, what: str) -> Any:
        if value is None:
            return None
        return get_or_404(ctx, model, getattr(value, "id", value), what)

    record_row = load_one(Record, record, "record")
    contact_row = load_one(Contact, contact, "contact")
    party_row = load_one(Party, party, "party")
    if record_row is not None:
        if party_row is None and record_row.party_id is not None:
            party_row = get_or_404(ctx, Party, record_row.party_id, "party")
        if contact_row is None and record_row.contact_id is not None:
            contact_row = ctx.session.get(Contact, record_row.contact_id)
    if contact_row is not None and party_row is None and contact_row.party_id is not None:
        party_row = ctx.session.get(Party, contact_row.party_id)
    return party_row, contact_row, record_row


# --------------------------------------------------------------------------------------------
# unsubscribe links


def _serializer(secret_key: str) -> URLSafeSerializer:
    if not secret_key:
        raise ValidationFailed("no secret_key in the instance configuration: run `crm init`")
    return URLSafeSerializer(secret_key, salt=UNSUBSCRIBE_SALT)


def unsubscribe_token(ctx: Context, channel: str, address: str) -> str:
    """A signed, unguessable token naming (business, channel, address): the whole authority of
    the public unsubscribe page. It does not expire (an old email's link must still work)."""
    return _serializer(ctx.crm.config.secret_key).dumps([ctx.business_id, channel, opt_out_key(channel, address)])


def unsubscribe_url(ctx: Context, channel: str, address: str) -> str | None:
    """The public unsubscribe link, or None when ``public_url`` is not configured."""
    base = (ctx.crm.config.public_url or "").rstrip("/")
    if not base:
        return None
    return f"{base}/unsubscribe/{unsubscribe_token(ctx, channel, address)}"


def read_unsubscribe_token(crm: Any, token: str) -> tuple[int, str, str]:
    """(business id, channel, address) of a token; NotFound for anything not made by us."""
    try:
        value = _serializer(crm.config.secret_key).loads(token)
    except BadSignature:
        raise NotFound("this unsubscribe link is not valid") from None
    if (not isinstance(value, list) or len(value) != 3 or not isinstance(value[0], int)
            or value[1] not in (Channel.EMAIL.value, Channel.SMS.value) or not isinstance(value[2], str)):
        raise NotFound("this unsubscribe link is not valid")
    return value[0], value[1], value[2]


# --------------------------------------------------------------------------------------------
# writing messages


def _enqueue(ctx: Context, message: Message, extra: Mapping[str, Any] | None = None) -> int:
    """The outbox row that delivers ``message``: same transaction, its own idempotency key
    (stable across retries; transports use it for the Message-ID, providers to deduplicate)."""
    from crmcore.outbox.service import enqueue

    key = f"{message.channel}:{ctx.business_id}:{message.id}:{ctx.new_key()}"
    outbox_id = enqueue(ctx, message.channel, message.event or message.template_key or "message",
                        {"message_id": message.id, **(extra or {})}, idempotency_key=key)
    assert outbox_id is not None  # a fresh random key never conflicts
    return outbox_id


def find_opt_out(ctx: Context, channel: str, address: str) -> OptOut | None:
    return ctx.session.scalar(select(OptOut).where(OptOut.channel == channel,
                                                   OptOut.address == opt_out_key(channel, address)))


def write_message(ctx: Context, channel: str, to: str, *, status: str = MessageStatus.QUEUED.value,
                  error: str | None = None, party: Party | None = None, contact: Contact | None = None,
                  record: Record | None = None, attachments: list[dict[str, Any]] | None = None,
                  outbox_extra: Mapping[str, Any] | None = None, **values: Any) -> Message:
    """Write one message: queued ones with their outbox row, the others (suppressed, failed)
    as a log line only; a message about a party or record also goes on its timeline.
    ``outbox_extra`` rides in the outbox payload (a per-message Reply-To)."""
    if status == MessageStatus.QUEUED.value:
        opted = find_opt_out(ctx, channel, to)
        if opted is not None:
            status = MessageStatus.SUPPRESSED.value
            error = f"the recipient opted out ({opted.source.replace('_', ' ')}, {opted.created_at:%Y-%m-%d})"
    message = Message(channel=channel, to_address=to[:320], status=status, error=error,
                      party_id=party.id if party else None, contact_id=contact.id if contact else None,
                      record_id=record.id if record else None, user_id=ctx.user_id, attachments=list(attachments or []),
                      **values)
    ctx.session.add(message)
    ctx.session.flush()
    if status == MessageStatus.QUEUED.value:
        message.outbox_id = _enqueue(ctx, message, outbox_extra)
    _log_on_timeline(ctx, message)
    return message


def _log_on_timeline(ctx: Context, message: Message) -> None:
    if message.party_id is None and message.record_id is None:
        return
    from crmcore.timeline.service import log_event

    what = "Email" if message.channel == Channel.EMAIL else "SMS"
    about = message.subject if message.channel == Channel.EMAIL else message.body_text
    about = " ".join((about or "").split())
    if len(about) > SUMMARY_SUBJECT:
        about = about[:SUMMARY_SUBJECT - 1] + "…"
    who = message.to_address or message.to_name or "nobody"
    if message.status == MessageStatus.QUEUED:
        summary = f"{what} to {who}: {about}"
    else:
        why = " (opted out)" if "opted out" in (message.error or "") else ""
        summary = f"{what} to {who} not sent{why}: {about}"
    log_event(ctx, "message", summary, party_id=message.party_id, record_id=message.record_id,
              ref_type="message", ref_id=message.id, data={"channel": message.channel})


def _template(ctx: Context, key: str) -> MessageTemplate:
    found = ctx.session.scalar(select(MessageTemplate).where(MessageTemplate.key == key))
    if found is None or not found.active:
        message = f"no active template {key!r}"
        raise ValidationFailed(message, {"template_key": [message]})
    return found


def _rendered(parts: tpl.Parts, context: dict[str, Any], channel: str, key: str | None) -> tpl.Rendered:
    try:
        return tpl.render(parts, context, channels=(channel,))
    except tpl.TemplateProblem as exc:
        message = f"template {key!r} does not render ({exc.field}): {exc.message}"
        raise ValidationFailed(message, {"template_key": [message]}) from None


def _attachments(ctx: Context, ids: Iterable[int]) -> list[dict[str, Any]]:
    from crmcore.timeline.models import Attachment

    out = []
    for attachment_id in dict.fromkeys(ids):
        try:
            found = get_or_404(ctx, Attachment, attachment_id, "attachment")
        except NotFound as exc:
            raise ValidationFailed(exc.message, {"attachments": [exc.message]}) from None
        out.append({"attachment_id": found.id, "filename": found.filename, "content_type": found.content_type,
                    "size": found.size_bytes})
    return out


@use_case(Role.MEMBER)
def send_email(ctx: Context, *, to: str, template_key: str | None = None, subject: str | None = None,
               text: str | None = None, html: str | None = None, party: Any = None, contact: Any = None,
               record: Any = None, attachments: Iterable[int] = (), event: str | None = None,
               variables: Mapping[str, Any] | None = None, to_name: str | None = None,
               reply_to: str | None = None) -> Message:
    """Queue an email to ``to``: from a template (``template_key``) or given ``subject``/``text``
    (and optional ``html``, taken as written). ``party``/``contact``/``record`` (instances or
    ids) say what it is about: the template's variables and the timelines it appears on.
    ``attachments`` are ids of the business's timeline attachments. Returns the ``Message``
    (status ``queued``, or ``suppressed`` when the address opted out)."""
    data = load(SendEmailInput, {
        "to": to, "template_key": template_key, "subject": subject, "text": text, "html": html,
        "attachments": list(attachments), "event": event, "variables": dict(variables or {}),
        "to_name": to_name, "reply_to": reply_to,
    }, "email")
    party_row, contact_row, record_row = _subjects(ctx, party, contact, record)
    address = normalize_address(ctx, Channel.EMAIL, data["to"])
    if data["reply_to"]:
        data["reply_to"] = normalize_address(ctx, Channel.EMAIL, data["reply_to"], field="reply_to")
    files = _attachments(ctx, data["attachments"])
    if data["template_key"]:
        template = _template(ctx, data["template_key"])
        context = build_context(ctx, party=party_row, contact=contact_row, record=record_row,
                                recipient={"name": data["to_name"], "address": address},
                                extra=data["variables"], unsubscribe_url=unsubscribe_url(ctx, Channel.EMAIL, address))
        rendered = _rendered(tpl.Parts.of(template), context, Channel.EMAIL, template.key)
        subject_, text_, html_ = rendered.subject, rendered.text, rendered.html
    else:
        subject_, text_, html_ = " ".join(data["subject"].split()), data["text"], data["html"]
    return write_message(ctx, Channel.EMAIL, address, party=party_row, contact=contact_row, record=record_row,
                         to_name=data["to_name"], subject=subject_[:300], body_text=text_, body_html=html_,
                         template_key=data["template_key"], event=data["event"], attachments=files,
                         outbox_extra={"reply_to": data["reply_to"]} if data["reply_to"] else None)


@use_case(Role.MEMBER)
def send_sms(ctx: Context, *, to: str, template_key: str | None = None, text: str | None = None,
             party: Any = None, contact: Any = None, record: Any = None, event: str | None = None,
             variables: Mapping[str, Any] | None = None, to_name: str | None = None) -> Message:
    """Queue an SMS to ``to`` (any form phonenumbers reads; national numbers in the business's
    default country or the party's): from a template (its ``sms_text``, else its text) or the
    given ``text``. Same rules as :func:`send_email`."""
    from crmcore.messaging.sms import sms_parts

    data = load(SendSmsInput, {"to": to, "template_key": template_key, "text": text, "event": event,
                               "variables": dict(variables or {}), "to_name": to_name}, "SMS")
    party_row, contact_row, record_row = _subjects(ctx, party, contact, record)
    address = normalize_address(ctx, Channel.SMS, data["to"], party_id=party_row.id if party_row else None)
    if data["template_key"]:
        template = _template(ctx, data["template_key"])
        context = build_context(ctx, party=party_row, contact=contact_row, record=record_row,
                                recipient={"name": data["to_name"], "address": address}, extra=data["variables"])
        body = _rendered(tpl.Parts.of(template), context, Channel.SMS, template.key).sms
        field = "template_key"
    else:
        body, field = data["text"].strip(), "text"
    check_sms_body(body, field)
    return write_message(ctx, Channel.SMS, address, party=party_row, contact=contact_row, record=record_row,
                         to_name=data["to_name"], body_text=body, template_key=data["template_key"],
                         event=data["event"], segments=sms_parts(body).segments)


def check_sms_body(body: str, field: str) -> None:
    if not body:
        raise ValidationFailed("the SMS is empty", {field: ["the SMS renders to an empty text"]})
    if len(body) > SMS_BODY_MAX:
        message = f"the SMS has {len(body):,} characters; at most {SMS_BODY_MAX:,} can be sent"
        raise ValidationFailed(message, {field: [message]})


# --------------------------------------------------------------------------------------------
# the log


@use_case(Role.MEMBER, write=False)
def list_messages(ctx: Context, filters: Mapping[str, Any] | None = None, *, cursor: str | None = None,
                  limit: int | None = 50) -> Page[Message]:
    """The message log, newest first, filtered by channel, status, party or record."""
    data = load(LogQuery, dict(filters or {}), "filter")
    stmt = select(Message)
    for name in ("channel", "status", "party_id", "record_id"):
        if data.get(name) is not None:
            stmt = stmt.where(getattr(Message, name) == data[name])
    page = keyset_page(ctx.session, stmt, [Message.id], cursor=cursor, limit=limit, descending=True)
    page.total = capped_count(ctx.session, stmt)
    return page


@use_case(Role.MEMBER, write=False)
def get_message(ctx: Context, message_id: int) -> Message:
    return get_or_404(ctx, Message, message_id, "message")


# --------------------------------------------------------------------------------------------
# templates


@use_case(Role.ADMIN, write=False)
def list_templates(ctx: Context) -> list[MessageTemplate]:
    return list(ctx.session.scalars(select(MessageTemplate).order_by(MessageTemplate.key)))


@use_case(Role.ADMIN, write=False)
def get_template(ctx: Context, template_id: int) -> MessageTemplate:
    return get_or_404(ctx, MessageTemplate, template_id, "template")


def template_sample(ctx: Context | None, key: str | None) -> dict[str, Any]:
    """The sample a template is checked and previewed against: the event's own when the key
    names an event (objects it lacks are None), else every event's variables together."""
    from crmcore.messaging import rules

    catalogue = rules.events(ctx)
    event = catalogue.get(key or "")
    if event is not None:
        return event.sample()
    extra: dict[str, Any] = {"message": "Your machine is ready for pick-up."}  # send(variables=...)
    for item in catalogue.values():
        extra.update(item.variables)
    return tpl.sample_context(extra)


def _checked_template(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    values = load(TemplateInput, dict(data), "template")
    errors = tpl.check(tpl.Parts(values["subject"], values["body_text"], values["body_html"], values["sms_text"]),
                       template_sample(ctx, values["key"]))
    if errors:
        fields_ = ", ".join(sorted(errors))
        raise ValidationFailed(f"the template does not render: check {fields_}", errors)
    return values


def preview_template(ctx: Context, data: Mapping[str, Any]) -> tpl.Rendered:
    """Render typed template parts against the sample (nothing saved); ValidationFailed names
    each part that fails."""
    values = _checked_template(ctx, data)
    return tpl.render(tpl.Parts(values["subject"], values["body_text"], values["body_html"], values["sms_text"]),
                      template_sample(ctx, values["key"]))


@use_case(Role.ADMIN)
def create_template(ctx: Context, data: Mapping[str, Any]) -> MessageTemplate:
    values = _checked_template(ctx, data)
    if ctx.session.scalar(select(MessageTemplate.id).where(MessageTemplate.key == values["key"])) is not None:
        message = f"a template with the key {values['key']!r} exists already"
        raise ValidationFailed(message, {"key": [message]})
    template = MessageTemplate(**values)
    ctx.session.add(template)
    ctx.session.flush()
    return template


@use_case(Role.ADMIN)
def update_template(ctx: Context, template_id: int, data: Mapping[str, Any]) -> MessageTemplate:
    template = get_or_404(ctx, MessageTemplate, template_id, "template")
    values = _checked_template(ctx, data)
    if values["key"] != template.key and ctx.session.scalar(
            select(MessageTemplate.id).where(MessageTemplate.key == values["key"])) is not None:
        message = f"a template with the key {values['key']!r} exists already"
        raise ValidationFailed(message, {"key": [message]})
    for key, value in values.items():
        setattr(template, key, value)
    _check_rules_of(ctx, template)
    return template


def _check_rules_of(ctx: Context, template: MessageTemplate) -> None:
    """A template used by rules must still render for their events and channels."""
    from crmcore.messaging import rules

    catalogue = rules.events(ctx)
    for rule in ctx.session.scalars(select(NotificationRule).where(NotificationRule.template_id == template.id)):
        event = catalogue.get(rule.event)
        if event is None:
            continue
        errors = tpl.check(tpl.Parts.of(template), event.sample(), (rule.channel,))
        if errors:
            field, texts = next(iter(errors.items()))
            message = f"the rule for {event.label!r} ({rule.channel}) uses this template: {texts[0]}"
            raise ValidationFailed(message, {field: [message]})


@use_case(Role.ADMIN)
def delete_template(ctx: Context, template_id: int) -> None:
    template = get_or_404(ctx, MessageTemplate, template_id, "template")
    used = ctx.session.scalar(select(func.count()).select_from(NotificationRule)
                              .where(NotificationRule.template_id == template.id))
    if used:
        raise Conflict(f"{used} notification rule(s) use the template {template.key!r}: delete them first")
    ctx.session.delete(template)


@use_case(Role.ADMIN)
def seed_default_templates(ctx: Context) -> list[MessageTemplate]:
    """Create the default template of every core event the business does not have yet
    (idempotent: an existing key is left as the admin wrote it)."""
    from crmcore.messaging.defaults import DEFAULT_TEMPLATES

    have = set(ctx.session.scalars(select(MessageTemplate.key)))
    created = []
    for values in DEFAULT_TEMPLATES:
        if values["key"] in have:
            continue
        template = MessageTemplate(**_checked_template(ctx, values))
        ctx.session.add(template)
        created.append(template)
    ctx.session.flush()
    return created


# --------------------------------------------------------------------------------------------
# opt-outs


@use_case(Role.ADMIN)
def opt_out(ctx: Context, channel: str, address: str, *, source: str = "admin", reason: str | None = None,
            party_id: int | None = None) -> OptOut:
    """Stop every message of ``channel`` to ``address`` (idempotent: an existing opt-out is
    returned unchanged). The unsubscribe page and SMS "STOP" handling call this with a system
    context and ``source`` ``unsubscribe_link`` / ``sms_stop``."""
    data = load(OptOutInput, {"channel": channel, "address": address, "source": source, "reason": reason,
                              "party_id": party_id}, "opt-out")
    normalized = opt_out_key(data["channel"], normalize_address(ctx, data["channel"], data["address"],
                                                                field="address"))
    existing = find_opt_out(ctx, data["channel"], normalized)
    if existing is not None:
        return existing
    if data["party_id"] is not None:
        get_or_404(ctx, Party, data["party_id"], "party")
    row = OptOut(channel=data["channel"], address=normalized, source=data["source"], reason=data["reason"],
                 party_id=data["party_id"])
    ctx.session.add(row)
    ctx.session.flush()
    return row


@use_case(Role.ADMIN)
def remove_opt_out(ctx: Context, opt_out_id: int) -> None:
    ctx.session.delete(get_or_404(ctx, OptOut, opt_out_id, "opt-out"))


@use_case(Role.ADMIN, write=False)
def list_opt_outs(ctx: Context, *, channel: str | None = None, cursor: str | None = None,
                  limit: int | None = 50) -> Page[OptOut]:
    stmt = select(OptOut)
    if channel:
        if channel not in (Channel.EMAIL, Channel.SMS):
            raise ValidationFailed("unknown channel", {"channel": ["use email or sms"]})
        stmt = stmt.where(OptOut.channel == channel)
    page = keyset_page(ctx.session, stmt, [OptOut.id], cursor=cursor, limit=limit, descending=True)
    page.total = capped_count(ctx.session, stmt)
    return page


def unsubscribe(crm: Any, token: str, *, confirm: bool) -> dict[str, Any]:
    """The public unsubscribe page's work: read the token and, when ``confirm``, record the
    opt-out (idempotent). Returns the business name, channel, address and whether it was done
    before; an invalid token is NotFound."""
    business_id, channel, address = read_unsubscribe_token(crm, token)
    with Context.open(crm, business_id, None, system=True) as ctx:
        already = find_opt_out_now(ctx, channel, address)
        if confirm and already is None:
            opt_out(ctx, channel, address, source="unsubscribe_link")
        return {"business": ctx.business.name, "channel": channel, "address": address,
                "already": already is not None, "done": confirm or already is not None}


@use_case(Role.READ_ONLY, write=False)
def find_opt_out_now(ctx: Context, channel: str, address: str) -> OptOut | None:
    return find_opt_out(ctx, channel, address)
