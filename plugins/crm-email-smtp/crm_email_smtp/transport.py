"""The ``smtp`` email transport: one SMTP conversation per message, with the business's settings.

Security: ``starttls`` (upgrade a plain connection, port 587), ``tls`` (TLS from the first byte,
port 465) or ``none``. Certificates are verified with ``ssl.create_default_context`` (plus the
``ca_file`` setting); a server without STARTTLS when it is asked for is refused, never silently
used in clear. Every socket operation is bounded by the ``timeout`` setting, and by the time the
outbox job has left.

Failures say whether retrying can help: SMTP 4xx answers, refused or dropped connections and
timeouts are :class:`TemporaryFailure` (the outbox retries with backoff); 5xx answers, a refused
login, an untrusted certificate or a server that cannot do STARTTLS are :class:`PermanentFailure`.
No error text holds the password: messages are built from the server's code and reply only.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from crm_email_smtp.schemas import DEFAULT_PORTS
from crmcore.messaging.providers import (
    EmailTransport,
    OutgoingEmail,
    PermanentFailure,
    SendResult,
    TemporaryFailure,
)

#: headers a caller may add (the transport writes the others itself)
ALLOWED_HEADERS = {"list-unsubscribe", "list-unsubscribe-post", "list-id", "auto-submitted",
                   "precedence", "x-entity-ref-id"}


def _time_left(default: float) -> float:
    try:
        from crmcore.outbox.service import time_left
    except ImportError:  # an older core: the setting alone bounds each step
        return default
    return time_left(default)


class SmtpTransport(EmailTransport):
    name = "smtp"
    title = "SMTP"
    timeout = 30.0

    def send(self, message: OutgoingEmail, settings: Mapping[str, Any]) -> SendResult:
        email = build_message(message, settings)
        timeout = min(float(settings.get("timeout") or self.timeout), _time_left(self.timeout))
        refused = _deliver(email, message.to, settings, timeout)
        if refused:
            code, reply = next(iter(refused.values()))
            raise _failure(code, reply, "the server refused the recipient")
        return SendResult(provider_message_id=email["Message-ID"].strip("<>"), status="sent")

    def default_sender(self, settings: Mapping[str, Any]) -> str | None:
        return settings.get("from_address")


def message_id(idempotency_key: str, from_address: str) -> str:
    """``<key@domain>``: the same key on every retry gives the same Message-ID, so a receiving
    system that deduplicates on it sees a repeated send as one message."""
    left = re.sub(r"[^A-Za-z0-9.\-]", ".", idempotency_key).strip(".") or "message"
    domain = from_address.rpartition("@")[2] or "localhost"
    return f"<{left}@{domain}>"


def build_message(message: OutgoingEmail, settings: Mapping[str, Any]) -> EmailMessage:
    """The MIME message: text, an HTML alternative when there is one, attachments."""
    sender = message.from_address or settings.get("from_address")
    if not sender:
        raise PermanentFailure("no From address: set one in the SMTP settings")
    email = EmailMessage()
    email["From"] = formataddr((settings.get("from_name") or "", sender)) if not message.from_address \
        else sender
    email["To"] = str(Address(display_name=message.to_name or "", addr_spec=message.to)) if message.to_name \
        else message.to
    email["Subject"] = " ".join((message.subject or "").split())
    email["Date"] = format_datetime(_now())
    email["Message-ID"] = message_id(message.idempotency_key, sender)
    if message.reply_to:
        email["Reply-To"] = message.reply_to
    for key, value in (message.headers or {}).items():
        if key.lower() in ALLOWED_HEADERS and value and "\n" not in value and "\r" not in value:
            email[key] = value
    email.set_content(message.text or "")
    if message.html:
        email.add_alternative(message.html, subtype="html")
    for attachment in message.attachments:
        maintype, _, subtype = (attachment.content_type or "application/octet-stream").partition("/")
        email.add_attachment(attachment.data, maintype=maintype or "application",
                             subtype=subtype or "octet-stream", filename=attachment.filename)
    return email


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def _context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=settings.get("ca_file") or None)
    except (OSError, ssl.SSLError) as exc:
        raise PermanentFailure(f"the CA file {settings.get('ca_file')!r} cannot be read: "
                               f"{exc.strerror or type(exc).__name__}") from None


def _deliver(email: EmailMessage, to: str, settings: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    security = settings.get("security") or "starttls"
    host = settings.get("host")
    if not host:
        raise PermanentFailure("no SMTP server: set the host in the SMTP settings")
    port = int(settings.get("port") or DEFAULT_PORTS.get(security, 587))
    where = f"{host}:{port}"
    smtp: smtplib.SMTP | None = None
    try:
        if security == "tls":
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=_context(settings))
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        smtp.ehlo()
        if security == "starttls":
            if not smtp.has_extn("starttls"):
                raise PermanentFailure(f"{where} does not offer STARTTLS: choose another encryption setting")
            smtp.starttls(context=_context(settings))
            smtp.ehlo()
        if settings.get("username"):
            smtp.login(settings["username"], settings.get("password") or "")
        refused = smtp.send_message(email, to_addrs=[to])
        with contextlib.suppress(smtplib.SMTPException, OSError):  # accepted: a rude goodbye is fine
            smtp.quit()
        smtp = None
        return refused
    except (PermanentFailure, TemporaryFailure):
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise PermanentFailure(f"{where} refused the login of {settings.get('username')!r}: "
                               f"{exc.smtp_code} {_reply(exc.smtp_error)}") from None
    except smtplib.SMTPNotSupportedError:
        raise PermanentFailure(f"{where} does not support what the settings ask (login or STARTTLS)") from None
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        raise _failure(code, reply, f"{where} refused the recipient") from None
    except smtplib.SMTPResponseException as exc:  # sender refused, data refused, any other answer
        raise _failure(exc.smtp_code, exc.smtp_error, f"{where} answered") from None
    except ssl.SSLCertVerificationError as exc:
        raise PermanentFailure(f"the certificate of {where} is not trusted: {exc.verify_message or exc.reason}"
                               ) from None
    except ssl.SSLError as exc:
        raise TemporaryFailure(f"TLS with {where} failed: {exc.reason or type(exc).__name__}") from None
    except TimeoutError:
        raise TemporaryFailure(f"{where} did not answer within {timeout:g} s") from None
    except smtplib.SMTPServerDisconnected as exc:  # smtplib reports a read timeout this way too
        if "timed out" in str(exc):
            raise TemporaryFailure(f"{where} did not answer within {timeout:g} s") from None
        raise TemporaryFailure(f"{where} closed the connection") from None
    except (ConnectionError, OSError, smtplib.SMTPException) as exc:
        detail = getattr(exc, "strerror", None) or type(exc).__name__
        raise TemporaryFailure(f"cannot reach {where}: {detail}") from None
    finally:
        if smtp is not None:  # after a failure: close without a QUIT that could wait a timeout more
            smtp.close()


def _reply(raw: Any) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
    return " ".join(text.split())[:300]


def _failure(code: int, reply: Any, what: str) -> Exception:
    """An SMTP answer as a failure: 4xx is worth retrying, everything else is not."""
    text = f"{what}: {code} {_reply(reply)}".rstrip()
    if 400 <= int(code) < 500:
        return TemporaryFailure(text)
    return PermanentFailure(text)
