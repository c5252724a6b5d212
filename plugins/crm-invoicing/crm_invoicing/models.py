"""The plugin's tables, in its own ``MetaData``: invoice details (1:1 with the core record), lines,
payments, payment attempts, refunds asked of gateways and the gateway events received.

Every table carries ``business_id``, so once the plugin is loaded (``PluginInfo.model_base``)
every ORM query through ``ctx.session`` is scoped to the current business. Money is
``Numeric(18, 4)`` with the invoice's currency beside it; amounts are rounded to the currency's
minor unit by :mod:`crmcore.money`. The schema is created by ``migrations/versions``.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crmcore.db import NAMING_CONVENTION, BigId, IdMixin, JsonDoc, UtcDateTime, core_column, utcnow

#: 18 digits, 4 decimals; Decimal in Python, never float
Money = Numeric(18, 4, asdecimal=True)
Rate = Numeric(9, 4, asdecimal=True)


class InvoicingBase(DeclarativeBase):
    """Declarative base of this plugin: own MetaData, the core's naming convention and types."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UtcDateTime(), dict[str, Any]: JsonDoc}


class Kind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class Status(enum.StrEnum):
    DRAFT = "draft"              # editable, no number, no payments
    ACTIVE = "active"            # issued, nothing paid (a credit note: issued)
    PARTLY_PAID = "partly_paid"  # issued, some paid, a balance left
    PAID = "paid"                # balance 0 with money received
    CREDITED = "credited"        # balance 0 by credit notes alone
    CANCELLED = "cancelled"      # withdrawn before any payment or credit


class AttemptStatus(enum.StrEnum):
    CREATED = "created"          # saved (with its idempotency key) before the gateway is called
    REDIRECTED = "redirected"    # the gateway gave a session; the payer was sent there
    PENDING = "pending"          # the provider accepted it but has not settled it
    SUCCEEDED = "succeeded"
    FAILED = "failed"            # the gateway call or the payment failed (``error`` says why)
    CANCELLED = "cancelled"      # the payer gave up


#: methods of payments staff record by hand (gateway payments carry the gateway's name)
MANUAL_METHODS = ("bank_transfer", "cash", "cheque", "card", "other")


class Invoice(IdMixin, InvoicingBase):
    """What an invoice or credit note record holds beyond the core record (1:1 with it).

    ``paid_amount`` is the sum of the payments' ``applied_amount``; ``credited_amount`` the sum
    of its issued credit notes (as a positive amount). The balance is ``total_amount -
    credited_amount - paid_amount`` and is never negative (service.py keeps it so)."""

    __tablename__ = "invoicing_invoices"
    __table_args__ = (
        UniqueConstraint("record_id"),
        CheckConstraint("kind in ('invoice', 'credit_note')", name="kind"),
        CheckConstraint("status in ('draft', 'active', 'partly_paid', 'paid', 'credited', 'cancelled')",
                        name="status"),
        Index("ix_invoicing_invoices_status", "business_id", "kind", "status", "due_date"),
        Index("ix_invoicing_invoices_token", "business_id", "token_prefix"),
        Index("ix_invoicing_invoices_deal", "business_id", "deal_id"),
        Index("ix_invoicing_invoices_credited", "business_id", "credited_invoice_id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))
    record_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("records.id"), ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default=Kind.INVOICE.value)
    status: Mapped[str] = mapped_column(String(16), default=Status.DRAFT.value)
    currency: Mapped[str] = mapped_column(String(3))
    issue_date: Mapped[dt.date | None]
    due_date: Mapped[dt.date | None]
    #: days from issue to due; None: the business's setting at activation
    payment_terms_days: Mapped[int | None] = mapped_column(Integer)
    customer_note: Mapped[str | None] = mapped_column(Text)
    #: the party's name and billing address as they were when the invoice was issued
    billing_name: Mapped[str | None] = mapped_column(String(300))
    billing_address: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    deal_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("records.id"), ondelete="SET NULL"))
    quote_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("records.id"), ondelete="SET NULL"))
    order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("records.id"), ondelete="SET NULL"))
    credited_invoice_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("invoicing_invoices.id", ondelete="SET NULL"))
    net_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    tax_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    total_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    paid_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    credited_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    #: the public payment link's token: its first characters (to find the row) and its SHA-256
    token_prefix: Mapped[str | None] = mapped_column(String(12))
    token_hash: Mapped[str | None] = mapped_column(String(64))
    activated_at: Mapped[dt.datetime | None]
    paid_at: Mapped[dt.datetime | None]
    cancelled_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InvoiceLine(IdMixin, InvoicingBase):
    """One line; its amounts follow crmcore.money's rule (rounded per line). ``product_id`` and
    the source point at other plugins' rows without a foreign key (they may not be installed)."""

    __tablename__ = "invoicing_lines"
    __table_args__ = (Index("ix_invoicing_lines_invoice", "business_id", "invoice_id", "position"),)

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(BigId, ForeignKey("invoicing_invoices.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[Decimal] = mapped_column(Money)
    unit: Mapped[str | None] = mapped_column(String(20))
    unit_price: Mapped[Decimal] = mapped_column(Money)
    discount_percent: Mapped[Decimal] = mapped_column(Rate, default=Decimal(0))
    tax_rate: Mapped[Decimal] = mapped_column(Rate, default=Decimal(0))
    net_amount: Mapped[Decimal] = mapped_column(Money)
    tax_amount: Mapped[Decimal] = mapped_column(Money)
    total_amount: Mapped[Decimal] = mapped_column(Money)
    product_id: Mapped[int | None] = mapped_column(BigInteger)
    source_kind: Mapped[str | None] = mapped_column(String(32))
    source_id: Mapped[int | None] = mapped_column(BigInteger)
    #: a credit note's line: the invoice line it credits
    credited_line_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("invoicing_lines.id", ondelete="SET NULL"))


class Payment(IdMixin, InvoicingBase):
    """Money received for an invoice (``amount`` > 0), or given back (a refund row: ``amount`` <
    0, ``refund_of_id`` the payment). ``applied_amount`` is the part that counts against the
    invoice; the rest of a payment (``amount - applied``) is an overpayment for the admin to
    refund. One row per provider payment: (gateway, provider_payment_id) is unique."""

    __tablename__ = "invoicing_payments"
    __table_args__ = (
        UniqueConstraint("business_id", "gateway", "provider_payment_id"),
        Index("ix_invoicing_payments_invoice", "business_id", "invoice_id", "id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(BigId, ForeignKey("invoicing_invoices.id", ondelete="CASCADE"))
    #: the gateway's driver name (None: recorded by staff)
    gateway: Mapped[str | None] = mapped_column(String(64))
    #: bank_transfer, cash, cheque, card, other, or the gateway's name
    method: Mapped[str] = mapped_column(String(64))
    provider_payment_id: Mapped[str | None] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    applied_amount: Mapped[Decimal] = mapped_column(Money)
    refund_of_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("invoicing_payments.id", ondelete="SET NULL"))
    attempt_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("invoicing_payment_attempts.id", ondelete="SET NULL"))
    received_on: Mapped[dt.date]
    reference: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey(core_column("users.id"), ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PaymentAttempt(IdMixin, InvoicingBase):
    """One try of a payer to pay through a gateway: saved with its idempotency key and committed
    BEFORE the gateway is called; ``error`` (no secrets) is for the admin."""

    __tablename__ = "invoicing_payment_attempts"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index("ix_invoicing_payment_attempts_invoice", "business_id", "invoice_id", "id"),
        Index("ix_invoicing_payment_attempts_reference", "business_id", "gateway", "provider_reference"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(BigId, ForeignKey("invoicing_invoices.id", ondelete="CASCADE"))
    gateway: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=AttemptStatus.CREATED.value)
    provider_reference: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RefundStatus(enum.StrEnum):
    CREATED = "created"          # saved (with its idempotency key) before the gateway is called
    SUCCEEDED = "succeeded"      # the provider gave the money back; the refund row is recorded
    PENDING = "pending"          # the provider accepted it and settles it later; recorded already
    FAILED = "failed"            # refused, timed out or the provider failed: nothing recorded


class RefundRequest(IdMixin, InvoicingBase):
    """Staff asking a gateway to give back (part of) a payment it took: saved with its
    idempotency key and committed BEFORE the gateway is called, so a retry of the same request
    sends the same key and the provider refunds once. ``refund_id`` is the refund row recorded
    (the same row a REFUNDED webhook of that refund would find: both use ``provider_refund_id``)."""

    __tablename__ = "invoicing_refund_requests"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        CheckConstraint("status in ('created', 'succeeded', 'pending', 'failed')", name="status"),
        CheckConstraint("amount > 0", name="amount"),
        Index("ix_invoicing_refund_requests_payment", "business_id", "payment_id", "id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))
    invoice_id: Mapped[int] = mapped_column(BigId, ForeignKey("invoicing_invoices.id", ondelete="CASCADE"))
    payment_id: Mapped[int] = mapped_column(BigId, ForeignKey("invoicing_payments.id", ondelete="CASCADE"))
    gateway: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=RefundStatus.CREATED.value)
    provider_refund_id: Mapped[str | None] = mapped_column(String(200))
    #: the refund row (``invoicing_payments``) recorded for it
    refund_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("invoicing_payments.id", ondelete="SET NULL"))
    #: a failure that may have reached the provider (a timeout, a 5xx): retried with the same key
    retryable: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    requested_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey(core_column("users.id"), ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GatewayEvent(IdMixin, InvoicingBase):
    """A gateway event as received (webhook or the payer's return) and what was done with it,
    for the admin. A redelivered event (same ``provider_event_id``) is one row, counted."""

    __tablename__ = "invoicing_gateway_events"
    __table_args__ = (
        UniqueConstraint("business_id", "gateway", "provider_event_id"),
        Index("ix_invoicing_gateway_events_business", "business_id", "id"),
        Index("ix_invoicing_gateway_events_invoice", "business_id", "invoice_id"),
    )

    business_id: Mapped[int] = mapped_column(BigId, ForeignKey(core_column("businesses.id"), ondelete="CASCADE"))
    gateway: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # webhook | return
    provider_event_id: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    provider_reference: Mapped[str | None] = mapped_column(String(200))
    provider_payment_id: Mapped[str | None] = mapped_column(String(200))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    invoice_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("invoicing_invoices.id", ondelete="SET NULL"))
    attempt_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("invoicing_payment_attempts.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
