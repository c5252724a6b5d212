"""Notification rules: on an event, notify someone over a channel with a template.

A rule is (event, recipient, channel, template). :func:`notify` is the one entry point: the
core's own events arrive through the react hooks below (deal stage changed, won, lost; party
created) and a plugin raises its own by calling ``notify(ctx, "invoice.paid", record=invoice)``
inside its use case, after declaring the event in ``PluginInfo.extra["notification_events"]``
so the rules page offers it (see docs/messaging.md).

This module is also the core plugin ``core-notifications``. It is not essential and is off by
default: saving an active rule switches it on for the business. So a business without rules
pays nothing for them: its stage moves and new parties queue no outbox job for this plugin (a
plugin that is not enabled is left out of the business's hook relay). An admin may switch it off
on the plugins page to pause every rule; saving an active rule switches it on again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmcore import hookimpl
from crmcore.context import Context, get_or_404, use_case
from crmcore.errors import ValidationFailed
from crmcore.messaging import templates as tpl
from crmcore.messaging.models import Channel, Message, MessageStatus, MessageTemplate, NotificationRule
from crmcore.messaging.schemas import RECIPIENT_LABELS, RuleInput, load
from crmcore.plugins.info import PluginInfo
from crmcore.tenancy.models import Role

if TYPE_CHECKING:
    from crmcore.parties.models import Party
    from crmcore.pipelines.models import Stage
    from crmcore.records.models import Record

NAME = "core-notifications"
EXTRA_KEY = "notification_events"

PLUGIN = PluginInfo(
    title="Notification rules (core)", version="1.0",
    description="Sends the business's notification rules (Messages → Rules). Switched on when a rule is "
                "saved; switch it off to pause every rule.",
)

SUBJECTS = ("party", "contact", "record")


@dataclass(frozen=True)
class NotificationEvent:
    """An event rules can react to. ``objects`` are the subjects it carries (party, contact,
    record; the others are None in its sample); ``variables`` its own values, with samples.
    ``for_rules=False`` declares template variables only (a plugin that sends by itself, like
    mass mail): the event is not offered on the Rules page and no rule may use it."""

    key: str
    label: str
    objects: tuple[str, ...] = ("party",)
    variables: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    plugin: str | None = None
    for_rules: bool = True

    def sample(self) -> dict[str, Any]:
        return tpl.sample_context(dict(self.variables), absent=tuple(s for s in SUBJECTS if s not in self.objects))


_STAGE = {"id": 3, "name": "Proposal", "kind": "open"}
_NEXT = {"id": 4, "name": "Negotiation", "kind": "open"}

CORE_EVENTS: tuple[NotificationEvent, ...] = (
    NotificationEvent("party.created", "Party created", ("party",),
                      description="A party (organisation or person) was created."),
    NotificationEvent("deal.stage_changed", "Deal moved to another stage", SUBJECTS,
                      {"from_stage": _STAGE, "to_stage": _NEXT},
                      "A deal moved between stages (closing as won or lost included)."),
    NotificationEvent("deal.won", "Deal won", SUBJECTS, description="A deal was closed as won."),
    NotificationEvent("deal.lost", "Deal lost", SUBJECTS, {"lost_reason": "Price"},
                      "A deal was closed as lost."),
    NotificationEvent("reminder.due", "Reminder due", ("party", "record"),
                      {"reminder": {"id": 7, "title": "Call back about the quote", "description": "",
                                    "due_at": "2026-11-24T09:00:00+00:00", "assigned_to_id": 2}},
                      "A reminder fell due (announced once by the worker, within a minute); "
                      "its responsible user is the reminder's assignee."),
)


def events(ctx: Context | None) -> dict[str, NotificationEvent]:
    """The events rules may use in ctx's business: the core's, and those declared by its
    enabled plugins (every installed plugin's when ``ctx`` is None)."""
    from crmcore.plugins.manager import get_registry

    out = {event.key: event for event in CORE_EVENTS}
    registry = ctx.crm.registry if ctx is not None else get_registry()
    enabled = ctx.hooks.enabled if ctx is not None else None
    for name, plugin in sorted(registry.plugins.items()):
        if enabled is not None and name not in enabled:
            continue
        for item in plugin.info.extra.get(EXTRA_KEY, ()) or ():
            event = item if isinstance(item, NotificationEvent) else NotificationEvent(**item)
            out.setdefault(event.key, NotificationEvent(event.key, event.label, tuple(event.objects),
                                                        dict(event.variables), event.description, name,
                                                        event.for_rules))
    return out


def rule_events(ctx: Context) -> dict[str, NotificationEvent]:
    """The events a rule may react to in ctx's business (not the template-only ones)."""
    return {key: event for key, event in events(ctx).items() if event.for_rules}


# --------------------------------------------------------------------------------------------
# rules


@use_case(Role.ADMIN, write=False)
def list_rules(ctx: Context) -> list[NotificationRule]:
    return list(ctx.session.scalars(select(NotificationRule).order_by(NotificationRule.event, NotificationRule.id)))


def _checked(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    values = load(RuleInput, dict(data), "rule")
    event = rule_events(ctx).get(values["event"])
    if event is None:
        message = f"unknown event {values['event']!r}"
        raise ValidationFailed(message, {"event": [message]})
    template = ctx.session.get(MessageTemplate, values["template_id"])
    if template is None:
        message = f"template {values['template_id']} not found"
        raise ValidationFailed(message, {"template_id": [message]})
    errors = tpl.check(tpl.Parts.of(template), event.sample(), (values["channel"],))
    if values["channel"] == Channel.SMS and not errors:
        errors = _sms_problem(template, event)
    if errors:
        part, texts = next(iter(errors.items()))
        message = f"the template {template.key!r} does not render for {event.label!r} ({part}): {texts[0]}"
        raise ValidationFailed(message, {"template_id": [message]})
    return values


def _sms_problem(template: MessageTemplate, event: NotificationEvent) -> dict[str, list[str]]:
    body = tpl.render(tpl.Parts.of(template), event.sample(), channels=("sms",)).sms
    if not body:
        return {"sms_text": ["renders to an empty SMS"]}
    return {}


def _switch_on(ctx: Context) -> None:
    from crmcore.plugins.service import enable_plugin

    if NAME in ctx.crm.registry.plugins and not ctx.is_enabled(NAME):
        enable_plugin(ctx, NAME)


@use_case(Role.ADMIN)
def create_rule(ctx: Context, data: Mapping[str, Any]) -> NotificationRule:
    """Add a rule; the template must render for the event on the channel. An active rule
    switches the notification plugin on for the business."""
    values = _checked(ctx, data)
    rule = NotificationRule(**values)
    ctx.session.add(rule)
    ctx.session.flush()
    if rule.active:
        _switch_on(ctx)
    return rule


@use_case(Role.ADMIN)
def update_rule(ctx: Context, rule_id: int, data: Mapping[str, Any]) -> NotificationRule:
    rule = get_or_404(ctx, NotificationRule, rule_id, "rule")
    values = _checked(ctx, data)
    for key, value in values.items():
        setattr(rule, key, value)
    if rule.active:
        _switch_on(ctx)
    return rule


@use_case(Role.ADMIN)
def delete_rule(ctx: Context, rule_id: int) -> None:
    ctx.session.delete(get_or_404(ctx, NotificationRule, rule_id, "rule"))


# --------------------------------------------------------------------------------------------
# notify


@dataclass(frozen=True)
class Recipient:
    name: str | None
    address: str | None          # None: nobody to send to, ``missing`` says why
    missing: str | None = None
    user: bool = False


def _user_recipients(ctx: Context, user_ids: list[int], channel: str, none_reason: str) -> list[Recipient]:
    from crmcore.auth.models import User

    if not user_ids:
        return [Recipient(None, None, none_reason, user=True)]
    users = list(ctx.session.scalars(select(User).where(User.id.in_(user_ids), User.is_active.is_(True))
                                     .order_by(User.id)))
    if not users:
        return [Recipient(None, None, none_reason, user=True)]
    if channel == Channel.SMS:
        return [Recipient(u.name or u.email, None, "users have no phone number in crmcore", user=True)
                for u in users]
    return [Recipient(u.name or u.email, u.email, user=True) for u in users]


def _mechanism(ctx: Context, channel: str, *, party_id: int | None = None, contact_id: int | None = None) -> str | None:
    from crmcore.parties.models import ContactMechanism

    kinds = ("email",) if channel == Channel.EMAIL else ("mobile", "phone")
    stmt = select(ContactMechanism).where(ContactMechanism.kind.in_(kinds))
    stmt = stmt.where(ContactMechanism.party_id == party_id) if party_id is not None else \
        stmt.where(ContactMechanism.contact_id == contact_id)
    found = list(ctx.session.scalars(stmt))
    found.sort(key=lambda m: (kinds.index(m.kind), not m.is_primary, m.position, m.id))
    return found[0].value if found else None


def recipients(ctx: Context, who: str, channel: str, party: Party | None, contact: Any,
               record: Record | None, *, assignee_id: int | None = None) -> list[Recipient]:
    """Who a rule's ``recipient`` means for these subjects, with their address on ``channel``
    (``assignee_id``: the user an assigned item, such as a reminder, names as responsible)."""
    from crmcore.parties.models import PartySalesRep
    from crmcore.records.models import RecordTeamMember

    if who == "responsible_user" and assignee_id is not None:
        return _user_recipients(ctx, [assignee_id], channel, "the assignee is deactivated")
    if who == "responsible_user":
        if record is not None and record.owner_id is not None:
            return _user_recipients(ctx, [record.owner_id], channel, "the owner is deactivated")
        if party is not None:
            reps = list(ctx.session.scalars(select(PartySalesRep.user_id).where(PartySalesRep.party_id == party.id)))
            return _user_recipients(ctx, reps, channel, "no responsible user (no owner, no sales rep)")
        return [Recipient(None, None, "no responsible user (no owner, no sales rep)", user=True)]
    if who == "deal_team":
        team = list(ctx.session.scalars(select(RecordTeamMember.user_id).where(RecordTeamMember.record_id == record.id))
                    ) if record is not None else []
        return _user_recipients(ctx, team, channel, "the deal has no team")
    kind = "email address" if channel == Channel.EMAIL else "mobile or phone number"
    if contact is not None:
        address = _mechanism(ctx, channel, contact_id=contact.id)
        if address is not None:
            return [Recipient(contact.name, address)]
    if party is not None:
        address = _mechanism(ctx, channel, party_id=party.id)
        if address is not None:
            return [Recipient(contact.name if contact is not None else party.name, address)]
        return [Recipient(party.name, None, f"the client has no {kind}")]
    return [Recipient(None, None, "no client: the event is about no party")]


def _extras(objects: Mapping[str, Any]) -> dict[str, Any]:
    from crmcore.pipelines.models import Stage

    out: dict[str, Any] = {}
    for key, value in objects.items():
        if key in SUBJECTS:
            continue
        if isinstance(value, Stage):
            out[key] = tpl.stage_vars(value)
        elif getattr(type(value), "__mapper__", None) is not None:
            out[key] = {c.key: tpl.plain(getattr(value, c.key)) for c in type(value).__mapper__.column_attrs
                        if c.key != "business_id"}
        else:
            out[key] = tpl.plain(value)
    return out


@use_case(Role.READ_ONLY)
def notify(ctx: Context, event: str, **objects: Any) -> list[Message]:
    """Send what the business's active rules for ``event`` say, in the current transaction.

    ``objects``: ``party``, ``contact``, ``record`` (instances or ids; the record fills in its
    party and contact) and the event's own values (``to_stage=stage``, ``amount_due=...``),
    which templates see by their names. Every recipient gets a ``messages`` row: queued, or
    suppressed (opted out, no address) or failed (the template does not render for these
    values), so the log says what happened. Returns those rows (empty without a rule).
    """
    from crmcore.messaging import service

    rules = list(ctx.session.scalars(
        select(NotificationRule).where(NotificationRule.event == event, NotificationRule.active.is_(True))
        .order_by(NotificationRule.id)))
    if not rules:
        return []
    party, contact, record = service._subjects(ctx, objects.get("party"), objects.get("contact"), objects.get("record"))
    extra = _extras(objects)
    assignee_id = getattr(objects.get("reminder"), "assigned_to_id", None)
    sent: list[Message] = []
    for rule in rules:
        template = ctx.session.get(MessageTemplate, rule.template_id)
        if template is None or not template.active:
            continue
        for recipient in recipients(ctx, rule.recipient, rule.channel, party, contact, record,
                                    assignee_id=assignee_id):
            sent.append(_send_one(ctx, rule, template, recipient, event, party, contact, record, extra))
    return sent


def _send_one(ctx: Context, rule: NotificationRule, template: MessageTemplate, recipient: Recipient, event: str,
              party: Any, contact: Any, record: Any, extra: dict[str, Any]) -> Message:
    from crmcore.messaging import service
    from crmcore.messaging.sms import sms_parts

    channel = rule.channel
    links = {"party": party, "contact": contact if not recipient.user else None, "record": record}
    common = {"template_key": template.key, "event": event, "to_name": recipient.name, **links}
    if recipient.address is None:
        return service.write_message(ctx, channel, "", status=MessageStatus.SUPPRESSED.value,
                                     error=f"not sent: {recipient.missing}", **common)
    try:
        address = service.normalize_address(ctx, channel, recipient.address,
                                            party_id=party.id if party is not None else None)
    except ValidationFailed as exc:
        return service.write_message(ctx, channel, recipient.address, status=MessageStatus.FAILED.value,
                                     error=str(exc), **common)
    link = service.unsubscribe_url(ctx, channel, address) if channel == Channel.EMAIL else None
    context = service.build_context(ctx, party=party, contact=contact, record=record,
                                    recipient={"name": recipient.name, "address": address},
                                    extra=extra, unsubscribe_url=link)
    try:
        rendered = tpl.render(tpl.Parts.of(template), context, channels=(channel,))
        if channel == Channel.SMS:
            service.check_sms_body(rendered.sms, "template")
    except (tpl.TemplateProblem, ValidationFailed) as exc:
        return service.write_message(ctx, channel, address, status=MessageStatus.FAILED.value,
                                     error=f"the template {template.key!r} did not render: {exc}", **common)
    if channel == Channel.EMAIL:
        return service.write_message(ctx, channel, address, subject=rendered.subject[:300], body_text=rendered.text,
                                     body_html=rendered.html, **common)
    return service.write_message(ctx, channel, address, body_text=rendered.sms,
                                 segments=sms_parts(rendered.sms).segments, **common)


def recipient_choices() -> list[tuple[str, str]]:
    return list(RECIPIENT_LABELS.items())


# --------------------------------------------------------------------------------------------
# the core's events, from its react hooks (only where this plugin is enabled)


@hookimpl
def crm_after_party_created(ctx: Context, party: Party) -> None:
    notify(ctx, "party.created", party=party)


@hookimpl
def crm_after_stage_change(ctx: Context, record: Record, from_stage: Stage | None, to_stage: Stage) -> None:
    if record.type == "deal":
        notify(ctx, "deal.stage_changed", record=record, from_stage=from_stage, to_stage=to_stage)


@hookimpl
def crm_after_record_won(ctx: Context, record: Record) -> None:
    if record.type == "deal":
        notify(ctx, "deal.won", record=record)


@hookimpl
def crm_after_record_lost(ctx: Context, record: Record, lost_reason: str | None) -> None:
    if record.type == "deal":
        notify(ctx, "deal.lost", record=record, lost_reason=lost_reason)


def _register_reminder_scan() -> None:
    """Every worker announces reminders that fell due (crmcore.messaging.reminders)."""
    from crmcore.messaging.reminders import announce_due_reminders
    from crmcore.outbox.service import register_periodic

    register_periodic("reminders.due", announce_due_reminders, interval=REMINDER_SCAN_SECONDS)


#: how often a worker looks for reminders that fell due
REMINDER_SCAN_SECONDS = 30.0
_register_reminder_scan()
