"""Hooks the invoicing plugin raises for other plugins (``PluginInfo.hookspecs``).

A plugin implementing them lists ``invoicing`` in its ``depends``. They are react hooks: queued
in the transaction that changed the invoice and run after its commit, from the outbox (retried;
a job may run twice, so implementations are idempotent). ``invoice`` is the core record (type
``invoice`` or ``credit_note``); read the details with :func:`crm_invoicing.service.get_invoice`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore import hookspec

if TYPE_CHECKING:  # pragma: no cover - typing only
    from crmcore.context import Context
    from crmcore.records.models import Record


@hookspec
def crm_after_invoice_activated(ctx: Context, invoice: Record) -> None:
    """An invoice (or a credit note) was issued: it has its number, issue and due dates."""


@hookspec
def crm_after_invoice_paid(ctx: Context, invoice: Record) -> None:
    """An invoice became paid in full (by payments, or payments and credit notes together).
    Raised again if a refund reopened it and it is paid again."""


@hookspec
def crm_after_invoice_cancelled(ctx: Context, invoice: Record) -> None:
    """An invoice was cancelled (it had no payments and no credit notes)."""
