"""The plugin's use cases. They work in ``ctx.session`` (already scoped to the business) and
join the caller's transaction: a hook's writes commit with the job that runs the hook."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from crm_example_plugin import NAME
from crm_example_plugin.models import WelcomeLogEntry
from crmcore import Veto

if TYPE_CHECKING:
    from crmcore import Context

ENABLED_MESSAGE = "Example plugin enabled"
WON_NEEDS_AMOUNT = "Example plugin: a won deal needs an amount"
LOG_LIMIT_MAX = 200


def settings(ctx: Context) -> dict[str, Any]:
    """This business's settings of the plugin (secrets decrypted, ``$env:`` resolved)."""
    return ctx.plugin_settings(NAME)


def welcome_party(ctx: Context, party_id: int) -> WelcomeLogEntry:
    """Log the configured welcome message for a new party, once: an outbox job may run twice
    (a crash between doing the work and recording it), so a second run finds the first row."""
    entry = ctx.session.scalar(
        select(WelcomeLogEntry).where(WelcomeLogEntry.party_id == party_id).order_by(WelcomeLogEntry.id).limit(1))
    if entry is None:
        entry = WelcomeLogEntry(party_id=party_id, message=settings(ctx)["welcome_message"])
        ctx.session.add(entry)
    return entry


def seed_welcome(ctx: Context) -> bool:
    """Write the business's "plugin enabled" row once; enabling again adds nothing. True if written."""
    exists = ctx.session.scalar(
        select(WelcomeLogEntry.id).where(WelcomeLogEntry.party_id.is_(None)).limit(1))
    if exists is not None:
        return False
    ctx.session.add(WelcomeLogEntry(party_id=None, message=ENABLED_MESSAGE))
    return True


def move_party_rows(ctx: Context, from_party_id: int, to_party_id: int) -> int:
    """Point this plugin's rows of a merged duplicate at the kept party. Returns rows moved."""
    result = ctx.session.execute(
        update(WelcomeLogEntry).where(WelcomeLogEntry.party_id == from_party_id)
        .values(party_id=to_party_id)
    )
    return result.rowcount or 0


def check_stage_change(ctx: Context, record: Any, to_stage: Any) -> None:
    """Refuse closing a deal as won without an amount, unless the business switched the rule off."""
    if record.type != "deal" or to_stage.kind != "won":
        return
    if record.amount is not None and Decimal(record.amount) != 0:
        return
    if not settings(ctx).get("require_amount_to_win", True):
        return
    raise Veto(WON_NEEDS_AMOUNT, {"amount": ["a won deal needs an amount"]})


def welcome_log(ctx: Context, *, party_id: int | None = None, limit: int = 50) -> list[WelcomeLogEntry]:
    """The business's newest welcome rows (of one party when ``party_id`` is given)."""
    limit = max(1, min(int(limit), LOG_LIMIT_MAX))
    query = select(WelcomeLogEntry).order_by(WelcomeLogEntry.id.desc()).limit(limit)
    if party_id is not None:
        query = query.where(WelcomeLogEntry.party_id == party_id)
    return list(ctx.session.scalars(query))
