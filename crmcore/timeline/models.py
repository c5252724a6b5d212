"""The timeline: notes, attachments, reminders (due actions) and the feed of events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigId, IdMixin, TimestampMixin, utcnow


class Note(IdMixin, TimestampMixin, Base):
    __tablename__ = "notes"
    __table_args__ = (
        Index("ix_notes_party", "business_id", "party_id", "id"),
        Index("ix_notes_record", "business_id", "record_id", "id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    party_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("parties.id"))
    record_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    pinned: Mapped[bool] = mapped_column(default=False)


class Attachment(IdMixin, TimestampMixin, Base):
    """A file stored under the instance folder (``storage_key``), never under its given name."""

    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_party", "business_id", "party_id", "id"),
        Index("ix_attachments_record", "business_id", "record_id", "id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    party_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("parties.id"))
    record_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"))
    uploaded_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)


class Reminder(IdMixin, TimestampMixin, Base):
    """A due action assigned to a user, about a party and/or a record."""

    __tablename__ = "reminders"
    __table_args__ = (
        Index("ix_reminders_assignee_due", "business_id", "assigned_to_id", "done_at", "due_at"),
        Index("ix_reminders_party", "business_id", "party_id"),
        Index("ix_reminders_record", "business_id", "record_id"),
        # the worker's scan for reminders that fell due and were not announced yet (install-wide)
        Index("ix_reminders_unannounced", "due_at", sqlite_where=text("done_at IS NULL AND notified_at IS NULL"),
              postgresql_where=text("done_at IS NULL AND notified_at IS NULL")),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    party_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("parties.id"))
    record_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"))
    assigned_to_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[dt.datetime]
    done_at: Mapped[dt.datetime | None]
    done_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    #: when the worker announced it as due (the "reminder due" notification event), once
    notified_at: Mapped[dt.datetime | None]


class TimelineEvent(IdMixin, Base):
    """One line of a feed. Written in the transaction of what it reports; an event about a record
    also carries the record's party, so the party's feed shows its records' history."""

    __tablename__ = "timeline_events"
    __table_args__ = (
        Index("ix_timeline_party", "business_id", "party_id", "occurred_at", "id"),
        Index("ix_timeline_record", "business_id", "record_id", "occurred_at", "id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    party_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("parties.id"))
    record_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(String(500))
    ref_type: Mapped[str | None] = mapped_column(String(40))
    ref_id: Mapped[int | None] = mapped_column(BigId)
    actor_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
