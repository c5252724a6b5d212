"""The plugin's own tables, in its own ``MetaData`` (never the core's ``Base``).

``example_welcome_log`` carries ``business_id``, so once the plugin is loaded (``PluginInfo.
model_base``) every query on it is scoped to the current business and new rows are stamped with
it, exactly like the core's own tables. The schema itself is created by the migration in
``migrations/versions`` (``crm db upgrade``); tests create it from this metadata.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crmcore.db import NAMING_CONVENTION, BigId, IdMixin, JsonDoc, UtcDateTime, core_column, utcnow


class ExampleBase(DeclarativeBase):
    """Declarative base of this plugin: own MetaData, the core's naming convention and types."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UtcDateTime(), dict[str, Any]: JsonDoc}


class WelcomeLogEntry(IdMixin, ExampleBase):
    """A welcome written for a new party (``party_id`` set) or when the plugin was enabled (None)."""

    __tablename__ = "example_welcome_log"
    __table_args__ = (Index("ix_example_welcome_log_party", "business_id", "party_id", "id"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))
    party_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("parties.id"), ondelete="CASCADE"))
    message: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
