"""Custom-field definitions, per business and target."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigId, IdMixin, TimestampMixin


class FieldDefinition(IdMixin, TimestampMixin, Base):
    """A custom field: ``target`` is ``party``, ``contact`` or ``record:<type>``; values live in
    the target's ``custom`` JSON column under ``key``."""

    __tablename__ = "field_definitions"
    __table_args__ = (
        UniqueConstraint("business_id", "target", "key"),
        Index("ix_field_definitions_target", "business_id", "target", "position"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    required: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)
    help_text: Mapped[str | None] = mapped_column(String(500))
    archived_at: Mapped[dt.datetime | None]
