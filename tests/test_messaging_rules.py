"""Notification rules: validation, who receives what on each core event, opt-outs, plugin events
raised with ``notify``, and that a business without rules pays nothing for them."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from crmcore import PluginInfo
from crmcore.context import use_case
from crmcore.errors import PermissionDenied, ValidationFailed
from crmcore.messaging import rules
from crmcore.messaging import service as messaging
from crmcore.messaging.rules import NotificationEvent, notify
from crmcore.parties.service import create_contact, create_party
from crmcore.pipelines.service import list_pipelines
from crmcore.plugins.service import disable_plugin
from crmcore.records.service import add_team_member, close_lost, close_won, create_record, move_stage
from crmcore.tenancy.models import Role


def log(ctx):
    return [(m.event, m.channel, m.to_address, m.status) for m in reversed(messaging.list_messages(ctx).items)]


def template_id(ctx, key):
    return next(t.id for t in messaging.list_templates(ctx) if t.key == key)


def rule(ctx, event, recipient, channel="email", key=None, active=True):
    return rules.create_rule(ctx, {"event": event, "recipient": recipient, "channel": channel,
                                   "template_id": template_id(ctx, key or event), "active": active})


@pytest.fixture
def world(ctx, make_user):
    """Templates, a rep, a client with a contact and a deal owned by the rep."""
    messaging.seed_default_templates(ctx)
    rep = make_user(ctx.business, "member", email="anna@acme.example")
    party = create_party(ctx, {"kind": "organisation", "name": "Meadow Farms", "sales_rep_ids": [rep.user_id],
                               "mechanisms": [{"kind": "email", "value": "info@meadow.example"},
                                              {"kind": "phone", "value": "+32 2 555 12 12"}]})
    contact = create_contact(ctx, {"party_id": party.id, "first_name": "Maria", "last_name": "Schmidt",
                                   "mechanisms": [{"kind": "email", "value": "maria@meadow.example"},
                                                  {"kind": "mobile", "value": "+32 470 12 34 56"}]})
    deal = create_record(ctx, "deal", {"title": "Excavator EX-140", "party_id": party.id, "contact_id": contact.id,
                                       "owner_id": rep.user_id})
    return {"rep": rep, "party": party, "contact": contact, "deal": deal}


def outbox_topics(crm):
    with crm.db.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("select plugin from outbox where kind = 'hook' order by id"))]


def test_a_business_without_rules_queues_nothing_for_them(ctx, world):
    assert not ctx.is_enabled(rules.NAME)
    close_won(ctx, world["deal"].id)
    create_party(ctx, {"kind": "person", "first_name": "Jo", "last_name": "Doe"})
    assert rules.NAME not in outbox_topics(ctx.crm) and log(ctx) == []


def test_saving_an_active_rule_switches_the_rules_on(ctx, world):
    rule(ctx, "deal.won", "client_contact", active=False)
    assert not ctx.is_enabled(rules.NAME)
    rule(ctx, "deal.lost", "responsible_user")
    assert ctx.is_enabled(rules.NAME)


def test_deal_won_notifies_the_client_contact_by_email_and_sms(ctx, world):
    rule(ctx, "deal.won", "client_contact")
    rule(ctx, "deal.won", "client_contact", channel="sms")
    close_won(ctx, world["deal"].id)
    assert log(ctx) == [("deal.won", "email", "maria@meadow.example", "queued"),
                        ("deal.won", "sms", "+32470123456", "queued")]
    email = messaging.list_messages(ctx, {"channel": "email"}).items[0]
    assert email.subject == "Thank you for your order: Excavator EX-140"
    assert email.to_name == "Maria Schmidt" and email.record_id == world["deal"].id
    assert email.template_key == "deal.won" and email.contact_id == world["contact"].id


def test_the_responsible_user_and_the_team(ctx, world, make_user):
    helper = make_user(ctx.business, "member", email="tom@acme.example")
    add_team_member(ctx, world["deal"].id, helper.user_id)
    rule(ctx, "deal.lost", "responsible_user")
    rule(ctx, "deal.lost", "deal_team", key="deal.lost")
    close_lost(ctx, world["deal"].id, "price")
    assert log(ctx) == [("deal.lost", "email", "anna@acme.example", "queued"),
                        ("deal.lost", "email", "tom@acme.example", "queued")]
    first = messaging.list_messages(ctx).items[-1]
    assert first.subject == "Lost: Excavator EX-140 (Price)" and first.contact_id is None


def test_stage_changes_carry_the_stages(ctx, world):
    rule(ctx, "deal.stage_changed", "responsible_user")
    stages = [s for s in next(p for p in list_pipelines(ctx, "deal") if p.is_default).stages if s.kind == "open"]
    target = stages[1]
    move_stage(ctx, world["deal"].id, target.id)
    (message,) = messaging.list_messages(ctx).items
    assert message.subject == f"Excavator EX-140: {stages[0].name} → {target.name}"
    assert "by Acme Equipment Owner" in message.body_text


def test_a_new_party_welcomes_its_own_address(ctx, world):
    rule(ctx, "party.created", "client_contact")
    rule(ctx, "party.created", "responsible_user", channel="sms")
    create_party(ctx, {"kind": "organisation", "name": "Brightdale Rentals", "sales_rep_ids": [world["rep"].user_id],
                       "mechanisms": [{"kind": "email", "value": "hello@brightdale.example"}]})
    assert log(ctx) == [("party.created", "email", "hello@brightdale.example", "queued"),
                        ("party.created", "sms", "", "suppressed")]
    suppressed = messaging.list_messages(ctx, {"status": "suppressed"}).items[0]
    assert suppressed.error == "not sent: users have no phone number in crmcore"


def test_nobody_to_send_to_is_logged_not_lost(ctx, world):
    rule(ctx, "deal.won", "deal_team")
    rule(ctx, "deal.won", "client_contact", channel="sms")
    orphan = create_record(ctx, "deal", {"title": "No client yet"})
    close_won(ctx, orphan.id)
    assert log(ctx) == [("deal.won", "email", "", "suppressed"), ("deal.won", "sms", "", "suppressed")]
    errors = sorted(m.error for m in messaging.list_messages(ctx).items)
    assert errors == ["not sent: no client: the event is about no party", "not sent: the deal has no team"]


def test_the_client_contact_opt_out_is_honoured(ctx, world):
    rule(ctx, "deal.won", "client_contact")
    rule(ctx, "deal.won", "client_contact", channel="sms")
    messaging.opt_out(ctx, "email", "maria@meadow.example")
    messaging.opt_out(ctx, "sms", "+32470123456")
    close_won(ctx, world["deal"].id)
    assert [row[3] for row in log(ctx)] == ["suppressed", "suppressed"]


def test_without_a_contact_the_party_address_is_used(ctx, world):
    rule(ctx, "deal.won", "client_contact", channel="sms")
    deal = create_record(ctx, "deal", {"title": "Mower", "party_id": world["party"].id})
    close_won(ctx, deal.id)
    assert log(ctx) == [("deal.won", "sms", "+3225551212", "queued")]


def test_a_template_that_fails_for_the_actual_values_is_logged_as_failed(ctx, world):
    bad = messaging.create_template(ctx, {"key": "custom.won", "name": "Assumes a job title",
                                          "subject": "Won {{ record.title }}",
                                          "body_text": "Dear {{ contact.job_title.lower() }}"})
    rules.create_rule(ctx, {"event": "deal.won", "recipient": "client_contact", "channel": "email",
                            "template_id": bad.id})
    close_won(ctx, world["deal"].id)
    (message,) = messaging.list_messages(ctx).items
    assert message.status == "failed" and "custom.won" in message.error and ".lower is empty" in message.error


# --------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(("data", "field"), [
    ({"event": "deal.exploded", "recipient": "client_contact", "channel": "email"}, "event"),
    ({"event": "deal.won", "recipient": "the_boss", "channel": "email"}, "recipient"),
    ({"event": "deal.won", "recipient": "client_contact", "channel": "fax"}, "channel"),
    ({"event": "deal.won", "recipient": "client_contact", "channel": "email", "template_id": 987654}, "template_id"),
    ({"event": "deal.won", "recipient": "client_contact", "channel": "email", "template_id": "x"}, "template_id"),
])
def test_bad_rules_are_refused_by_field(ctx, world, data, field):
    data.setdefault("template_id", template_id(ctx, "deal.won"))
    with pytest.raises(ValidationFailed) as raised:
        rules.create_rule(ctx, data)
    assert field in raised.value.errors
    assert rules.list_rules(ctx) == []


def test_a_template_must_render_for_the_rules_event(ctx, world):
    with pytest.raises(ValidationFailed) as raised:  # party.created has no record to move
        rules.create_rule(ctx, {"event": "party.created", "recipient": "client_contact", "channel": "email",
                                "template_id": template_id(ctx, "deal.stage_changed")})
    assert "does not render for 'Party created'" in raised.value.errors["template_id"][0]
    messaging.create_template(ctx, {"key": "no-sms", "name": "x", "subject": "s", "body_text": "{{ '' }}",
                                    "sms_text": "{% if false %}x{% endif %}"})
    with pytest.raises(ValidationFailed) as raised:
        rules.create_rule(ctx, {"event": "deal.won", "recipient": "client_contact", "channel": "sms",
                                "template_id": template_id(ctx, "no-sms")})
    assert "empty SMS" in raised.value.errors["template_id"][0]


def test_a_template_in_use_keeps_rendering_for_its_rules(ctx, world):
    r = rule(ctx, "party.created", "client_contact")
    with pytest.raises(ValidationFailed) as raised:
        messaging.update_template(ctx, r.template_id, {"key": "party.created", "name": "x", "subject": "{{ record.title }}",
                                                       "body_text": "t"})
    assert "subject" in raised.value.errors
    from crmcore.errors import Conflict

    with pytest.raises(Conflict, match="1 notification rule"):
        messaging.delete_template(ctx, r.template_id)


def test_rules_are_for_admins(ctx, world):
    with pytest.raises(PermissionDenied):
        rules.create_rule(world["rep"], {"event": "deal.won", "recipient": "client_contact", "channel": "email",
                                         "template_id": template_id(ctx, "deal.won")})
    with pytest.raises(PermissionDenied):
        rules.list_rules(world["rep"])


def test_rules_update_and_delete(ctx, world):
    r = rule(ctx, "deal.won", "client_contact")
    rules.update_rule(ctx, r.id, {"event": "deal.won", "recipient": "responsible_user", "channel": "email",
                                  "template_id": r.template_id, "active": False})
    close_won(ctx, world["deal"].id)
    assert log(ctx) == []
    rules.delete_rule(ctx, r.id)
    assert rules.list_rules(ctx) == []


def test_pausing_the_plugin_pauses_every_rule(ctx, world):
    rule(ctx, "deal.won", "client_contact")
    disable_plugin(ctx, rules.NAME)
    close_won(ctx, world["deal"].id)
    assert log(ctx) == []


def test_each_business_has_its_own_rules(ctx, other_ctx, world):
    rule(ctx, "party.created", "client_contact")
    messaging.seed_default_templates(other_ctx)
    create_party(other_ctx, {"kind": "organisation", "name": "Theirs",
                             "mechanisms": [{"kind": "email", "value": "x@theirs.example"}]})
    assert log(other_ctx) == [] and log(ctx) == []
    with pytest.raises(ValidationFailed):  # another business's template is "not found"
        rules.create_rule(other_ctx, {"event": "deal.won", "recipient": "client_contact", "channel": "email",
                                      "template_id": template_id(ctx, "deal.won")})


# --------------------------------------------------------------------------------------------
# plugins raise their own events


class Invoicing:
    PLUGIN = PluginInfo(title="Invoicing (test)", extra={"notification_events": [
        NotificationEvent("invoice.paid", "Invoice paid", ("party", "record"), {"amount_paid": "120.00"}),
        {"key": "invoice.overdue", "label": "Invoice overdue", "objects": ("party",), "variables": {"days": 14}},
    ]})


def test_a_plugin_declares_events_and_raises_them_with_notify(ctx, other_ctx, world, register_plugin):
    assert "invoice.paid" not in rules.events(ctx)
    name = register_plugin(Invoicing(), name="invoicing-test", enable_for=ctx)
    catalogue = rules.events(ctx)
    assert catalogue["invoice.paid"].plugin == name and catalogue["invoice.overdue"].variables == {"days": 14}
    assert "invoice.paid" not in rules.events(other_ctx)  # not enabled there
    messaging.create_template(ctx, {"key": "invoice.paid", "name": "Paid", "subject": "We received {{ amount_paid }}",
                                    "body_text": "Thank you, {{ party.name }}."})
    rule(ctx, "invoice.paid", "client_contact")

    @use_case(Role.MEMBER)
    def register_payment(ctx, deal_id):
        return notify(ctx, "invoice.paid", record=deal_id, amount_paid="120.00")

    (message,) = register_payment(ctx, world["deal"].id)
    assert message.subject == "We received 120.00" and message.body_text == "Thank you, Meadow Farms."
    assert message.event == "invoice.paid" and message.to_address == "maria@meadow.example"
    assert notify(ctx, "invoice.overdue", party=world["party"]) == []  # no rule: nothing
