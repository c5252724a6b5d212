"""Pipelines (funnels) per business and record type, their ordered stages, and stage history."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crmcore.db import Base, BigId, IdMixin, TimestampMixin, utcnow

if TYPE_CHECKING:
    from crmcore.auth.models import User

STAGE_KINDS = ("open", "won", "lost")


class Pipeline(IdMixin, TimestampMixin, Base):
    __tablename__ = "pipelines"
    __table_args__ = (
        UniqueConstraint("business_id", "record_type", "name"),
        Index("ix_pipelines_type", "business_id", "record_type", "position"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    record_type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(default=0)
    is_default: Mapped[bool] = mapped_column(default=False)
    archived_at: Mapped[dt.datetime | None]

    #: every stage (archived ones too), in position order; load it explicitly (selectinload)
    stages: Mapped[list[Stage]] = relationship(
        order_by=lambda: [Stage.position, Stage.id], viewonly=True, lazy="raise_on_sql")

    def active_stages(self) -> list[Stage]:
        """The stages not archived, in order (needs ``stages`` loaded)."""
        return [s for s in self.stages if s.archived_at is None]


class Stage(IdMixin, TimestampMixin, Base):
    """A step of a pipeline. ``kind`` 'won' or 'lost' makes it a closing stage."""

    __tablename__ = "stages"
    __table_args__ = (
        CheckConstraint("kind in ('open', 'won', 'lost')", name="kind"),
        UniqueConstraint("pipeline_id", "name"),
        Index("ix_stages_pipeline", "business_id", "pipeline_id", "position"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    pipeline_id: Mapped[int] = mapped_column(BigId, ForeignKey("pipelines.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(8), default="open")
    #: win probability in percent, for weighted forecasts
    probability: Mapped[int | None]
    archived_at: Mapped[dt.datetime | None]

    @property
    def is_closing(self) -> bool:
        return self.kind != "open"


class StageChange(IdMixin, Base):
    """One move of a record between stages: who, when, from, to, and how long it stayed."""

    __tablename__ = "stage_changes"
    __table_args__ = (Index("ix_stage_changes_record", "business_id", "record_id", "changed_at", "id"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    record_id: Mapped[int] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"))
    from_stage_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("stages.id"))
    to_stage_id: Mapped[int] = mapped_column(BigId, ForeignKey("stages.id"))
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: seconds the record spent in from_stage before this move (None for the first placement)
    seconds_in_from_stage: Mapped[int | None]
    note: Mapped[str | None] = mapped_column(Text)

    from_stage: Mapped[Stage | None] = relationship(foreign_keys=[from_stage_id], viewonly=True,
                                                    lazy="raise_on_sql")
    to_stage: Mapped[Stage] = relationship(foreign_keys=[to_stage_id], viewonly=True, lazy="raise_on_sql")
    user: Mapped[User | None] = relationship(viewonly=True, lazy="raise_on_sql")
