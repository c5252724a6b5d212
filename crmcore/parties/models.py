"""Parties (organisations and persons), their contacts, contact mechanisms, addresses and tags."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crmcore.db import Base, BigId, IdMixin, TimestampMixin, utcnow

PARTY_KINDS = ("organisation", "person")
MECHANISM_KINDS = ("email", "phone", "mobile", "fax", "website", "other")
ADDRESS_PURPOSES = ("billing", "shipping", "legal", "other")


class Party(IdMixin, TimestampMixin, Base):
    __tablename__ = "parties"
    __table_args__ = (
        CheckConstraint("kind in ('organisation', 'person')", name="kind"),
        UniqueConstraint("business_id", "reference"),
        # list pages: every filter index ends in (name_key, id) so a filtered, name-sorted keyset
        # page is one index range scan
        Index("ix_parties_name", "business_id", "name_key", "id"),
        Index("ix_parties_status_name", "business_id", "prospect_status_id", "name_key", "id"),
        Index("ix_parties_potential_name", "business_id", "potential_id", "name_key", "id"),
        Index("ix_parties_customer_name", "business_id", "is_customer", "name_key", "id"),
        Index("ix_parties_updated", "business_id", "updated_at", "id"),
        Index("ix_parties_custom_gin", "custom", postgresql_using="gin",
              postgresql_ops={"custom": "jsonb_path_ops"}).ddl_if(dialect="postgresql"),
        # name prefix search (LIKE 'abc%') can use a btree only with pattern ops outside the C collation
        Index("ix_parties_name_prefix_pg", "business_id", "name_key",
              postgresql_ops={"name_key": "text_pattern_ops"}).ddl_if(dialect="postgresql"),
        # substring search (LIKE '%abc%'): pg_trgm; SQLite uses FTS5 tables (crmcore.parties.search)
        Index("ix_parties_search_trgm", "name_key", "reference", postgresql_using="gin",
              postgresql_ops={"name_key": "gin_trgm_ops", "reference": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="organisation")
    name: Mapped[str] = mapped_column(String(300))
    #: casefolded name: the sort and prefix-search key
    name_key: Mapped[str] = mapped_column(String(300))
    first_name: Mapped[str | None] = mapped_column(String(150))
    last_name: Mapped[str | None] = mapped_column(String(150))
    reference: Mapped[str | None] = mapped_column(String(40))
    is_prospect: Mapped[bool] = mapped_column(default=True)
    is_customer: Mapped[bool] = mapped_column(default=False)
    is_supplier: Mapped[bool] = mapped_column(default=False)
    prospect_status_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("choice_options.id"))
    potential_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("choice_options.id"))
    language: Mapped[str | None] = mapped_column(String(10))
    currency: Mapped[str | None] = mapped_column(String(3))
    tax_id: Mapped[str | None] = mapped_column(String(40))
    custom: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    archived_at: Mapped[dt.datetime | None]
    #: set on a duplicate retired by a merge: the party it now lives on
    merged_into_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("parties.id"))

    mechanisms: Mapped[list[ContactMechanism]] = relationship(
        primaryjoin="and_(Party.id == ContactMechanism.party_id, ContactMechanism.contact_id.is_(None))",
        order_by="ContactMechanism.position", viewonly=True, lazy="raise_on_sql")
    addresses: Mapped[list[Address]] = relationship(order_by="Address.id", viewonly=True, lazy="raise_on_sql")


class Tag(IdMixin, TimestampMixin, Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("business_id", "name_key"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    name_key: Mapped[str] = mapped_column(String(80))
    color: Mapped[str | None] = mapped_column(String(16))


class PartyTag(Base):
    __tablename__ = "party_tags"
    __table_args__ = (Index("ix_party_tags_tag", "business_id", "tag_id", "party_id"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    party_id: Mapped[int] = mapped_column(BigId, ForeignKey("parties.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(BigId, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)


class PartySalesRep(Base):
    __tablename__ = "party_sales_reps"
    __table_args__ = (Index("ix_party_sales_reps_user", "business_id", "user_id", "party_id"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    party_id: Mapped[int] = mapped_column(BigId, ForeignKey("parties.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class Contact(IdMixin, TimestampMixin, Base):
    """A person at a party, or unassigned (``party_id`` NULL) until moved to one."""

    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_party", "business_id", "party_id", "name_key"),
        Index("ix_contacts_name", "business_id", "name_key", "id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    party_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("parties.id"))
    first_name: Mapped[str | None] = mapped_column(String(150))
    last_name: Mapped[str | None] = mapped_column(String(150))
    name: Mapped[str] = mapped_column(String(300))
    name_key: Mapped[str] = mapped_column(String(300))
    job_title: Mapped[str | None] = mapped_column(String(150))
    department: Mapped[str | None] = mapped_column(String(150))
    language: Mapped[str | None] = mapped_column(String(10))
    notes: Mapped[str | None] = mapped_column(Text)
    custom: Mapped[dict[str, Any]] = mapped_column(default=dict)
    archived_at: Mapped[dt.datetime | None]

    mechanisms: Mapped[list[ContactMechanism]] = relationship(
        order_by="ContactMechanism.position", viewonly=True, lazy="raise_on_sql")


class ContactMechanism(IdMixin, TimestampMixin, Base):
    """An email, phone, mobile, website, ... of a party or of a contact (exactly one of them)."""

    __tablename__ = "contact_mechanisms"
    __table_args__ = (
        CheckConstraint("(party_id IS NULL) <> (contact_id IS NULL)", name="one_owner"),
        Index("ix_contact_mechanisms_lookup", "business_id", "kind", "normalized"),
        Index("ix_contact_mechanisms_party", "business_id", "party_id"),
        Index("ix_contact_mechanisms_contact", "business_id", "contact_id"),
        # substring search of emails and phones (pg_trgm); SQLite: FTS5 (crmcore.parties.search)
        Index("ix_contact_mechanisms_search_trgm", "normalized", postgresql_using="gin",
              postgresql_ops={"normalized": "gin_trgm_ops"}).ddl_if(dialect="postgresql"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    party_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("parties.id"))
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(300))
    #: lowercased email, E.164 phone, bare host+path URL: what duplicates are matched on
    normalized: Mapped[str] = mapped_column(String(300))
    label: Mapped[str | None] = mapped_column(String(60))
    is_primary: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)


class Address(IdMixin, TimestampMixin, Base):
    __tablename__ = "addresses"
    __table_args__ = (
        CheckConstraint("purpose in ('billing', 'shipping', 'legal', 'other')", name="purpose"),
        Index("ix_addresses_party", "business_id", "party_id", "purpose"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    party_id: Mapped[int] = mapped_column(BigId, ForeignKey("parties.id"))
    purpose: Mapped[str] = mapped_column(String(16), default="billing")
    label: Mapped[str | None] = mapped_column(String(100))
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    is_default: Mapped[bool] = mapped_column(default=False)


class PartyMerge(IdMixin, Base):
    """The trace a merge leaves: which duplicate went into which party, what it was, what moved."""

    __tablename__ = "party_merges"
    __table_args__ = (Index("ix_party_merges_kept", "business_id", "kept_party_id"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey("businesses.id", ondelete="CASCADE"))
    kept_party_id: Mapped[int] = mapped_column(BigId, ForeignKey("parties.id"))
    merged_party_id: Mapped[int] = mapped_column(BigId, ForeignKey("parties.id"))
    merged_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    merged_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: the duplicate as it was before the merge (columns, tags, sales reps, custom values)
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: rows moved onto the kept party, per table (``{"contacts": 2, "records": 5, ...}``), and under
    #: ``"dropped"`` the duplicate's rows the kept party already had (same tag, rep or email)
    moved: Mapped[dict[str, Any]] = mapped_column(default=dict)
    custom_rule: Mapped[str] = mapped_column(String(16), default="fill")
