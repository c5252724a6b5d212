"""The interfaces a transport implements: email transports and SMS providers.

Both are drivers (docs/plugins.md): an email transport is declared in the
``crmcore.email_transports`` entry-point group, an SMS provider in ``crmcore.sms_providers``,
by a distribution that also declares the plugin owning them. A driver is usable in a business
while its plugin is enabled there, and it is configured by that plugin's settings (validated by
the plugin's marshmallow schema, secrets encrypted at rest); ``send`` receives them decrypted.

The core never calls a provider inside the transaction of a business change: a send is a
``messages`` row plus an outbox row, and the outbox job calls ``send``. So ``send`` may block,
but must finish within ``timeout`` seconds (the worker relies on it), and must say whether a
failure is worth retrying (:class:`TemporaryFailure`) or not (:class:`PermanentFailure`).
No exception message may contain a secret: they are shown to admins and stored.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

SMS_PROVIDERS_GROUP = "crmcore.sms_providers"
EMAIL_TRANSPORTS_GROUP = "crmcore.email_transports"


class DeliveryError(Exception):
    """A send that did not succeed; ``str(exc)`` is shown to admins and must hold no secret."""


class TemporaryFailure(DeliveryError):
    """Worth retrying: a timeout, a refused connection, an HTTP 429 or 5xx, an SMTP 4xx."""


class PermanentFailure(DeliveryError):
    """Never worth retrying: an invalid number, a rejected recipient, bad credentials (HTTP 4xx,
    SMTP 5xx). The message is marked failed at once."""


class InvalidCallback(Exception):
    """A status callback that fails its signature check or cannot be read: answered 4xx, ignored."""


@dataclass(frozen=True)
class EmailAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class OutgoingEmail:
    """One rendered email to one recipient."""

    message_id: int               # the ``messages`` row
    idempotency_key: str          # stable across retries: use it as the Message-ID's left part
    to: str
    subject: str
    text: str
    from_address: str | None = None  # None: the transport's configured sender
    to_name: str | None = None
    html: str | None = None
    reply_to: str | None = None
    attachments: tuple[EmailAttachment, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. List-Unsubscribe


@dataclass(frozen=True)
class OutgoingSms:
    """One SMS to one recipient; ``to`` is E.164 (normalised by the core with phonenumbers)."""

    message_id: int
    idempotency_key: str          # stable across retries: pass it where the provider dedupes
    to: str
    body: str
    sender: str | None = None     # None: the provider's configured sender / number
    status_callback_url: str | None = None


@dataclass(frozen=True)
class SendResult:
    """What the provider said: its id for the message (status callbacks refer to it)."""

    provider_message_id: str | None
    status: str = "sent"          # a ``MessageStatus`` value: sent, or delivered when final at once
    segments: int | None = None   # SMS parts billed, when the provider reports them
    #: True when the provider deduplicated this send by ``idempotency_key`` (a retry after a
    #: lost answer was recognised, not sent twice)
    deduplicated: bool = False


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery report from a status callback."""

    provider_message_id: str
    status: str                   # a ``MessageStatus`` value: sent, delivered or failed
    error: str | None = None


@dataclass(frozen=True)
class CallbackRequest:
    """A provider's HTTP status callback, as received (independent of Flask)."""

    method: str
    url: str                      # the full public URL the provider called (signatures cover it)
    headers: Mapping[str, str]
    query: Mapping[str, str]
    form: Mapping[str, str]
    body: bytes


class EmailTransport(abc.ABC):
    """Sends email. One instance per installation; per-business ``settings`` come with each call."""

    name: ClassVar[str]
    title: ClassVar[str]
    timeout: ClassVar[float] = 30.0

    @abc.abstractmethod
    def send(self, message: OutgoingEmail, settings: Mapping[str, Any]) -> SendResult:
        """Send ``message``; raise :class:`TemporaryFailure` or :class:`PermanentFailure`."""

    def default_sender(self, settings: Mapping[str, Any]) -> str | None:
        """The From address this transport uses when a message names none."""
        return settings.get("from_address")


class SmsProvider(abc.ABC):
    """Sends SMS and reads the provider's delivery reports."""

    name: ClassVar[str]
    title: ClassVar[str]
    timeout: ClassVar[float] = 15.0
    #: whether the provider deduplicates on ``idempotency_key``: without it, a send whose answer
    #: was lost (a worker killed mid-call) may reach the recipient twice, and is counted
    supports_idempotency: ClassVar[bool] = False

    @abc.abstractmethod
    def send(self, message: OutgoingSms, settings: Mapping[str, Any]) -> SendResult:
        """Send ``message``; raise :class:`TemporaryFailure` or :class:`PermanentFailure`."""

    def supports_idempotency_for(self, settings: Mapping[str, Any]) -> bool:
        """Whether sends with these settings are deduplicated on ``idempotency_key``: for a
        provider where that depends on its configuration (a generic gateway with or without an
        idempotency field). Defaults to :attr:`supports_idempotency`."""
        return self.supports_idempotency

    def parse_callback(self, request: CallbackRequest, settings: Mapping[str, Any]) -> list[StatusUpdate]:
        """Verify and read a status callback; raise :class:`InvalidCallback` when it fails its
        signature check. Providers without callbacks keep this default."""
        raise InvalidCallback(f"{self.name} does not take status callbacks")

    def default_sender(self, settings: Mapping[str, Any]) -> str | None:
        return settings.get("sender")
