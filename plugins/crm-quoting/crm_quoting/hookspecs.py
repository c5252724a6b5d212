"""Hooks the quoting plugin raises for other plugins (``PluginInfo.hookspecs``).

A plugin implementing them lists ``quoting`` in its ``depends``. They are react hooks: queued in
the transaction that changed the quote and run after its commit, from the outbox (retried; a
job may run twice, so implementations are idempotent). ``quote`` is the core record (type
``quote``); read its details and lines with :func:`crm_quoting.service.get_quote`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore import hookspec

if TYPE_CHECKING:  # pragma: no cover - typing only
    from crmcore.context import Context
    from crmcore.records.models import Record


@hookspec
def crm_after_quote_accepted(ctx: Context, quote: Record) -> None:
    """A quote was accepted (an order plugin makes its order from it). Added in crm-quoting 0.1."""
