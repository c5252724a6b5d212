"""Mass-mail use cases: campaigns, starting and cancelling them, the batch job, recipients.

Starting a campaign walks its audience (the saved party filter) in keyset pages of
:func:`crmcore.parties.service.list_parties` and writes, in ONE transaction, a ``Batch`` per page
(the parties of the page that have an email address) and its outbox job (kind
``mass_mail.batch``). The throttle spaces the jobs: batch *n* is due after the recipients of the
batches before it at ``throttle`` a minute, and a page never holds more than ``throttle``
parties. The job (:func:`run_batch`, run by ``crm worker``) calls the core's ``send_email`` for
each party, which writes the ``messages`` row and its own ``email`` outbox row (or a
``suppressed`` row for an opted-out address); the ``Recipient`` row, unique per (campaign,
party), is written in that same transaction, so a job that runs twice sends once. Cancelling
marks the unsent batches cancelled; a job finding its batch or campaign cancelled sends nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from crm_mass_mail import NAME
from crm_mass_mail.models import SKIPPED, Batch, BatchStatus, Campaign, CampaignStatus, Recipient
from crm_mass_mail.schemas import CampaignInput, RecipientQuery
from crmcore.context import Context, get_or_404, use_case
from crmcore.db import utcnow
from crmcore.errors import Conflict, PermissionDenied, ValidationFailed
from crmcore.messaging.models import Message, MessageStatus, MessageTemplate
from crmcore.messaging.schemas import load
from crmcore.paging import CappedCount, Page, capped_count, keyset_page
from crmcore.parties.models import ContactMechanism, Party
from crmcore.tenancy.models import Role

#: the outbox kind of a batch job
BATCH_KIND = "mass_mail.batch"
#: parties per audience page, and so at most per batch (list_parties' largest page)
PAGE_SIZE = 200
#: the template variable every mass email must carry (the messaging core fills it per recipient)
UNSUBSCRIBE_VAR = "unsubscribe_url"
#: seconds a batch job may run (200 sends take a few seconds; the rest is left to the retry)
JOB_TIMEOUT = 300.0
#: seconds kept back from a job's deadline: the rest of a batch is left to the retry
DEADLINE_MARGIN = 5.0
#: the statuses the recipients page counts and filters by (message statuses, then ours)
STATUSES = (*(s.value for s in MessageStatus), SKIPPED)


# --------------------------------------------------------------------------------------------
# validation


def _template(ctx: Context, key: str) -> MessageTemplate:
    """An active template of the business that carries the unsubscribe link."""
    found = ctx.session.scalar(select(MessageTemplate).where(MessageTemplate.key == key))
    if found is None or not found.active:
        message = f"no active message template {key!r}"
        raise ValidationFailed(message, {"template_key": [message]})
    parts = [("text", found.body_text)] + ([("HTML", found.body_html)] if found.body_html else [])
    missing = [what for what, body in parts if UNSUBSCRIBE_VAR not in (body or "")]
    if missing:
        message = (f"the template's {' and '.join(missing)} must carry the unsubscribe link: "
                   "add {{ unsubscribe_url }}")
        raise ValidationFailed(message, {"template_key": [message]})
    return found


def _audience(ctx: Context, audience: Mapping[str, Any]) -> None:
    """The audience is the core's party filter: check it with the core's own schema."""
    from crmcore.parties.service import list_parties

    try:
        list_parties(ctx, dict(audience), limit=1, with_count=False)
    except ValidationFailed as exc:
        problems = "; ".join(f"{key}: {error_text(value)}" for key, value in (exc.errors or {}).items()) or exc.message
        raise ValidationFailed(f"invalid audience: {problems}", {"audience": [problems]}) from None


def error_text(value: Any) -> str:
    """A marshmallow message (a string, a list, a nested dict) as one line."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {error_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(error_text(v) for v in value)
    return str(value)


def _checked(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    values = load(CampaignInput, dict(data), "campaign")
    _template(ctx, values["template_key"])
    _audience(ctx, values["audience"])
    return values


# --------------------------------------------------------------------------------------------
# campaigns


@use_case(Role.ADMIN)
def create_campaign(ctx: Context, data: Mapping[str, Any]) -> Campaign:
    """A draft campaign: name, template key, audience (a party filter), throttle (a minute)."""
    campaign = Campaign(**_checked(ctx, data), status=CampaignStatus.DRAFT.value)
    ctx.session.add(campaign)
    ctx.session.flush()
    return campaign


@use_case(Role.ADMIN)
def update_campaign(ctx: Context, campaign_id: int, data: Mapping[str, Any]) -> Campaign:
    campaign = get_or_404(ctx, Campaign, campaign_id, "campaign")
    if campaign.status != CampaignStatus.DRAFT:
        raise Conflict(f"the campaign is {campaign.status}: only a draft can be edited")
    for key, value in _checked(ctx, data).items():
        setattr(campaign, key, value)
    return campaign


@use_case(Role.ADMIN)
def delete_campaign(ctx: Context, campaign_id: int) -> None:
    campaign = get_or_404(ctx, Campaign, campaign_id, "campaign")
    if campaign.status == CampaignStatus.SENDING:
        raise Conflict("the campaign is sending: cancel it first")
    ctx.session.delete(campaign)


@use_case(Role.MEMBER, write=False)
def list_campaigns(ctx: Context, *, cursor: str | None = None, limit: int | None = 50) -> Page[Campaign]:
    stmt = select(Campaign)
    page = keyset_page(ctx.session, stmt, [Campaign.id], cursor=cursor, limit=limit, descending=True)
    page.total = capped_count(ctx.session, stmt)
    return page


@use_case(Role.MEMBER, write=False)
def get_campaign(ctx: Context, campaign_id: int) -> Campaign:
    return get_or_404(ctx, Campaign, campaign_id, "campaign")


@use_case(Role.MEMBER, write=False)
def audience_size(ctx: Context, campaign_id: int) -> CappedCount:
    """How many parties the audience finds now (capped; some may have no email address)."""
    from crmcore.parties.service import count_parties

    return count_parties(ctx, get_or_404(ctx, Campaign, campaign_id, "campaign").audience)


def _emails(ctx: Context, party_ids: list[int]) -> dict[int, str]:
    """The email of each party that has one: its primary, else its first."""
    rows = ctx.session.execute(
        select(ContactMechanism.party_id, ContactMechanism.value)
        .where(ContactMechanism.party_id.in_(party_ids), ContactMechanism.kind == "email")
        .order_by(ContactMechanism.party_id, ContactMechanism.is_primary.desc(), ContactMechanism.position,
                  ContactMechanism.id))
    out: dict[int, str] = {}
    for party_id, value in rows:
        out.setdefault(party_id, value)
    return out


@use_case(Role.ADMIN)
def start_campaign(ctx: Context, campaign_id: int, *, page_size: int = PAGE_SIZE) -> Campaign:
    """Queue the campaign: one batch (and one outbox job) per audience page, spaced by the
    throttle. All in this transaction: a failure queues nothing."""
    from crmcore.outbox.service import enqueue
    from crmcore.parties.service import list_parties

    campaign = get_or_404(ctx, Campaign, campaign_id, "campaign")
    if campaign.status != CampaignStatus.DRAFT:
        raise Conflict(f"the campaign is {campaign.status}: only a draft can be started")
    if not (ctx.crm.config.public_url or "").strip():
        message = ("the installation has no public_url: emails would carry no unsubscribe link "
                   "(set public_url in the configuration)")
        raise ValidationFailed(message, {"public_url": [message]})
    _template(ctx, campaign.template_key)
    _audience(ctx, campaign.audience)
    size = max(1, min(page_size, PAGE_SIZE, campaign.throttle))
    now = utcnow()
    cursor: str | None = None
    seq = queued = 0
    while True:
        page = list_parties(ctx, dict(campaign.audience), cursor=cursor, limit=size, with_count=False)
        ids = [party.id for party in page.items]
        emails = _emails(ctx, ids) if ids else {}
        with_email = [party_id for party_id in ids if party_id in emails]
        if with_email:
            delay = queued * 60.0 / campaign.throttle
            batch = Batch(campaign_id=campaign.id, seq=seq, party_ids=with_email,
                          status=BatchStatus.PENDING.value, run_at=now + _seconds(delay))
            ctx.session.add(batch)
            ctx.session.flush()
            batch.outbox_id = enqueue(ctx, BATCH_KIND, f"campaign {campaign.id}", {"batch_id": batch.id},
                                      idempotency_key=f"{BATCH_KIND}:{ctx.business_id}:{campaign.id}:{seq}",
                                      delay=delay)
            seq += 1
            queued += len(with_email)
        cursor = page.next_cursor
        if cursor is None:
            break
    campaign.batches_total, campaign.recipients_total = seq, queued
    campaign.started_at, campaign.started_by = now, ctx.user_id
    campaign.status = CampaignStatus.SENDING.value if seq else CampaignStatus.DONE.value
    if not seq:
        campaign.finished_at = now
    return campaign


def _seconds(value: float) -> Any:
    import datetime as dt

    return dt.timedelta(seconds=value)


@use_case(Role.ADMIN)
def cancel_campaign(ctx: Context, campaign_id: int) -> Campaign:
    """Stop the campaign: batches not run yet never will (a running one stops at its next
    recipient). Messages already queued are sent."""
    campaign = get_or_404(ctx, Campaign, campaign_id, "campaign")
    if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SENDING):
        raise Conflict(f"the campaign is {campaign.status} already")
    now = utcnow()
    for batch in ctx.session.scalars(select(Batch).where(Batch.campaign_id == campaign.id,
                                                         Batch.status == BatchStatus.PENDING.value)):
        batch.status, batch.done_at = BatchStatus.CANCELLED.value, now
    campaign.status, campaign.finished_at = CampaignStatus.CANCELLED.value, now
    return campaign


# --------------------------------------------------------------------------------------------
# the batch job


@use_case(Role.MEMBER, write=False)
def _batch_state(ctx: Context, batch_id: int) -> tuple[str, str, list[int]] | None:
    batch = ctx.session.get(Batch, batch_id)
    if batch is None:
        return None
    campaign = ctx.session.get(Campaign, batch.campaign_id)
    return batch.status, campaign.status if campaign else CampaignStatus.CANCELLED.value, list(batch.party_ids)


@use_case(Role.MEMBER)
def send_to_party(ctx: Context, batch_id: int, party_id: int) -> bool:
    """Send the campaign of ``batch_id`` to one party, once: the message (or a ``skipped`` line)
    and the recipient row in this one transaction. False when the campaign no longer sends.
    A second run for the same party finds the row (or hits the unique key: Conflict)."""
    from crmcore.messaging.service import send_email

    batch = get_or_404(ctx, Batch, batch_id, "batch")
    campaign = get_or_404(ctx, Campaign, batch.campaign_id, "campaign")
    if campaign.status != CampaignStatus.SENDING or batch.status != BatchStatus.PENDING:
        return False
    done = ctx.session.scalar(select(Recipient.id).where(Recipient.campaign_id == campaign.id,
                                                         Recipient.party_id == party_id))
    party = ctx.session.get(Party, party_id)
    if done is not None or party is None:  # sent already, or the party was deleted since
        return True
    recipient = Recipient(campaign_id=campaign.id, batch_id=batch.id, party_id=party.id, status=SKIPPED)
    address = _emails(ctx, [party.id]).get(party.id)
    if address is None:
        recipient.error = "the party has no email address (any more)"
    else:
        recipient.address = address[:320]
        try:
            message = send_email(ctx, to=address, template_key=campaign.template_key, party=party,
                                 to_name=party.name, event="mass_mail", variables={"campaign": campaign.name})
        except ValidationFailed as exc:
            if "template_key" in (exc.errors or {}):  # the whole campaign is stuck: the job fails, admins see why
                raise
            recipient.error = exc.message
        else:
            recipient.message_id, recipient.status = message.id, message.status
    ctx.session.add(recipient)
    ctx.session.flush()
    return True


@use_case(Role.MEMBER)
def _finish_batch(ctx: Context, batch_id: int, status: str) -> None:
    """Close the batch; the campaign is done when no batch is left to run."""
    batch = ctx.session.get(Batch, batch_id)
    if batch is None:
        return
    now = utcnow()
    if batch.status == BatchStatus.PENDING:
        batch.status, batch.done_at = status, now
        ctx.session.flush()
    campaign = ctx.session.get(Campaign, batch.campaign_id)
    if campaign is not None and campaign.status == CampaignStatus.SENDING:
        left = ctx.session.scalar(select(func.count()).select_from(Batch).where(
            Batch.campaign_id == campaign.id, Batch.status == BatchStatus.PENDING.value))
        if not left:
            campaign.status, campaign.finished_at = CampaignStatus.DONE.value, now


def run_batch(crm: Any, message: Any, deadline: float | None = None) -> None:
    """The outbox handler of ``mass_mail.batch``: send the batch's parties, each once."""
    from crmcore.outbox.service import JobDiscarded

    try:
        ctx = Context.open(crm, message.business_id, message.user_id, system=True)
    except PermissionDenied:  # the admin who started it left: the campaign still goes out
        ctx = Context.open(crm, message.business_id, None, system=True)
    try:
        if not ctx.is_enabled(NAME):
            raise JobDiscarded(f"the {NAME} plugin was disabled for this business before the batch ran")
        batch_id = int(message.payload["batch_id"])
        state = _batch_state(ctx, batch_id)
        if state is None:  # the campaign was deleted
            return
        batch_status, campaign_status, party_ids = state
        if batch_status != BatchStatus.PENDING:
            return
        if campaign_status != CampaignStatus.SENDING:
            _finish_batch(ctx, batch_id, BatchStatus.CANCELLED.value)
            return
        for party_id in party_ids:
            if deadline is not None and time.monotonic() > deadline - DEADLINE_MARGIN:
                raise TimeoutError("the batch ran out of time; the retry sends to the rest")
            try:
                if not send_to_party(ctx, batch_id, party_id):
                    break  # cancelled meanwhile
            except Conflict:
                continue  # another run of this batch sent to the party a moment ago
        _finish_batch(ctx, batch_id, BatchStatus.DONE.value)
    finally:
        ctx.close()


def move_party_rows(ctx: Context, duplicate_id: int, kept_id: int) -> int:
    """In a merge's transaction: the duplicate's recipient rows become the kept party's (as its
    messages do), except in a campaign that reached the kept party too (that row stays, so the
    key (campaign, party) holds). Returns how many moved."""
    taken = select(Recipient.campaign_id).where(Recipient.party_id == kept_id)
    rows = list(ctx.session.scalars(select(Recipient).where(Recipient.party_id == duplicate_id,
                                                            Recipient.campaign_id.not_in(taken))))
    for row in rows:
        row.party_id = kept_id
    ctx.session.flush()
    return len(rows)


# --------------------------------------------------------------------------------------------
# recipients


def _effective_status() -> Any:
    return func.coalesce(Message.status, Recipient.status)


def _recipients_stmt(campaign_id: int, status: str | None) -> Any:
    stmt = (select(Recipient).outerjoin(Message, Message.id == Recipient.message_id)
            .where(Recipient.campaign_id == campaign_id))
    if status:
        stmt = stmt.where(_effective_status() == status)
    return stmt


@use_case(Role.MEMBER, write=False)
def list_recipients(ctx: Context, campaign_id: int, filters: Mapping[str, Any] | None = None, *,
                    cursor: str | None = None, limit: int | None = 50) -> Page[Recipient]:
    """A campaign's recipients in the order they were sent to. ``extra``: ``statuses``
    ({recipient id: message status, or ours}), ``errors`` and ``parties`` ({party id: name})."""
    campaign = get_or_404(ctx, Campaign, campaign_id, "campaign")
    data = load(RecipientQuery, dict(filters or {}), "filter")
    page = keyset_page(ctx.session, _recipients_stmt(campaign.id, data["status"]), [Recipient.id],
                       cursor=cursor, limit=limit)
    message_ids = [r.message_id for r in page.items if r.message_id is not None]
    messages = {m.id: m for m in ctx.session.scalars(select(Message).where(Message.id.in_(message_ids)))} \
        if message_ids else {}
    party_ids = [r.party_id for r in page.items if r.party_id is not None]
    names = {pid: name for pid, name in ctx.session.execute(select(Party.id, Party.name).where(Party.id.in_(party_ids)))} \
        if party_ids else {}
    page.extra["statuses"] = {r.id: messages[r.message_id].status if r.message_id in messages else r.status
                              for r in page.items}
    page.extra["errors"] = {r.id: messages[r.message_id].error if r.message_id in messages else r.error
                            for r in page.items}
    page.extra["parties"] = names
    return page


@use_case(Role.MEMBER, write=False)
def recipient_counts(ctx: Context, campaign_id: int) -> dict[str, CappedCount]:
    """Recipients per status (capped counts: "1,000+")."""
    campaign = get_or_404(ctx, Campaign, campaign_id, "campaign")
    return {status: capped_count(ctx.session, _recipients_stmt(campaign.id, status)) for status in STATUSES}
