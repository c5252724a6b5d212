"""Messaging tables: what was sent to whom, from which template, and who asked not to be sent to."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigId, IdMixin, JsonDoc, TimestampMixin


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"            # written with its outbox row; not handed to a provider yet
    SENT = "sent"                # the provider accepted it
    DELIVERED = "delivered"      # the provider reported delivery (status callback)
    FAILED = "failed"            # the provider refused it, or every try failed
    SUPPRESSED = "suppressed"    # not sent: the recipient opted out, or had no address


class Message(IdMixin, TimestampMixin, Base):
    """One email or SMS to one recipient: the log a party's timeline shows.

    Written in the transaction of the change that caused it, with its outbox row
    (``outbox_id``); the delivery job fills ``provider``, ``provider_message_id``, ``sent_at``
    and ``status``. The body is stored as rendered, so the log shows exactly what was sent.
    Never holds a secret.
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_business", "business_id", "id"),
        Index("ix_messages_party", "business_id", "party_id", "id"),
        Index("ix_messages_record", "business_id", "record_id", "id"),
        Index("ix_messages_provider_ref", "business_id", "provider", "provider_message_id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.QUEUED.value)
    to_address: Mapped[str] = mapped_column(String(320))
    to_name: Mapped[str | None] = mapped_column(String(200))
    from_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    #: attachments by reference: ``[{"attachment_id": 5}]`` (timeline attachments of the business)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    template_key: Mapped[str | None] = mapped_column(String(100))
    event: Mapped[str | None] = mapped_column(String(100))
    party_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("parties.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="SET NULL"))
    record_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("records.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    outbox_id: Mapped[int | None] = mapped_column(BigId)
    provider: Mapped[str | None] = mapped_column(String(100))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    segments: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]


class MessageTemplate(IdMixin, TimestampMixin, Base):
    """A business's template: one source for the email (subject, text, HTML) and the SMS (text,
    or ``sms_text`` when set). Jinja, sandboxed, with the business's variables."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("business_id", "key"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(300), default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    sms_text: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class OptOut(IdMixin, TimestampMixin, Base):
    """A recipient who asked not to receive messages on a channel; ``address`` is normalised
    (lower-case email, E.164 phone). Honoured by every send, rules and mass mail alike."""

    __tablename__ = "message_opt_outs"
    __table_args__ = (UniqueConstraint("business_id", "channel", "address"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(320))
    party_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("parties.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(32), default="admin")  # admin, unsubscribe_link, sms_stop
    reason: Mapped[str | None] = mapped_column(String(300))


class NotificationRule(IdMixin, TimestampMixin, Base):
    """Per business: on ``event``, notify ``recipient`` over ``channel`` with ``template_id``."""

    __tablename__ = "notification_rules"
    __table_args__ = (Index("ix_notification_rules_event", "business_id", "event"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(8))
    #: responsible_user, deal_team, client_contact
    recipient: Mapped[str] = mapped_column(String(32))
    template_id: Mapped[int] = mapped_column(BigId, ForeignKey("message_templates.id", ondelete="CASCADE"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
