"""Numbering rules (reference-code patterns) and their gap-free counters."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigId, IdMixin, TimestampMixin


class NumberingRule(IdMixin, TimestampMixin, Base):
    """``pattern`` such as ``CU{yy}{mm}-{0000}`` for a ``target`` (``party``, ``record:deal``, ...)."""

    __tablename__ = "numbering_rules"
    __table_args__ = (UniqueConstraint("business_id", "target"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(64))
    pattern: Mapped[str] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(default=True)


class NumberingCounter(IdMixin, Base):
    """The last number used for a rule in a period (``""`` when the pattern has no date part)."""

    __tablename__ = "numbering_counters"
    __table_args__ = (UniqueConstraint("business_id", "rule_id", "period"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    rule_id: Mapped[int] = mapped_column(BigId, ForeignKey("numbering_rules.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(16), default="")
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)
