"""The outbox handlers of the ``email`` and ``sms`` kinds: hand a queued message to the
business's transport and record what it said.

One job = one ``messages`` row. The handler reads the row and the business's configuration in a
short transaction, calls the transport OUTSIDE any transaction (a slow SMTP server must not hold
a database lock), then records the outcome in another:

* sent: ``status``, ``provider``, ``provider_message_id``, ``sent_at``, ``segments``, the sender;
* :class:`~crmcore.messaging.providers.TemporaryFailure` (and any unexpected error): the error is
  written on the row, which stays ``queued``, and the job raises so the outbox retries it with
  backoff; on the last attempt the row becomes ``failed``;
* :class:`~crmcore.messaging.providers.PermanentFailure`: the row becomes ``failed`` and the job
  is done (no retry);
* no transport enabled, or several and none chosen: a configuration problem the admin fixes, so
  it is retried like a temporary failure, with a message that says what to do.

A message that is no longer ``queued`` (a retry after its outcome was recorded) is left alone,
and an address that opted out after the message was queued is suppressed, not sent. Error texts
never hold a secret: the plugin's secret settings are redacted from them before they are stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crmcore.context import Context
from crmcore.db import begin_write, utcnow
from crmcore.errors import CrmError
from crmcore.messaging.models import Channel, Message, MessageStatus
from crmcore.messaging.providers import (
    EMAIL_TRANSPORTS_GROUP,
    SMS_PROVIDERS_GROUP,
    EmailAttachment,
    EmailTransport,
    OutgoingEmail,
    OutgoingSms,
    PermanentFailure,
    SendResult,
    SmsProvider,
    TemporaryFailure,
)

if TYPE_CHECKING:
    from crmcore.outbox.models import OutboxMessage
    from crmcore.runtime import Crm

log = logging.getLogger("crmcore.messaging")

MAX_ERROR_CHARS = 1000
#: seconds a delivery job may run (the worker's limit); transports bound their own calls below it
JOB_TIMEOUT = 120.0

_instances: dict[type, Any] = {}
_lock = threading.Lock()


class NotConfigured(Exception):
    """The business cannot send on this channel yet; the text says what the admin must do."""


_WHAT = {Channel.EMAIL: ("email transport", "email_transport", EMAIL_TRANSPORTS_GROUP, EmailTransport),
         Channel.SMS: ("SMS provider", "sms_provider", SMS_PROVIDERS_GROUP, SmsProvider)}


def choose_transport(ctx: Context, channel: str) -> tuple[str, Any, str | None]:
    """(driver name, transport instance, owning plugin) for ``channel`` in ctx's business: the
    one its messaging settings name, else the only one enabled; NotConfigured otherwise."""
    from crmcore.messaging.service import messaging_settings
    from crmcore.plugins.drivers import available

    what, setting, group, interface = _WHAT[Channel(channel)]
    drivers = available(ctx, group)
    chosen = messaging_settings(ctx).get(setting)
    where = "Settings → Plugins → Messaging (core)"
    if chosen:
        if chosen not in drivers:
            raise NotConfigured(f"the {what} chosen in {where}, {chosen!r}, is not enabled for this business: "
                                "enable its plugin or choose another")
        name = chosen
    elif not drivers:
        example = "email-smtp" if channel == Channel.EMAIL else "sms-twilio, sms-http or sms-console"
        raise NotConfigured(f"no {what} is enabled for this business: enable one in Settings → Plugins "
                            f"(for example {example}) and enter its settings")
    elif len(drivers) > 1:
        raise NotConfigured(f"several {what}s are enabled ({', '.join(sorted(drivers))}): choose one in {where}")
    else:
        name = next(iter(drivers))
    driver = drivers[name]
    obj = driver.obj
    if isinstance(obj, type):
        with _lock:
            obj = _instances.get(driver.obj) or _instances.setdefault(driver.obj, driver.obj())
    if not isinstance(obj, interface):
        raise NotConfigured(f"the {what} {name!r} does not implement {interface.__name__}")
    return name, obj, driver.plugin


def _secrets(ctx: Context, plugin: str | None, settings: Mapping[str, Any]) -> list[str]:
    from crmcore.plugins.settings import secret_fields, settings_schema

    if plugin is None:
        return []
    try:
        schema = settings_schema(ctx, plugin)
    except Exception:  # noqa: BLE001 - without a schema every string setting counts as secret
        schema = None
    keys = secret_fields(schema) if schema is not None else set(settings)
    return [str(settings[k]) for k in keys if settings.get(k) not in (None, "")]


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` without any secret in it (the outbox redacts too; this also covers the row)."""
    from crmcore.outbox.service import redact

    try:
        return redact(text, secrets)[:MAX_ERROR_CHARS]
    except ValueError:  # a secret that cannot be URL-encoded (a lone surrogate): plain replacement
        for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
            text = text.replace(secret, "[redacted]")
        return text[:MAX_ERROR_CHARS]


def _save(ctx: Context, message_id: int, **values: Any) -> None:
    """Record on the message row, in a transaction of its own."""
    session = ctx.session
    if session.in_transaction():
        session.rollback()
    begin_write(session)
    try:
        message = session.get(Message, message_id)
        if message is not None:
            for key, value in values.items():
                setattr(message, key, value)
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _attachments(ctx: Context, message: Message) -> tuple[EmailAttachment, ...]:
    from crmcore.timeline import storage
    from crmcore.timeline.models import Attachment

    folder = storage.business_dir(ctx.crm.config.attachments_path, ctx.business_id)
    out = []
    for item in message.attachments or []:
        attachment_id = item.get("attachment_id") if isinstance(item, dict) else None
        row = ctx.session.get(Attachment, attachment_id) if attachment_id is not None else None
        if row is None:
            raise PermanentFailure(f"attachment {attachment_id} ({item.get('filename', '?')}) was deleted "
                                   "before the email was sent")
        try:
            data = storage.path_inside(folder, row.storage_key).read_bytes()
        except (OSError, PermissionError):
            raise PermanentFailure(f"the file of attachment {row.id} ({row.filename}) is missing") from None
        out.append(EmailAttachment(filename=row.filename, content_type=row.content_type, data=data))
    return tuple(out)


def _outgoing(ctx: Context, job: OutboxMessage, message: Message, transport: Any,
              settings: Mapping[str, Any], name: str) -> OutgoingEmail | OutgoingSms:
    from crmcore.messaging.service import messaging_settings, unsubscribe_url

    if message.channel == Channel.EMAIL:
        headers: dict[str, str] = {}
        link = unsubscribe_url(ctx, Channel.EMAIL, message.to_address)
        if link:
            headers["List-Unsubscribe"] = f"<{link}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
        payload = job.payload or {}
        return OutgoingEmail(
            message_id=message.id, idempotency_key=job.idempotency_key, to=message.to_address,
            to_name=message.to_name, subject=message.subject or "", text=message.body_text or "",
            html=message.body_html, from_address=message.from_address,
            reply_to=payload.get("reply_to") or messaging_settings(ctx).get("reply_to"),
            attachments=_attachments(ctx, message), headers=headers)
    from crmcore.messaging.status import status_callback_url

    return OutgoingSms(message_id=message.id, idempotency_key=job.idempotency_key, to=message.to_address,
                       body=message.body_text, sender=message.from_address,
                       status_callback_url=status_callback_url(ctx.crm.config, name, ctx.business.slug))


def _prepare(ctx: Context, job: OutboxMessage, channel: str, message_id: Any) -> tuple[Any, ...] | None:
    """Read the message and the business's transport; None when there is nothing to send. Runs
    in the caller's transaction (a suppressed or failed message is recorded by its commit)."""
    from crmcore.messaging.service import find_opt_out

    message = ctx.session.get(Message, message_id) if isinstance(message_id, int) else None
    if message is None:
        log.warning("outbox job %s: message %s no longer exists; nothing to send", job.id, message_id)
        return None
    if message.status != MessageStatus.QUEUED or message.channel != channel:
        return None  # its outcome is recorded already (a retry after a crash): never send twice
    if find_opt_out(ctx, message.channel, message.to_address) is not None:
        message.status = MessageStatus.SUPPRESSED.value
        message.error = "the recipient opted out before the message was sent"
        return None
    name, transport, plugin = choose_transport(ctx, channel)
    try:
        settings = ctx.plugin_settings(plugin) if plugin else {}
    except CrmError as exc:  # a secret this instance's key cannot decrypt, ...
        raise NotConfigured(f"the settings of plugin {plugin!r} cannot be read: {exc.message}") from None
    secrets = _secrets(ctx, plugin, settings)
    try:
        outgoing = _outgoing(ctx, job, message, transport, settings, name)
    except PermanentFailure as exc:
        message.status, message.error = MessageStatus.FAILED.value, scrub(str(exc), secrets)
        return None
    sender = outgoing.from_address if channel == Channel.EMAIL else outgoing.sender
    sender = sender or transport.default_sender(settings)
    return name, transport, settings, secrets, outgoing, sender, message.segments


def deliver(crm: Crm, job: OutboxMessage, channel: str) -> None:
    """Run one delivery job (see the module docstring)."""
    last_try = job.attempts >= job.max_attempts
    message_id = (job.payload or {}).get("message_id")
    ctx = Context.open(crm, job.business_id, None, system=True)
    try:
        session = ctx.session
        begin_write(session)
        try:
            prepared = _prepare(ctx, job, channel, message_id)
            session.commit()
        except NotConfigured as exc:
            session.rollback()
            _save(ctx, message_id, error=str(exc), **({"status": MessageStatus.FAILED.value} if last_try else {}))
            raise TemporaryFailure(str(exc)) from None
        except BaseException:
            session.rollback()
            raise
        if prepared is None:
            return
        name, transport, settings, secrets, outgoing, sender, segments = prepared
        result = _send(transport, outgoing, settings, secrets, ctx, message_id, last_try)
        if result is None:
            return
        status = result.status if result.status in (MessageStatus.SENT, MessageStatus.DELIVERED) \
            else MessageStatus.SENT.value
        now = utcnow()
        provider_id = str(result.provider_message_id)[:200] if result.provider_message_id else None
        _save(ctx, message_id, status=status, provider=name, provider_message_id=provider_id, sent_at=now,
              delivered_at=now if status == MessageStatus.DELIVERED else None, error=None,
              segments=result.segments if result.segments is not None else segments,
              from_address=str(sender)[:320] if sender else None)
        if result.deduplicated:
            log.info("message %s: the provider recognised a repeated send (idempotency key)", message_id)
    finally:
        ctx.close()


def _send(transport: Any, outgoing: Any, settings: Mapping[str, Any], secrets: list[str], ctx: Context,
          message_id: int, last_try: bool) -> SendResult | None:
    try:
        result = transport.send(outgoing, settings)
    except PermanentFailure as exc:
        _save(ctx, message_id, status=MessageStatus.FAILED.value, error=scrub(str(exc) or type(exc).__name__, secrets))
        return None
    except Exception as exc:  # TemporaryFailure, or a transport's bug: retried either way
        text = str(exc) if isinstance(exc, TemporaryFailure) else f"{type(exc).__name__}: {exc}"
        text = scrub(text or type(exc).__name__, secrets)
        _save(ctx, message_id, error=text, **({"status": MessageStatus.FAILED.value} if last_try else {}))
        raise TemporaryFailure(text) from None
    if not isinstance(result, SendResult):
        text = f"the transport returned {type(result).__name__}, not a SendResult"
        _save(ctx, message_id, error=text)
        raise TemporaryFailure(text)
    return result


def deliver_email(crm: Crm, message: OutboxMessage) -> None:
    deliver(crm, message, Channel.EMAIL.value)


def deliver_sms(crm: Crm, message: OutboxMessage) -> None:
    deliver(crm, message, Channel.SMS.value)


def register() -> None:
    """Make this process's outbox run email and SMS jobs (idempotent)."""
    from crmcore.outbox.service import register_handler

    register_handler("email", deliver_email, timeout=JOB_TIMEOUT, replace=True)
    register_handler("sms", deliver_sms, timeout=JOB_TIMEOUT, replace=True)
register()
