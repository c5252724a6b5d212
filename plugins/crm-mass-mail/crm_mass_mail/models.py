"""The plugin's tables, in its own ``MetaData``: campaigns, their batches and their recipients.

Every table carries ``business_id``, so once the plugin is loaded (``PluginInfo.model_base``)
every ORM query is scoped to the current business, like the core's own tables. The schema is
created by ``migrations/versions`` (``crm db upgrade``); tests create it from this metadata.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crmcore.db import NAMING_CONVENTION, BigId, IdMixin, JsonDoc, UtcDateTime, core_column, utcnow


class MassMailBase(DeclarativeBase):
    """Declarative base of this plugin: own MetaData, the core's naming convention and types."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UtcDateTime(), dict[str, Any]: JsonDoc, list[int]: JsonDoc}


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"            # editable; nothing queued
    SENDING = "sending"        # batches queued; some still to run
    DONE = "done"              # every batch ran
    CANCELLED = "cancelled"    # stopped: batches not run yet never will


class BatchStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    CANCELLED = "cancelled"


#: a recipient's own status when no message was written (the party has no usable address);
#: otherwise the page shows the status of its ``messages`` row
SKIPPED = "skipped"


class Campaign(IdMixin, MassMailBase):
    """One mass email: a template sent to the parties a saved filter finds, at most ``throttle``
    messages a minute."""

    __tablename__ = "mass_mail_campaigns"
    __table_args__ = (Index("ix_mass_mail_campaigns_business", "business_id", "id"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    template_key: Mapped[str] = mapped_column(String(100))
    #: the filter :func:`crmcore.parties.service.list_parties` takes (q, kind, tag, custom, ...)
    audience: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    #: messages per minute
    throttle: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT.value)
    batches_total: Mapped[int] = mapped_column(Integer, default=0)
    recipients_total: Mapped[int] = mapped_column(Integer, default=0)
    started_by: Mapped[int | None] = mapped_column(BigId)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Batch(IdMixin, MassMailBase):
    """One page of the audience: the parties one outbox job (kind ``mass_mail.batch``) sends to."""

    __tablename__ = "mass_mail_batches"
    __table_args__ = (UniqueConstraint("campaign_id", "seq"),
                      Index("ix_mass_mail_batches_campaign", "business_id", "campaign_id", "status"))

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("mass_mail_campaigns.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    party_ids: Mapped[list[int]] = mapped_column(JsonDoc, default=list)
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.PENDING.value)
    run_at: Mapped[dt.datetime]
    outbox_id: Mapped[int | None] = mapped_column(BigId)
    done_at: Mapped[dt.datetime | None]


class Recipient(IdMixin, MassMailBase):
    """A party a campaign was sent to: written in the same transaction as its message, and
    unique per campaign, so a batch that runs twice sends once."""

    __tablename__ = "mass_mail_recipients"
    __table_args__ = (UniqueConstraint("campaign_id", "party_id"),
                      Index("ix_mass_mail_recipients_campaign", "business_id", "campaign_id", "id"))

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("mass_mail_campaigns.id", ondelete="CASCADE"))
    batch_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("mass_mail_batches.id", ondelete="SET NULL"))
    party_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("parties.id"), ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("messages.id"), ondelete="SET NULL"))
    address: Mapped[str | None] = mapped_column(String(320))
    #: ``queued`` when a message was written (its own status is the message's), else ``skipped``
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
