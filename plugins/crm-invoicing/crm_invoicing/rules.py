"""The arithmetic of balances, kept apart from the database so it can be checked on its own.

An invoice's balance is ``total - credited - paid``: credit notes reduce what is due, payments
pay it. ``paid`` is the sum of the payments' applied parts and never exceeds ``total -
credited``: money beyond the balance is kept as an overpayment (received, not applied) for the
admin to refund. The status of an issued invoice follows from the three amounts alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from crm_invoicing.models import Kind, Status

ZERO = Decimal(0)


def balance(total: Decimal, credited: Decimal, paid: Decimal) -> Decimal:
    return total - credited - paid


def derive_status(kind: str, status: str, total: Decimal, credited: Decimal, paid: Decimal) -> str:
    """The status an invoice has with these amounts (drafts and cancelled ones keep theirs)."""
    if status in (Status.DRAFT, Status.CANCELLED) or kind == Kind.CREDIT_NOTE:
        return status
    if balance(total, credited, paid) <= 0:
        return Status.PAID.value if paid > 0 else Status.CREDITED.value
    return Status.PARTLY_PAID.value if paid > 0 else Status.ACTIVE.value


def split(amount: Decimal, open_balance: Decimal) -> tuple[Decimal, Decimal]:
    """(applied, overpaid): a payment counts up to the balance, the rest is overpaid."""
    applied = min(amount, max(open_balance, ZERO))
    return applied, amount - applied


@dataclass(frozen=True)
class PaymentPosition:
    """Where one payment stands: money still held (received minus refunded) and the part of it
    that counts against the invoice."""

    held: Decimal
    applied: Decimal

    @property
    def unapplied(self) -> Decimal:
        return self.held - self.applied


def position(amount: Decimal, applied: Decimal, refunds: Iterable[tuple[Decimal, Decimal]]) -> PaymentPosition:
    """A payment of ``amount`` with ``applied`` counted, after ``refunds`` (rows of (amount,
    applied), both <= 0)."""
    held, counted = amount, applied
    for refund_amount, refund_applied in refunds:
        held += refund_amount
        counted += refund_applied
    return PaymentPosition(held, counted)


def refund_split(where: PaymentPosition, refund: Decimal) -> Decimal:
    """How much of a refund of ``refund`` (> 0, <= held) comes off the applied part: the
    overpaid part is given back first, so a refund of an overpayment leaves the invoice as is."""
    from_unapplied = min(refund, where.unapplied)
    return refund - from_unapplied


def unapply(positions: list[tuple[int, PaymentPosition]], excess: Decimal) -> dict[int, Decimal]:
    """Take ``excess`` off the applied parts, newest payment first (a credit note on a paid
    invoice turns the payments it covers into overpayments): payment id -> amount taken."""
    taken: dict[int, Decimal] = {}
    for payment_id, where in sorted(positions, key=lambda item: item[0], reverse=True):
        if excess <= 0:
            break
        amount = min(excess, where.applied)
        if amount > 0:
            taken[payment_id] = amount
            excess -= amount
    return taken
