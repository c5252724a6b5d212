"""Records: leads, deals, incidents, actions and plugin-defined types, with their links and deal roles."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigId, IdMixin, TimestampMixin, utcnow

RECORD_STATUSES = ("open", "won", "lost")
#: how one record points at another; the document kinds link a deal to its quotes, orders and
#: invoices (the commerce plugins' record types)
LINK_KINDS = ("next_step", "qualified_into", "related", "quote", "order", "invoice", "credit_note")

#: money: 18 digits, 4 decimals; Decimal in Python, never float
Money = Numeric(18, 4, asdecimal=True)


class Record(IdMixin, TimestampMixin, Base):
    __tablename__ = "records"
    __table_args__ = (
        CheckConstraint("status in ('open', 'won', 'lost')", name="status"),
        UniqueConstraint("business_id", "type", "reference"),
        Index("ix_records_type_status", "business_id", "type", "status", "id"),
        # board columns: the records of one stage in the order they entered it
        Index("ix_records_board", "business_id", "stage_id", "stage_entered_at", "id"),
        Index("ix_records_pipeline", "business_id", "pipeline_id", "status"),
        Index("ix_records_party", "business_id", "party_id", "type"),
        Index("ix_records_owner", "business_id", "owner_id", "status"),
        Index("ix_records_contact", "business_id", "contact_id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    party_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("parties.id"))
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="SET NULL"))
    owner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    expected_close_date: Mapped[dt.date | None]
    pipeline_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("pipelines.id"))
    stage_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stages.id"))
    stage_entered_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(8), default="open")
    lost_reason_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("choice_options.id"))
    lost_note: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[dt.datetime | None]
    proposed_solution: Mapped[str | None] = mapped_column(Text)
    custom: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    archived_at: Mapped[dt.datetime | None]


class RecordLink(IdMixin, Base):
    """A directed link: ``from_record`` led to ``to_record`` (next step, qualification, related)."""

    __tablename__ = "record_links"
    __table_args__ = (
        UniqueConstraint("from_record_id", "to_record_id", "kind"),
        Index("ix_record_links_from", "business_id", "from_record_id"),
        Index("ix_record_links_to", "business_id", "to_record_id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    from_record_id: Mapped[int] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"))
    to_record_id: Mapped[int] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(24), default="related")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RecordTeamMember(Base):
    """A user with a role on a record (the deal's sales team)."""

    __tablename__ = "record_team"
    __table_args__ = (Index("ix_record_team_user", "business_id", "user_id"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    record_id: Mapped[int] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("choice_options.id"))


class RecordStakeholder(IdMixin, Base):
    """A contact with a role in the buying decision of a record."""

    __tablename__ = "record_stakeholders"
    __table_args__ = (
        UniqueConstraint("record_id", "contact_id"),
        Index("ix_record_stakeholders_record", "business_id", "record_id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    record_id: Mapped[int] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    role_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("choice_options.id"))
    notes: Mapped[str | None] = mapped_column(Text)


class RecordCompetitor(IdMixin, Base):
    """A competitor (from the business's list) on a record, with notes."""

    __tablename__ = "record_competitors"
    __table_args__ = (
        UniqueConstraint("record_id", "competitor_id"),
        Index("ix_record_competitors_record", "business_id", "record_id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    record_id: Mapped[int] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"))
    competitor_id: Mapped[int] = mapped_column(BigId, ForeignKey("choice_options.id"))
    notes: Mapped[str | None] = mapped_column(Text)
