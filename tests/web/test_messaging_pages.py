"""The message pages: the log for members, templates / rules / opt-outs for admins, the public
unsubscribe page, escaping, CSRF, isolation between businesses, and a real browser editing a
template and seeing its preview."""

from __future__ import annotations

import dataclasses
import re

import pytest

from crmcore.messaging import rules
from crmcore.messaging import service as messaging
from crmcore.parties.service import create_party
from crmcore.testing import CrmClient


def page_text(response):
    return response.get_data(as_text=True)


@pytest.fixture
def seeded(ctx):
    messaging.seed_default_templates(ctx)
    return {t.key: t for t in messaging.list_templates(ctx)}


def login_as(app, context):
    client = CrmClient(app.test_client())
    assert client.login(context.user.email).status_code == 302
    return client


# --------------------------------------------------------------------------------------------
# the log


def test_the_log_lists_filters_and_pages(client, ctx):
    for i in range(3):
        messaging.send_email(ctx, to=f"p{i}@b.example", subject=f"Offer {i}", text="t")
    messaging.send_sms(ctx, to="+32470123456", text="Pick-up ready")
    html = page_text(client.get("/messages/"))
    assert all(f"Offer {i}" in html for i in range(3)) and "Pick-up ready" in html
    sms_only = page_text(client.get("/messages/?channel=sms"))
    assert "Pick-up ready" in sms_only and "Offer 0" not in sms_only
    first = client.get("/messages/?limit=2&channel=email")
    assert first.status_code == 200
    bad = client.get("/messages/?status=lost")
    assert bad.status_code == 422 and "status" in page_text(bad)
    assert client.get("/messages/?cursor=tampered").status_code == 422


def test_the_log_pages_by_keyset(client, ctx):
    for i in range(55):
        messaging.send_sms(ctx, to="+32470123456", text=f"number {i:02d}")
    first = page_text(client.get("/messages/"))
    assert "number 54" in first and "number 04" not in first and "55 messages" in first
    cursor = re.search(r'href="([^"]*cursor=[^"]+)"', first).group(1).replace("&amp;", "&")
    second = page_text(client.get(cursor))
    assert "number 04" in second and "number 54" not in second


def test_a_message_page_and_its_html_in_a_sandbox(client, ctx):
    message = messaging.send_email(ctx, to="a@b.example", subject="<script>alert(1)</script> offer",
                                   text="plain <b>text</b>", html="<p onclick='x()'>Hi</p><script>bad()</script>")
    response = client.get(f"/messages/{message.id}")
    html = page_text(response)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; offer" in html and "<script>alert(1)" not in html
    assert "plain &lt;b&gt;text&lt;/b&gt;" in html and "bad()" not in html
    assert f'src="/messages/{message.id}/html"' in html and "sandbox" in html
    body = client.get(f"/messages/{message.id}/html")
    assert body.status_code == 200 and "sandbox" in body.headers["Content-Security-Policy"]
    assert "script-src" not in body.headers["Content-Security-Policy"]  # default-src 'none' covers it
    assert body.headers["X-Frame-Options"] == "SAMEORIGIN"
    text_only = messaging.send_email(ctx, to="a@b.example", subject="s", text="t")
    assert client.get(f"/messages/{text_only.id}/html").status_code == 404


def test_the_party_timeline_shows_messages_with_their_status(client, ctx):
    party = create_party(ctx, {"kind": "organisation", "name": "Meadow Farms"})
    message = messaging.send_email(ctx, to="a@meadow.example", subject="Your offer", text="t", party=party)
    html = page_text(client.get(f"/parties/{party.id}"))
    assert "Email to a@meadow.example: Your offer" in html
    assert f'href="/messages/{message.id}"' in html and "msg-queued" in html


def test_members_see_the_log_but_not_the_settings(app, ctx, make_user):
    member = login_as(app, make_user(ctx.business, "member"))
    assert member.get("/messages/").status_code == 200
    for url in ("/messages/templates", "/messages/rules", "/messages/opt-outs", "/messages/templates/new"):
        assert member.get(url).status_code == 403
    assert member.post("/messages/opt-outs", {"channel": "email", "address": "a@b.example"}).status_code == 403
    reader = login_as(app, make_user(ctx.business, "read_only"))
    assert reader.get("/messages/").status_code == 403
    assert "Messages" not in page_text(reader.get("/parties/"))


# --------------------------------------------------------------------------------------------
# templates


def test_a_template_with_a_typo_is_refused_beside_the_field(client, ctx):
    response = client.post("/messages/templates/new", {
        "key": "welcome", "name": "Welcome", "subject": "Hello {{ party.nmae }}", "body_text": "Hi",
        "body_html": "", "sms_text": "", "active": "1", "action": "save"})
    html = page_text(response)
    assert response.status_code == 422
    error = re.search(r'<span class="field-error" id="template-subject-err"[^>]*>([^<]*)</span>', html)
    assert error and "no field &#39;nmae&#39; here" in error.group(1)
    assert 'value="Hello {{ party.nmae }}"' in html  # what was typed is kept
    assert messaging.list_templates(ctx) == []


def test_preview_then_save_a_template(client, ctx):
    form = {"key": "deal.won", "name": "Thanks", "subject": "Thanks for {{ record.title }}",
            "body_text": "Dear {{ recipient.name }}", "body_html": "<p>{{ party.name }}</p>",
            "sms_text": "{{ business.name }}: thanks!", "active": "1"}
    preview = client.post("/messages/templates/new", {**form, "action": "preview"})
    html = page_text(preview)
    assert preview.status_code == 200
    assert '<span id="preview-subject">Thanks for Excavator EX-140</span>' in html
    assert 'srcdoc="&lt;p&gt;Meadow Farms&lt;/p&gt;"' in html
    assert "23 characters, GSM-7, 1 part" in html
    assert messaging.list_templates(ctx) == []  # a preview saves nothing
    saved = client.post("/messages/templates/new", {**form, "action": "save"})
    assert saved.status_code == 302
    (template,) = messaging.list_templates(ctx)
    assert template.subject == "Thanks for {{ record.title }}"
    edit = client.post(f"/messages/templates/{template.id}", {**form, "subject": "Merci", "action": "save"})
    assert edit.status_code == 302 and messaging.get_template(ctx, template.id).subject == "Merci"
    assert client.post(f"/messages/templates/{template.id}/delete").status_code == 302
    assert messaging.list_templates(ctx) == []


def test_default_templates_from_the_list(client, ctx):
    html = page_text(client.get("/messages/templates"))
    assert "No templates yet" in html
    assert client.post("/messages/templates/defaults").status_code == 302
    html = page_text(client.get("/messages/templates"))
    assert "deal.won" in html and "Deal won" in html


def test_forms_need_the_csrf_token(client):
    response = client.raw.post("/messages/opt-outs", data={"channel": "email", "address": "a@b.example"})
    assert response.status_code == 400


# --------------------------------------------------------------------------------------------
# rules and opt-outs


def test_rules_page_adds_and_refuses_by_field(client, ctx, seeded):
    html = page_text(client.get("/messages/rules"))
    assert "Notification rules are paused" in html
    bad = client.post("/messages/rules", {"event": "party.created", "recipient": "client_contact",
                                          "channel": "email", "template_id": str(seeded["deal.stage_changed"].id),
                                          "active": "1"})
    assert bad.status_code == 422
    assert re.search(r'id="new-rule-template_id-err"[^>]*>[^<]*does not render', page_text(bad))
    good = client.post("/messages/rules", {"event": "deal.won", "recipient": "client_contact", "channel": "sms",
                                           "template_id": str(seeded["deal.won"].id), "active": "1"})
    assert good.status_code == 302
    (rule,) = rules.list_rules(ctx)
    assert (rule.event, rule.channel) == ("deal.won", "sms") and ctx.is_enabled(rules.NAME)
    assert "Notification rules are paused" not in page_text(client.get("/messages/rules"))
    off = client.post(f"/messages/rules/{rule.id}", {"event": "deal.won", "recipient": "responsible_user",
                                                    "channel": "email", "template_id": str(rule.template_id),
                                                    "active": ""})
    assert off.status_code == 302
    assert not rules.list_rules(ctx)[0].active
    assert client.post(f"/messages/rules/{rule.id}/delete").status_code == 302
    assert rules.list_rules(ctx) == []


def test_opt_outs_page(client, ctx):
    bad = client.post("/messages/opt-outs", {"channel": "sms", "address": "12", "reason": ""})
    assert bad.status_code == 422 and 'id="opt-out-address-err"' in page_text(bad)
    assert client.post("/messages/opt-outs", {"channel": "email", "address": "Maria@Meadow.example",
                                              "reason": "asked"}).status_code == 302
    html = page_text(client.get("/messages/opt-outs?channel=email"))
    assert "maria@meadow.example" in html and "asked" in html
    (opt,) = messaging.list_opt_outs(ctx).items
    assert client.post(f"/messages/opt-outs/{opt.id}/delete").status_code == 302
    assert messaging.list_opt_outs(ctx).items == []


# --------------------------------------------------------------------------------------------
# the public unsubscribe page


def test_unsubscribing_needs_no_login_and_one_click(app, anon_client, ctx):
    token = messaging.unsubscribe_token(ctx, "email", "maria@meadow.example")
    shown = anon_client.get(f"/unsubscribe/{token}")
    html = page_text(shown)
    assert shown.status_code == 200 and "Acme Equipment" in html and "maria@meadow.example" in html
    assert 'id="unsubscribe-confirm"' in html
    assert messaging.list_opt_outs(ctx).items == []  # looking is not unsubscribing
    # a mail client's one-click POST carries no CSRF token and no session
    done = app.test_client().post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "You are unsubscribed" in page_text(done)
    again = app.test_client().post(f"/unsubscribe/{token}")
    assert again.status_code == 200 and len(messaging.list_opt_outs(ctx).items) == 1
    assert "already receives no emails" in page_text(anon_client.get(f"/unsubscribe/{token}"))
    assert anon_client.get(f"/unsubscribe/{token[:-3]}abc").status_code == 404
    assert anon_client.post("/unsubscribe/not-a-token").status_code == 404


def test_a_sent_email_carries_a_working_link(app, anon_client, ctx):
    ctx.crm.config = dataclasses.replace(ctx.crm.config, public_url="https://crm.example.test")
    messaging.seed_default_templates(ctx)
    party = create_party(ctx, {"kind": "organisation", "name": "Meadow Farms"})
    message = messaging.send_email(ctx, to="info@meadow.example", template_key="party.created", party=party)
    link = re.search(r"https://crm\.example\.test(/unsubscribe/\S+)", message.body_text).group(1)
    assert app.test_client().post(link).status_code == 200
    assert messaging.find_opt_out_now(ctx, "email", "INFO@meadow.example") is not None


# --------------------------------------------------------------------------------------------
# isolation


@pytest.fixture
def theirs(other_ctx):
    messaging.seed_default_templates(other_ctx)
    template = next(t for t in messaging.list_templates(other_ctx) if t.key == "deal.won")
    rule = rules.create_rule(other_ctx, {"event": "deal.won", "recipient": "client_contact", "channel": "email",
                                         "template_id": template.id})
    message = messaging.send_email(other_ctx, to="x@globex.example", subject="Theirs", text="t", html="<p>t</p>")
    opt = messaging.opt_out(other_ctx, "email", "y@globex.example")
    return {"template": template, "rule": rule, "message": message, "opt": opt}


def test_another_business_objects_are_not_found_on_every_page(client, ctx, other_ctx, theirs):
    t, r, m, o = theirs["template"].id, theirs["rule"].id, theirs["message"].id, theirs["opt"].id
    for url in (f"/messages/{m}", f"/messages/{m}/html", f"/messages/templates/{t}"):
        assert client.get(url).status_code == 404, url
    writes = {f"/messages/templates/{t}": {"key": "x", "name": "x", "subject": "x", "body_text": "x",
                                            "action": "save"},
              f"/messages/templates/{t}/delete": {},
              f"/messages/rules/{r}": {"event": "deal.won", "recipient": "client_contact", "channel": "email",
                                       "template_id": str(t)},
              f"/messages/rules/{r}/delete": {},
              f"/messages/opt-outs/{o}/delete": {}}
    for url, data in writes.items():
        assert client.post(url, data).status_code == 404, url
    log = page_text(client.get("/messages/"))
    assert "Theirs" not in log and "x@globex.example" not in log
    assert "y@globex.example" not in page_text(client.get("/messages/opt-outs"))
    assert f'id="template-{t}"' not in page_text(client.get("/messages/templates"))
    # nothing of theirs changed
    assert messaging.get_template(other_ctx, t).key == "deal.won"
    assert len(rules.list_rules(other_ctx)) == 1 and len(messaging.list_opt_outs(other_ctx).items) == 1


def test_a_rule_cannot_point_at_another_business_template(client, ctx, theirs):
    response = client.post("/messages/rules", {"event": "deal.won", "recipient": "client_contact", "channel": "email",
                                               "template_id": str(theirs["template"].id), "active": "1"})
    assert response.status_code == 422 and rules.list_rules(ctx) == []


# --------------------------------------------------------------------------------------------
# in a real browser


def test_edit_a_template_and_see_the_preview(page, ctx):
    from tests.web.test_browser import login

    messaging.seed_default_templates(ctx)
    template = next(t for t in messaging.list_templates(ctx) if t.key == "deal.won")
    login(page)
    page.goto("/messages/templates")
    page.click(f"#template-{template.id} a")
    page.fill("#template-subject", "Congratulations {{ party.nmae }}")
    page.click("button[value=preview]")
    error = page.wait_for_selector("#template-subject-err")
    assert "no field 'nmae' here" in error.inner_text()
    assert page.input_value("#template-subject") == "Congratulations {{ party.nmae }}"
    page.fill("#template-subject", "Congratulations {{ party.name }} on {{ record.title }}")
    page.fill("#template-sms_text", "Merci {{ recipient.name }}! Ça roule ✓")
    page.click("button[value=preview]")
    page.wait_for_selector("#preview")
    assert page.inner_text("#preview-subject") == "Congratulations Meadow Farms on Excavator EX-140"
    assert page.inner_text("#preview-sms") == "Merci Maria Schmidt! Ça roule ✓"
    assert "UCS-2" in page.inner_text("#preview-sms-parts")
    frame = page.frame_locator("#preview-html")
    assert "thank you for choosing Acme Equipment" in frame.locator("body").inner_text()
    assert messaging.get_template(ctx, template.id).subject.startswith("Thank you")  # not saved by a preview
    page.click("button[value=save]")
    page.wait_for_selector(".flash-success")
    assert messaging.get_template(ctx, template.id).subject == "Congratulations {{ party.name }} on {{ record.title }}"


def test_ids_beyond_64_bits_are_simply_not_found(client):
    huge = 2**70
    for url in (f"/messages/{huge}", f"/messages/{huge}/html", f"/messages/templates/{huge}"):
        assert client.get(url).status_code == 404, url
    for url in (f"/messages/rules/{huge}/delete", f"/messages/opt-outs/{huge}/delete",
                f"/messages/templates/{huge}/delete"):
        assert client.post(url).status_code == 404, url
    assert client.get(f"/messages/?party_id={huge}").status_code == 422
