"""Payments through gateways: the payer's attempts and the events providers report.

The pay flow (public.py drives it; docs/payments.md):

1. :func:`start_attempt` computes the amount from the invoice's balance (never from the payer's
   form), saves an attempt with a fresh idempotency key and COMMITS, before any call out;
2. the view calls ``gateway.create_session`` outside any transaction and records the outcome
   with :func:`session_created` or :func:`session_failed` (the error is for the admin; the
   payer is asked to try again; nothing else changes);
3. what the provider reports, on the payer's return or by webhook, goes through
   :func:`apply_event`: it locks the invoice, records a payment once per provider payment id
   (a repeated or concurrent delivery finds the first one, and the unique constraint backs
   that), checks the currency, never applies more than the balance (the excess is kept as an
   overpayment for the admin to refund), and settles the invoice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_invoicing import rules, service, tokens
from crm_invoicing.models import (
    AttemptStatus,
    GatewayEvent,
    Invoice,
    InvoiceLine,
    Kind,
    Payment,
    PaymentAttempt,
)
from crm_invoicing.types import INVOICE
from crmcore.context import use_case
from crmcore.db import utcnow
from crmcore.errors import Conflict, NotFound
from crmcore.messaging.http import scrub
from crmcore.payments.gateways import EnabledGateway, EventKind, PaymentEvent, enabled_gateways, get_gateway
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

log = logging.getLogger("crm.invoicing.payments")

#: what a payer may pay: an issued invoice with a balance
PAYABLE = service.OPEN
#: longest error text kept on an attempt
ERROR_MAX = 1000


# --------------------------------------------------------------------------------------------
# the invoice behind a token


def find_by_token(ctx: Context, token: Any, *, lock: bool = False) -> tuple[Record, Invoice] | None:
    """The issued invoice whose payment link carries ``token`` (its hash compared in constant
    time), or None: a malformed token, a wrong one and a missing invoice are all None."""
    if not tokens.well_formed(token):
        return None
    stmt = select(Invoice).where(Invoice.token_prefix == token[:tokens.PREFIX], Invoice.kind == Kind.INVOICE.value)
    if lock:
        stmt = stmt.with_for_update()
    for invoice in ctx.session.scalars(stmt.execution_options(populate_existing=True)):
        if tokens.matches(token, invoice.token_hash):
            record = ctx.session.get(Record, invoice.record_id)
            if record is None or record.type != INVOICE.key or record.archived_at is not None:
                return None
            return record, invoice
    return None


@dataclass(frozen=True)
class Offer:
    """A way to pay shown on the public page: a button (online) or instructions (offline)."""

    name: str
    title: str
    offline: bool
    instructions: str | None = None


@dataclass(frozen=True)
class PublicInvoice:
    record: Record
    invoice: Invoice
    lines: list[InvoiceLine]
    business_name: str
    offers: list[Offer] = field(default_factory=list)
    attempt_status: str | None = None

    @property
    def balance(self) -> Decimal:
        i = self.invoice
        return rules.balance(i.total_amount, i.credited_amount, i.paid_amount)

    @property
    def payable(self) -> bool:
        return self.invoice.status in PAYABLE and self.balance > 0


def _settings(ctx: Context, gateway: EnabledGateway) -> Mapping[str, Any] | None:
    """The gateway's settings, or None when they cannot be read (logged for the admin)."""
    try:
        return gateway.settings(ctx)
    except Exception:  # noqa: BLE001 - an undecryptable secret must not break the page
        log.exception("settings of gateway %s cannot be read in business %s", gateway.name, ctx.business_id)
        return None


def offers(ctx: Context) -> list[Offer]:
    """The gateways enabled in ctx's business, online ones first."""
    out = []
    for name, gateway in enabled_gateways(ctx).items():
        instructions = None
        if gateway.gateway.offline:
            settings = _settings(ctx, gateway)
            if settings is None:
                continue
            try:
                instructions = gateway.gateway.payer_instructions(settings)
            except Exception:  # noqa: BLE001 - one broken gateway must not hide the others
                log.exception("gateway %s failed to give payer instructions", name)
                continue
        out.append(Offer(name, gateway.gateway.title, gateway.gateway.offline, instructions))
    return sorted(out, key=lambda o: (o.offline, o.title))


@use_case(Role.READ_ONLY, write=False)
def public_invoice(ctx: Context, token: str, attempt_id: Any = None) -> PublicInvoice | None:
    """What the payment page shows, or None (show the one 404)."""
    found = find_by_token(ctx, token)
    if found is None:
        return None
    record, invoice = found
    lines = list(ctx.session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id)
                                     .order_by(InvoiceLine.position, InvoiceLine.id)))
    status = None
    attempt = _attempt_of(ctx, invoice, attempt_id)
    if attempt is not None:
        status = attempt.status
    return PublicInvoice(record, invoice, lines, ctx.business.name, offers(ctx), status)


def _attempt_of(ctx: Context, invoice: Invoice, attempt_id: Any) -> PaymentAttempt | None:
    if attempt_id is None or not str(attempt_id).isdigit() or len(str(attempt_id)) > 18:
        return None
    attempt = ctx.session.get(PaymentAttempt, int(attempt_id), populate_existing=True)
    return attempt if attempt is not None and attempt.invoice_id == invoice.id else None


# --------------------------------------------------------------------------------------------
# attempts


@dataclass(frozen=True)
class Started:
    """An attempt saved and committed, with what the gateway call needs."""

    attempt_id: int
    idempotency_key: str
    amount: Decimal
    currency: str
    reference: str
    description: str
    customer_email: str | None
    customer_name: str | None
    locale: str | None
    gateway: EnabledGateway
    settings: Mapping[str, Any]


@use_case(Role.MEMBER)
def start_attempt(ctx: Context, token: str, gateway_name: str) -> Started:
    """Save an attempt to pay the invoice's whole balance through ``gateway_name`` (NotFound
    for a wrong token or a gateway not enabled here; Conflict when nothing is left to pay)."""
    found = find_by_token(ctx, token, lock=True)
    if found is None:
        raise NotFound("no such invoice")
    record, invoice = found
    gateway = get_gateway(ctx, gateway_name) if isinstance(gateway_name, str) else None
    if gateway is None or gateway.gateway.offline:
        raise NotFound(f"no payment method {gateway_name!r} here")
    balance = rules.balance(invoice.total_amount, invoice.credited_amount, invoice.paid_amount)
    if invoice.status not in PAYABLE or balance <= 0:
        raise Conflict(f"invoice {record.reference} is {invoice.status.replace('_', ' ')}: nothing to pay")
    settings = _settings(ctx, gateway)
    if settings is None:
        raise Conflict(f"{gateway.gateway.title} is not set up correctly")
    attempt = PaymentAttempt(invoice_id=invoice.id, gateway=gateway.name, idempotency_key=uuid.uuid4().hex,
                             amount=balance, currency=invoice.currency, status=AttemptStatus.CREATED.value)
    ctx.session.add(attempt)
    ctx.session.flush()
    return Started(attempt.id, attempt.idempotency_key, balance, invoice.currency, record.reference or "",
                   f"Invoice {record.reference} from {ctx.business.name}"[:200], service.customer_email(ctx, record),
                   invoice.billing_name, ctx.business.language, gateway, settings)


@use_case(Role.MEMBER)
def session_created(ctx: Context, attempt_id: int, provider_reference: str) -> None:
    attempt = _locked_attempt(ctx, attempt_id)
    attempt.provider_reference = str(provider_reference)[:200]
    if attempt.status == AttemptStatus.CREATED:
        attempt.status = AttemptStatus.REDIRECTED.value


@use_case(Role.MEMBER)
def session_failed(ctx: Context, attempt_id: int, error: str, settings: Mapping[str, Any] | None = None) -> None:
    """The gateway call failed: the attempt says why (for the admin; secrets scrubbed)."""
    attempt = _locked_attempt(ctx, attempt_id)
    secrets = [v for v in (settings or {}).values() if isinstance(v, str) and len(v) >= 12]
    attempt.status = AttemptStatus.FAILED.value
    attempt.error = scrub(error, secrets)[:ERROR_MAX]


def _locked_attempt(ctx: Context, attempt_id: int) -> PaymentAttempt:
    attempt = ctx.session.get(PaymentAttempt, attempt_id, with_for_update=True, populate_existing=True)
    if attempt is None:
        raise NotFound(f"payment attempt {attempt_id} not found")
    return attempt


@use_case(Role.READ_ONLY, write=False)
def gateway_settings(ctx: Context, name: str) -> Mapping[str, Any] | None:
    """The settings of the gateway ``name`` enabled here (None: not enabled, or unreadable)."""
    gateway = get_gateway(ctx, name)
    return _settings(ctx, gateway) if gateway is not None else None


@dataclass(frozen=True)
class Returned:
    attempt_id: int
    status: str
    provider_reference: str | None
    gateway: EnabledGateway | None
    settings: Mapping[str, Any] | None


@use_case(Role.READ_ONLY, write=False)
def returned(ctx: Context, token: str, attempt_id: Any) -> Returned | None:
    """The attempt a payer comes back to (it must be of the token's invoice), or None."""
    found = find_by_token(ctx, token)
    if found is None:
        return None
    attempt = _attempt_of(ctx, found[1], attempt_id)
    if attempt is None:
        return None
    gateway = get_gateway(ctx, attempt.gateway)
    settings = _settings(ctx, gateway) if gateway is not None else None
    return Returned(attempt.id, attempt.status, attempt.provider_reference, gateway, settings)


@use_case(Role.MEMBER)
def cancel_attempt(ctx: Context, token: str, attempt_id: Any) -> bool:
    """The payer gave up at the provider: an attempt not settled yet is marked cancelled (a
    payment reported later for it still counts)."""
    found = find_by_token(ctx, token)
    if found is None:
        return False
    attempt = _attempt_of(ctx, found[1], attempt_id)
    if attempt is None:
        return False
    attempt = _locked_attempt(ctx, attempt.id)
    if attempt.status in (AttemptStatus.CREATED, AttemptStatus.REDIRECTED, AttemptStatus.PENDING):
        attempt.status = AttemptStatus.CANCELLED.value
    return True


# --------------------------------------------------------------------------------------------
# events


def _amount(value: Any) -> Decimal | None:
    from crmcore.money import to_decimal

    number = to_decimal(value) if value is not None else None
    return number if number is not None and number > 0 and number < service.AMOUNT_LIMIT else None


def _find_attempt(ctx: Context, gateway: str, event: PaymentEvent, attempt_id: int | None) -> PaymentAttempt | None:
    wanted = event.attempt_id if isinstance(event.attempt_id, int) and not isinstance(event.attempt_id, bool) \
        else attempt_id
    attempt = None
    if wanted is not None and 0 < wanted < 2**63:
        attempt = ctx.session.get(PaymentAttempt, wanted, populate_existing=True)
        if attempt is not None and attempt.gateway != gateway:
            attempt = None
    if attempt is None and event.provider_reference:
        attempt = ctx.session.scalar(select(PaymentAttempt).where(
            PaymentAttempt.gateway == gateway, PaymentAttempt.provider_reference == str(event.provider_reference)[:200])
            .order_by(PaymentAttempt.id.desc()).limit(1))
    if attempt is not None and event.provider_reference and attempt.provider_reference \
            and attempt.provider_reference != str(event.provider_reference)[:200]:
        return None  # the event names another session than the attempt it claims
    return attempt


def _lock_invoice(ctx: Context, invoice_id: int) -> tuple[Record, Invoice] | None:
    invoice = ctx.session.scalar(select(Invoice).where(Invoice.id == invoice_id).with_for_update()
                                 .execution_options(populate_existing=True))
    if invoice is None:
        return None
    record = ctx.session.get(Record, invoice.record_id, populate_existing=True)
    return (record, invoice) if record is not None else None


@use_case(Role.MEMBER)
def apply_event(ctx: Context, gateway: str, event: PaymentEvent, *, source: str = "webhook",
                attempt_id: int | None = None) -> str:
    """Apply one provider event to the business's invoices; returns the outcome (also kept in
    the event log for the admin). Idempotent: the same event applied again, or concurrently,
    changes nothing more. Events for attempts of other businesses or other gateways are
    unknown here and ignored."""
    if not isinstance(event, PaymentEvent):
        return _log(ctx, gateway, source, None, None, "ignored", "not a PaymentEvent")
    if event.kind == EventKind.REFUNDED:
        return _refunded(ctx, gateway, source, event)
    attempt = _find_attempt(ctx, gateway, event, attempt_id)
    if attempt is None:
        return _log(ctx, gateway, source, event, None, "ignored", "no attempt of this business matches it")
    locked = _lock_invoice(ctx, attempt.invoice_id)
    if locked is None:
        return _log(ctx, gateway, source, event, None, "ignored", "the invoice is gone")
    record, invoice = locked
    attempt = _locked_attempt(ctx, attempt.id)
    if event.kind == EventKind.SUCCEEDED:
        outcome, detail = _succeeded(ctx, gateway, event, record, invoice, attempt)
    elif event.kind == EventKind.PENDING:
        if attempt.status in (AttemptStatus.CREATED, AttemptStatus.REDIRECTED):
            attempt.status = AttemptStatus.PENDING.value
        outcome, detail = "noted", None
    elif event.kind == EventKind.FAILED:
        if attempt.status != AttemptStatus.SUCCEEDED:
            attempt.status = AttemptStatus.FAILED.value
            attempt.error = (event.detail or "the provider reports the payment failed")[:ERROR_MAX]
        outcome, detail = "noted", None
    else:
        outcome, detail = "ignored", f"unknown event kind {str(event.kind)[:40]!r}"
    return _log(ctx, gateway, source, event, (invoice.id, attempt.id), outcome, detail)


def _succeeded(ctx: Context, gateway: str, event: PaymentEvent, record: Record, invoice: Invoice,
               attempt: PaymentAttempt) -> tuple[str, str | None]:
    if not event.provider_payment_id:
        return "ignored", "no provider payment id: cannot record it once"
    amount = _amount(event.amount) if event.amount is not None else attempt.amount
    if amount is None:
        return "ignored", f"unusable amount {event.amount!r}"
    currency = (event.currency or attempt.currency or "").upper()[:3]
    if len(currency) != 3:
        return "ignored", "no currency"
    payment = service.add_gateway_payment(ctx, record, invoice, gateway=gateway,
                                          provider_payment_id=str(event.provider_payment_id)[:200], amount=amount,
                                          currency=currency, attempt=attempt, note=event.detail)
    attempt.status = AttemptStatus.SUCCEEDED.value
    attempt.error = None
    if payment is None:
        return "duplicate", "this payment is recorded already"
    if payment.applied_amount < payment.amount:
        return "overpaid", f"{service.money_text(payment.amount - payment.applied_amount, payment.currency)} not applied: refund it"
    return "applied", None


def _refunded(ctx: Context, gateway: str, source: str, event: PaymentEvent) -> str:
    if not event.provider_payment_id:
        return _log(ctx, gateway, source, event, None, "ignored", "no provider payment id")
    original = ctx.session.scalar(select(Payment).where(
        Payment.gateway == gateway, Payment.provider_payment_id == str(event.provider_payment_id)[:200],
        Payment.refund_of_id.is_(None)))
    if original is None:
        return _log(ctx, gateway, source, event, None, "ignored", "no payment of this business matches it")
    locked = _lock_invoice(ctx, original.invoice_id)
    if locked is None:
        return _log(ctx, gateway, source, event, None, "ignored", "the invoice is gone")
    record, invoice = locked
    ids = (invoice.id, original.attempt_id)
    # one refund per provider refund id (gateways written before it existed: per event id)
    refund_id = getattr(event, "provider_refund_id", None) or event.provider_event_id
    if not refund_id:
        return _log(ctx, gateway, source, event, ids, "ignored", "a refund without an id: record it by hand")
    amount = _amount(event.amount)
    if amount is None:
        return _log(ctx, gateway, source, event, ids, "ignored", f"unusable amount {event.amount!r}")
    if (event.currency or original.currency).upper() != original.currency:
        return _log(ctx, gateway, source, event, ids, "ignored", "the refund's currency is not the payment's")
    key = refund_key(refund_id)
    if ctx.session.scalar(select(Payment.id).where(Payment.gateway == gateway, Payment.provider_payment_id == key)):
        return _log(ctx, gateway, source, event, ids, "duplicate", "this refund is recorded already")
    if service.held(ctx, invoice.id, original.id) <= 0:
        return _log(ctx, gateway, source, event, ids, "ignored", "nothing of the payment is left to refund")
    refund = service.add_refund(ctx, record, invoice, original, amount, key=key, note=event.detail)
    return _log(ctx, gateway, source, event, ids, "refunded" if refund is not None else "duplicate", None)


def refund_key(provider_refund_id: str) -> str:
    """What a refund row keeps as ``provider_payment_id``: one row per provider refund, whether
    staff asked for it here (:mod:`crm_invoicing.refunds`) or a webhook reported it."""
    return f"refund:{provider_refund_id}"[:200]


def settings_of(ctx: Context, gateway: EnabledGateway) -> Mapping[str, Any] | None:
    """The gateway's settings here, or None when they cannot be read (logged)."""
    return _settings(ctx, gateway)


def _log(ctx: Context, gateway: str, source: str, event: PaymentEvent | None, ids: tuple[int, int | None] | None,
         outcome: str, detail: str | None) -> str:
    """Keep the event for the admin: one row per provider event id (redeliveries counted)."""
    kind = str(getattr(event, "kind", "?"))[:16]
    event_id = str(event.provider_event_id)[:200] if event is not None and event.provider_event_id else None
    now = utcnow()
    if event_id is not None:
        row = ctx.session.scalar(select(GatewayEvent).where(GatewayEvent.gateway == gateway,
                                                            GatewayEvent.provider_event_id == event_id))
        if row is not None:
            row.deliveries += 1
            row.last_received_at = now
            if outcome not in ("duplicate", "ignored") or row.outcome == "ignored":
                row.outcome, row.detail = outcome, detail
            return outcome
    row = GatewayEvent(
        gateway=gateway[:64], source=source, provider_event_id=event_id, kind=kind,
        provider_reference=str(event.provider_reference)[:200] if event is not None and event.provider_reference else None,
        provider_payment_id=str(event.provider_payment_id)[:200] if event is not None and event.provider_payment_id
        else None,
        amount=_amount(getattr(event, "amount", None)), currency=(str(event.currency)[:3].upper()
                                                                 if event is not None and event.currency else None),
        invoice_id=ids[0] if ids else None, attempt_id=ids[1] if ids else None, outcome=outcome,
        detail=(detail or None) and detail[:ERROR_MAX], deliveries=1, received_at=now, last_received_at=now)
    try:
        with ctx.session.begin_nested():
            ctx.session.add(row)
    except IntegrityError:  # a concurrent delivery of the same event logged it first
        pass
    return outcome


@use_case(Role.READ_ONLY, write=False)
def recent_events(ctx: Context, limit: int = 50) -> list[GatewayEvent]:
    """The latest gateway events of the business, for the admin."""
    return list(ctx.session.scalars(select(GatewayEvent).order_by(GatewayEvent.id.desc()).limit(min(limit, 200))))
