"""The plugin's tables, in its own ``MetaData``. ``business_id`` makes a table tenant-scoped."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, MetaData, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crmcore.db import NAMING_CONVENTION, BigId, IdMixin, JsonDoc, UtcDateTime, core_column, utcnow


class PluginTemplateBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UtcDateTime(), dict[str, Any]: JsonDoc}


class PluginTemplateWin(IdMixin, PluginTemplateBase):
    """A record closed as won (``won_at``: its close time), with its amount at that moment."""

    __tablename__ = "plugin_template_wins"
    __table_args__ = (Index("ix_plugin_template_wins_record", "business_id", "record_id"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))
    record_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("records.id"), ondelete="CASCADE"))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4, asdecimal=True))
    currency: Mapped[str | None] = mapped_column(String(3))
    won_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
