"""The plugin's use cases: they work in ``ctx.session`` and join the caller's transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crm_plugin_template import NAME
from crm_plugin_template.models import PluginTemplateWin
from crmcore.timeline.service import log_event

if TYPE_CHECKING:
    from crmcore import Context


def remember_win(ctx: Context, record: Any) -> PluginTemplateWin:
    """Keep a won record's amount; optionally say so on the record's timeline.

    Idempotent, as react hooks must be (an outbox job may run twice): a win is known by its
    record and close time, so a second run finds the first one's row.
    """
    win = ctx.session.scalar(select(PluginTemplateWin).where(
        PluginTemplateWin.record_id == record.id, PluginTemplateWin.won_at == record.closed_at))
    if win is not None:
        return win
    win = PluginTemplateWin(record_id=record.id, amount=record.amount, currency=record.currency,
                            won_at=record.closed_at)
    ctx.session.add(win)
    if ctx.plugin_settings(NAME).get("add_timeline_note", True):
        log_event(ctx, "plugin_template_win", f"Win remembered: {record.title}", record_id=record.id,
                  party_id=record.party_id, ref_type="plugin_template_win")
    return win


def wins(ctx: Context, *, limit: int = 50) -> list[PluginTemplateWin]:
    """The business's newest remembered wins."""
    query = select(PluginTemplateWin).order_by(PluginTemplateWin.id.desc()).limit(max(1, min(limit, 200)))
    return list(ctx.session.scalars(query))
