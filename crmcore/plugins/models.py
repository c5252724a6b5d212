"""Per-business plugin enablement and settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigId, IdMixin, TimestampMixin


class PluginEnablement(IdMixin, TimestampMixin, Base):
    """One row per (business, plugin): switched on or off, and its settings.

    Secret settings are stored encrypted (``{"$enc": "..."}``); see ``crmcore.plugins.settings``.
    """

    __tablename__ = "plugin_enablements"
    __table_args__ = (UniqueConstraint("business_id", "plugin"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    plugin: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
