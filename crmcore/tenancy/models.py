"""Businesses and the memberships that give users a role in them."""

from __future__ import annotations

import enum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmcore.db import Base, BigId, IdMixin, TimestampMixin


class Role(enum.StrEnum):
    """Roles in a business, strongest first."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    READ_ONLY = "read_only"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.READ_ONLY: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Business(IdMixin, TimestampMixin, Base):
    """A tenant. Install-wide table: it *is* the scope, so it carries no ``business_id``."""

    __tablename__ = "businesses"

    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    language: Mapped[str] = mapped_column(String(10), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: bumped in the same transaction as any plugin enable/disable: the relay cache key
    plugins_version: Mapped[int] = mapped_column(default=0)
    #: bumped in the same transaction as any change to the business's configuration (lists,
    #: numbering rules, field definitions, pipelines, memberships): the key of the per-business
    #: configuration cache (:mod:`crmcore.tenancy.config`)
    config_version: Mapped[int] = mapped_column(default=0)

    # -- the business profile, shown on its documents (crmcore.documents) -----------------
    #: the name on documents when it differs from ``name`` (``Acme Equipment GmbH``)
    legal_name: Mapped[str | None] = mapped_column(String(200))
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    postcode: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    #: ISO 3166-1 alpha-2 (``DE``); decides the tax id check and the default paper size
    country: Mapped[str | None] = mapped_column(String(2))
    tax_id: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    website: Mapped[str | None] = mapped_column(String(200))
    bank_details: Mapped[str | None] = mapped_column(Text)
    #: ``a4`` or ``letter``; None: by the country (Letter in North America, A4 elsewhere)
    paper_size: Mapped[str | None] = mapped_column(String(10))
    #: the logo's file name in the business's logo folder under the instance folder, and the
    #: SHA-256 of its bytes (checked on every read); None: no logo
    logo_file: Mapped[str | None] = mapped_column(String(80))
    logo_sha256: Mapped[str | None] = mapped_column(String(64))


class Membership(IdMixin, TimestampMixin, Base):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("business_id", "user_id"),
        Index("ix_memberships_user", "user_id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16), default=Role.MEMBER.value)
