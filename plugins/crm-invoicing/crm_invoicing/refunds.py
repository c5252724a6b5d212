"""Refunds through the gateway that took a payment: staff's "Refund" on an online payment.

The flow mirrors a payer's attempt (docs/payments.md, "Refunds through the gateway"):

1. :func:`start_refund` checks the amount against what is left of the payment (received,
   minus refunds recorded, minus refunds asked for and not settled yet), saves a
   :class:`~crm_invoicing.models.RefundRequest` with a fresh idempotency key and COMMITS;
2. :func:`run` calls the gateway's ``refund`` outside any transaction, then records the outcome:
   :func:`refund_done` records the refund row once, keyed by the provider's refund id, so the
   REFUNDED webhook of the same refund (before or after) finds it and counts nothing more;
   :func:`refund_failed` changes nothing but the request and says why on the invoice's timeline;
3. a failure that may have reached the provider (a timeout, a 5xx) keeps its amount reserved
   and can be tried again with the SAME key (:func:`retry_refund`: the provider refunds once),
   or dismissed once the admin has checked the provider's dashboard (:func:`dismiss_refund`).

Payments recorded by hand, and gateways that cannot refund, keep the manual refund
(:func:`crm_invoicing.service.record_refund`).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crm_invoicing import payments, service
from crm_invoicing.models import Invoice, Payment, RefundRequest, RefundStatus
from crm_invoicing.schemas import GatewayRefundInput, load
from crmcore.context import get_or_404, use_case
from crmcore.db import utcnow
from crmcore.errors import Conflict, NotFound, ValidationFailed
from crmcore.messaging.http import scrub
from crmcore.payments.gateways import (
    EnabledGateway,
    GatewayError,
    PaymentGateway,
    PermanentFailure,
    RefundResult,
    get_gateway,
)
from crmcore.records.models import Record
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.context import Context

log = logging.getLogger("crm.invoicing.refunds")

#: a request still "created" after this never heard back from its gateway call (the process
#: stopped): it may be tried again
STALE = dt.timedelta(minutes=15)
ZERO = Decimal(0)


def can_refund(gateway: EnabledGateway | None) -> bool:
    """Whether ``gateway`` gives money back through its provider (offline gateways and those
    keeping the interface's default ``refund`` do not)."""
    return gateway is not None and not gateway.gateway.offline \
        and type(gateway.gateway).refund is not PaymentGateway.refund


def _reserving(request: RefundRequest) -> bool:
    """A request whose money may be on its way back: in flight, or failed in a way that may
    have reached the provider."""
    return request.status == RefundStatus.CREATED or (request.status == RefundStatus.FAILED and request.retryable)


def retry_allowed(request: RefundRequest, now: dt.datetime | None = None) -> bool:
    """A failure that may have reached the provider, or a call that never came back."""
    if request.status == RefundStatus.FAILED:
        return request.retryable
    return request.status == RefundStatus.CREATED and request.updated_at < (now or utcnow()) - STALE


# --------------------------------------------------------------------------------------------
# what the refund page shows


@dataclass(frozen=True)
class RefundOptions:
    payment: Payment
    record: Record
    #: the gateway that refunds this payment here (None: refund by hand)
    gateway: EnabledGateway | None
    #: why there is no gateway refund (a payment recorded by hand, the gateway off or unable)
    why_manual: str | None
    held: Decimal
    #: what a new gateway refund may ask for: held minus what unsettled requests reserve
    refundable: Decimal
    requests: list[RefundRequest]


@use_case(Role.READ_ONLY, write=False)
def options(ctx: Context, payment_id: int) -> RefundOptions:
    """How the payment can be refunded, and its refund requests (newest first)."""
    payment = _payment(ctx, payment_id)
    invoice = ctx.session.get(Invoice, payment.invoice_id)
    record = ctx.session.get(Record, invoice.record_id) if invoice is not None else None
    if invoice is None or record is None:
        raise NotFound(f"payment {payment_id} not found")
    requests = list(ctx.session.scalars(select(RefundRequest).where(RefundRequest.payment_id == payment.id)
                                        .order_by(RefundRequest.id.desc()).limit(50)))
    gateway, why = _gateway_for(ctx, payment)
    held = service.held(ctx, invoice.id, payment.id)
    reserved = sum((r.amount for r in requests if _reserving(r)), ZERO)
    return RefundOptions(payment, record, gateway, why, held, max(held - reserved, ZERO), requests)


def _payment(ctx: Context, payment_id: Any) -> Payment:
    payment = get_or_404(ctx, Payment, payment_id, "payment")
    if payment.refund_of_id is not None or payment.amount <= 0:
        raise Conflict("this is a refund; refund the payment itself")
    return payment


def _gateway_for(ctx: Context, payment: Payment) -> tuple[EnabledGateway | None, str | None]:
    if payment.gateway is None or not payment.provider_payment_id:
        return None, "this payment was recorded by hand: record the money given back by hand"
    gateway = get_gateway(ctx, payment.gateway)
    if gateway is None:
        return None, (f"the gateway {payment.gateway} is not enabled here any more: refund in the provider's "
                      "dashboard (its webhook, if it still arrives, records it) or record it by hand")
    if not can_refund(gateway):
        return None, (f"{gateway.gateway.title} cannot refund through the provider: refund in its dashboard "
                      "or record it by hand")
    return gateway, None


# --------------------------------------------------------------------------------------------
# asking the gateway


@dataclass(frozen=True)
class RefundCall:
    """A request saved and committed, with what the gateway call needs."""

    request_id: int
    idempotency_key: str
    provider_payment_id: str
    amount: Decimal
    currency: str
    gateway: EnabledGateway
    settings: Mapping[str, Any]


def _usable_gateway(ctx: Context, payment: Payment) -> tuple[EnabledGateway, Mapping[str, Any]]:
    gateway, why = _gateway_for(ctx, payment)
    if gateway is None:
        raise Conflict(why or "this payment cannot be refunded through a gateway")
    settings = payments.settings_of(ctx, gateway)
    if settings is None:
        raise Conflict(f"{gateway.gateway.title} is not set up correctly: an admin checks its settings")
    return gateway, settings


@use_case(Role.MEMBER)
def start_refund(ctx: Context, payment_id: int, data: Mapping[str, Any]) -> RefundCall:
    """Save a request to give back ``amount`` of a gateway payment, for ``reason`` (both
    required; the amount at most what is left to refund). Committed before any call out."""
    payment = _payment(ctx, payment_id)
    _record, invoice = service.lock_invoice(ctx, payment.invoice_id)
    values = load(GatewayRefundInput, data, "refund")
    gateway, settings = _usable_gateway(ctx, payment)
    service.check_money(values["amount"], payment.currency)
    held = service.held(ctx, invoice.id, payment.id)
    open_ones = [r for r in ctx.session.scalars(select(RefundRequest).where(
        RefundRequest.payment_id == payment.id, RefundRequest.status.in_(
            (RefundStatus.CREATED.value, RefundStatus.FAILED.value)))) if _reserving(r)]
    if any(r.status == RefundStatus.CREATED and not retry_allowed(r) for r in open_ones):
        raise Conflict("a refund of this payment is being made: wait for the gateway's answer (a second "
                       "click asks for nothing more)")
    reserved = sum((r.amount for r in open_ones), ZERO)
    left = held - reserved
    if values["amount"] > left:
        message = f"at most {service.money_text(max(left, ZERO), payment.currency)} of this payment is left to refund"
        if reserved > 0:
            message += (f" ({service.money_text(reserved, payment.currency)} is in refunds not settled yet: "
                        "try those again or dismiss them)")
        raise ValidationFailed("more than is left of the payment", {"amount": [message]})
    request = RefundRequest(invoice_id=invoice.id, payment_id=payment.id, gateway=gateway.name,
                            idempotency_key=uuid.uuid4().hex, amount=values["amount"], currency=payment.currency,
                            reason=values["reason"], status=RefundStatus.CREATED.value, retryable=False,
                            requested_by_id=ctx.user_id)
    ctx.session.add(request)
    ctx.session.flush()
    return RefundCall(request.id, request.idempotency_key, str(payment.provider_payment_id), request.amount,
                      request.currency, gateway, settings)


@use_case(Role.MEMBER)
def retry_refund(ctx: Context, request_id: int) -> RefundCall:
    """Ask again for a refund whose outcome is unknown, with the same idempotency key (the
    provider refunds once however often it is asked)."""
    request = get_or_404(ctx, RefundRequest, request_id, "refund")
    _record, invoice = service.lock_invoice(ctx, request.invoice_id)
    request = _locked_request(ctx, request.id)
    if not retry_allowed(request):
        raise Conflict(f"this refund is {request.status}: it cannot be tried again")
    payment = _payment(ctx, request.payment_id)
    gateway, settings = _usable_gateway(ctx, payment)
    if service.held(ctx, invoice.id, payment.id) <= 0:
        raise Conflict("nothing of the payment is left to refund (the provider may have reported this refund "
                       "already): dismiss it")
    request.status, request.error, request.updated_at = RefundStatus.CREATED.value, None, utcnow()
    return RefundCall(request.id, request.idempotency_key, str(payment.provider_payment_id), request.amount,
                      request.currency, gateway, settings)


@use_case(Role.MEMBER)
def dismiss_refund(ctx: Context, request_id: int) -> RefundRequest:
    """Stop reserving a failed refund's amount (the admin checked the provider: it gave nothing back)."""
    request = get_or_404(ctx, RefundRequest, request_id, "refund")
    record, _invoice = service.lock_invoice(ctx, request.invoice_id)
    request = _locked_request(ctx, request.id)
    if not retry_allowed(request):
        raise Conflict(f"this refund is {request.status}: there is nothing to dismiss")
    request.status, request.retryable = RefundStatus.FAILED.value, False
    service.timeline(ctx, record, "invoice_refund_dismissed",
                     f"Refund of {service.money_text(request.amount, request.currency)} through "
                     f"{_title(ctx, request.gateway)} dismissed: nothing was given back")
    return request


def run(ctx: Context, call: RefundCall) -> RefundRequest:
    """Call the gateway (no transaction is open meanwhile) and record what came of it."""
    try:
        result = call.gateway.gateway.refund(call.provider_payment_id, call.amount, call.currency,
                                             call.idempotency_key, call.settings)
        if not isinstance(result, RefundResult):
            raise PermanentFailure(f"{call.gateway.gateway.title} answered the refund with no result")
    except Exception as exc:  # noqa: BLE001 - any failure of a gateway: the request says why
        if not isinstance(exc, GatewayError):
            log.exception("gateway %s failed to refund", call.gateway.name)
        # a refusal reached no money; anything else (a timeout, a 5xx, a bug) may have
        retryable = not isinstance(exc, PermanentFailure)
        return refund_failed(ctx, call.request_id, _error_text(exc), retryable, call.settings)
    return refund_done(ctx, call.request_id, result)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, GatewayError):
        return str(exc) or type(exc).__name__
    return f"unexpected error in the gateway ({type(exc).__name__})"


def _locked_request(ctx: Context, request_id: int) -> RefundRequest:
    request = ctx.session.get(RefundRequest, request_id, with_for_update=True, populate_existing=True)
    if request is None:
        raise NotFound(f"refund {request_id} not found")
    return request


def _title(ctx: Context, gateway: str) -> str:
    enabled = get_gateway(ctx, gateway)
    return enabled.gateway.title if enabled is not None else gateway


def _amount(value: Any, fallback: Decimal) -> Decimal:
    return value if isinstance(value, Decimal) and value.is_finite() and value > 0 else fallback


@use_case(Role.MEMBER)
def refund_done(ctx: Context, request_id: int, result: RefundResult) -> RefundRequest:
    """The provider gave the money back (or accepted to: ``pending``): the refund row is
    recorded once per provider refund id, whoever comes first, this or its webhook."""
    request = get_or_404(ctx, RefundRequest, request_id, "refund")
    record, invoice = service.lock_invoice(ctx, request.invoice_id, archived_ok=True)
    request = _locked_request(ctx, request.id)
    if request.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING):
        return request
    payment = ctx.session.get(Payment, request.payment_id)
    if payment is None:
        raise NotFound(f"payment {request.payment_id} not found")
    provider_refund_id = str(result.provider_refund_id or "").strip()[:200] or f"request-{request.idempotency_key}"
    key = payments.refund_key(provider_refund_id)
    amount = _amount(result.amount, request.amount)
    title = _title(ctx, request.gateway)
    pending = str(result.status).lower() == "pending"
    summary = (f"Refund of {service.money_text(amount, request.currency)} through {title}"
               + (" (pending at the provider)" if pending else "") + f": {request.reason}")
    row = service.add_refund(ctx, record, invoice, payment, amount, key=key, note=request.reason, summary=summary)
    if row is None:  # its webhook came first (or nothing was left): the refund counts once
        row = ctx.session.scalar(select(Payment).where(Payment.gateway == payment.gateway,
                                                       Payment.provider_payment_id == key))
        service.timeline(ctx, record, "invoice_refund", summary + " (recorded already from the provider's report)")
    request.status = RefundStatus.PENDING.value if pending else RefundStatus.SUCCEEDED.value
    request.provider_refund_id, request.refund_id = provider_refund_id, row.id if row is not None else None
    request.error, request.retryable = None, False
    return request


@use_case(Role.MEMBER)
def refund_failed(ctx: Context, request_id: int, error: str, retryable: bool,
                  settings: Mapping[str, Any] | None = None) -> RefundRequest:
    """The gateway refused, failed or did not answer: nothing is recorded; the request and the
    invoice's timeline say why (secrets scrubbed)."""
    request = get_or_404(ctx, RefundRequest, request_id, "refund")
    record, _invoice = service.lock_invoice(ctx, request.invoice_id, archived_ok=True)
    request = _locked_request(ctx, request.id)
    if request.status != RefundStatus.CREATED:
        return request
    secrets = [v for v in (settings or {}).values() if isinstance(v, str) and len(v) >= 12]
    request.status, request.retryable = RefundStatus.FAILED.value, retryable
    request.error = scrub(error, secrets)[:payments.ERROR_MAX]
    title = _title(ctx, request.gateway)
    service.timeline(ctx, record, "invoice_refund_failed",
                     f"Refund of {service.money_text(request.amount, request.currency)} through {title} failed: "
                     f"{request.error}" + (" (it may have reached the provider: try it again, the provider "
                                           "refunds once)" if retryable else ""))
    return request
