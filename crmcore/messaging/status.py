"""Delivery reports: the status callback URL a provider is given, and applying what it reports.

A provider reports a message's fate (sent, delivered, failed) by calling
``/hooks/sms/<provider>/<business slug>`` (see :mod:`crmcore.web.sms_callbacks`). Reports arrive
late, twice, or out of order (a "sent" after the "delivered"), so a status only moves forward:
queued < sent < failed < delivered. A failure is final except for a delivery report (the
phone has it, whatever an intermediate hop said), and a delivered message stays delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import select

from crmcore.context import Context, use_case
from crmcore.db import utcnow
from crmcore.messaging.models import Channel, Message, MessageStatus
from crmcore.messaging.providers import StatusUpdate
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.config import Config
    from crmcore.db import CrmSession

log = logging.getLogger("crmcore.messaging")

#: the public route (``crmcore.web.sms_callbacks``); provider and slug are URL-quoted
CALLBACK_PATH = "/hooks/sms/{provider}/{business}"

#: how far along a message is; a report never moves it back
RANK = {
    MessageStatus.QUEUED.value: 0,
    MessageStatus.SENT.value: 1,
    MessageStatus.FAILED.value: 2,
    MessageStatus.DELIVERED.value: 3,
}
REPORTABLE = (MessageStatus.SENT.value, MessageStatus.DELIVERED.value, MessageStatus.FAILED.value)
MAX_ERROR_CHARS = 500


def status_callback_url(config: Config, provider: str, business_slug: str) -> str | None:
    """The URL to hand a provider as ``OutgoingSms.status_callback_url``, or None when the
    installation has no ``public_url`` (a provider cannot reach ``localhost``)."""
    base = (config.public_url or "").strip().rstrip("/")
    if not base:
        return None
    if not base.lower().startswith(("https://", "http://")):
        # a provider refuses a callback URL it cannot call, and with it the SMS: send none
        log.warning("public_url %r is not an http(s) address: SMS go out without a status callback", base)
        return None
    return base + CALLBACK_PATH.format(provider=quote(provider, safe=""), business=quote(business_slug, safe=""))


@dataclass(frozen=True)
class StatusResult:
    """What a batch of reports did: rows moved forward, reports that changed nothing (late or
    repeated), and reports naming no message of this business and provider."""

    updated: int = 0
    unchanged: int = 0
    unknown: int = 0


def apply_status_updates(crm_or_ctx: Any, business_id: int, provider: str,
                         updates: Iterable[StatusUpdate]) -> StatusResult:
    """Apply delivery reports to the business's SMS rows of ``provider``, found by
    ``provider_message_id``; one transaction.

    ``crm_or_ctx`` is a :class:`~crmcore.runtime.Crm` (a transaction of its own) or a
    :class:`~crmcore.context.Context` of the same business (joins its use case if one is open,
    else commits). Unknown ids are counted, not errors: a provider may report messages sent by
    another system on the same account.
    """
    updates = [u for u in updates if isinstance(u, StatusUpdate)]
    if isinstance(crm_or_ctx, Context):
        if crm_or_ctx.business_id != business_id:
            raise ValueError("the context belongs to another business")
        return _apply_in_context(crm_or_ctx, provider, updates)
    with crm_or_ctx.db.transaction(business_id) as session:
        return _apply(session, provider, updates)


@use_case(Role.MEMBER)
def _apply_in_context(ctx: Context, provider: str, updates: list[StatusUpdate]) -> StatusResult:
    return _apply(ctx.session, provider, updates)


def _apply(session: CrmSession, provider: str, updates: list[StatusUpdate]) -> StatusResult:
    ids = {u.provider_message_id for u in updates
           if isinstance(u.provider_message_id, str) and 0 < len(u.provider_message_id) <= 200}
    rows: dict[str, list[Message]] = {}
    if ids:
        # the tenant scope adds business_id = <this business> to the query
        for message in session.scalars(
            select(Message).where(Message.channel == Channel.SMS.value, Message.provider == provider,
                                  Message.provider_message_id.in_(sorted(ids)))
            .order_by(Message.id).with_for_update()
        ):
            rows.setdefault(message.provider_message_id, []).append(message)
    updated = unchanged = unknown = 0
    now = utcnow()
    for update in updates:
        found = rows.get(update.provider_message_id) if isinstance(update.provider_message_id, str) else None
        if not found:
            unknown += 1
            continue
        for message in found:
            if _move(message, update, now):
                updated += 1
            else:
                unchanged += 1
    if unknown:
        log.info("%d status report(s) from %s name no message of business %s", unknown, provider,
                 session.business_id)
    session.flush()
    return StatusResult(updated, unchanged, unknown)


def _move(message: Message, update: StatusUpdate, now: Any) -> bool:
    """Move ``message`` forward to the reported status; False when the report changes nothing."""
    new = update.status
    if new not in REPORTABLE or message.status not in RANK:
        return False  # e.g. a suppressed message, or a status this core does not know
    if RANK[new] <= RANK[message.status]:
        return False
    message.status = new
    if new == MessageStatus.DELIVERED.value:
        message.delivered_at = message.delivered_at or now
        message.error = None
    elif new == MessageStatus.FAILED.value:
        message.error = (update.error or "the provider reported the message as not delivered")[:MAX_ERROR_CHARS]
    if message.sent_at is None:
        message.sent_at = now
    return True


__all__ = ["CALLBACK_PATH", "StatusResult", "apply_status_updates", "status_callback_url"]
