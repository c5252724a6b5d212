"""Options of the lists each business defines for itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigId, IdMixin, TimestampMixin

#: list keys the core uses; plugins may add their own keys (use a ``<plugin>.`` prefix)
PROSPECT_STATUS = "prospect_status"
POTENTIAL_LEVEL = "potential_level"
LOST_REASON = "lost_reason"
COMPETITOR = "competitor"
STAKEHOLDER_ROLE = "stakeholder_role"
TEAM_ROLE = "team_role"
CORE_LISTS = (PROSPECT_STATUS, POTENTIAL_LEVEL, LOST_REASON, COMPETITOR, STAKEHOLDER_ROLE, TEAM_ROLE)


class ChoiceOption(IdMixin, TimestampMixin, Base):
    """One option of a business-defined list. ``value`` is the stable key; ``label`` may change."""

    __tablename__ = "choice_options"
    __table_args__ = (
        UniqueConstraint("business_id", "list_key", "value"),
        Index("ix_choice_options_list", "business_id", "list_key", "position"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    list_key: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(default=0)
    color: Mapped[str | None] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(default=True)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
