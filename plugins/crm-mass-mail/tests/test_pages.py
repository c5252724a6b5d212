"""The pages through the real Flask app: the form with its field errors and CSRF, start and
cancel, the recipients page, roles, and another business's campaign answering 404."""

from __future__ import annotations

import re

from crm_mass_mail import service
from sqlalchemy import text

from crmcore.messaging import service as messaging
from crmcore.parties.service import create_party
from crmcore.testing import CrmClient


def form(**changes):
    data = {"name": "Autumn <news>", "template_key": "newsletter", "throttle": "120", "f_kind": "organisation",
            "f_q": "", "f_tag": "", "f_is_customer": "", "f_is_prospect": "", "f_is_supplier": "", "audience": ""}
    data.update(changes)
    return data


def count(crm, sql):
    with crm.db.engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def test_create_start_and_follow_a_campaign(mm, client):
    create_party(mm, {"kind": "organisation", "name": "Meadow <Farms>",
                      "mechanisms": [{"kind": "email", "value": "info@meadow.example"}]})
    page = client.get("/mass-mail/new")
    assert page.status_code == 200 and 'name="csrf_token"' in page.get_data(as_text=True)
    saved = client.post("/mass-mail/new", form())
    assert saved.status_code == 302
    campaign_id = int(re.search(r"/mass-mail/(\d+)$", saved.headers["Location"]).group(1))
    detail = client.get(f"/mass-mail/{campaign_id}").get_data(as_text=True)
    assert "Autumn &lt;news&gt;" in detail and "Start sending" in detail and "<news>" not in detail
    assert client.post(f"/mass-mail/{campaign_id}/start").status_code == 302
    detail = client.get(f"/mass-mail/{campaign_id}").get_data(as_text=True)
    assert 'id="campaign-status">done<' in detail
    listing = client.get(f"/mass-mail/{campaign_id}/recipients").get_data(as_text=True)
    assert "info@meadow.example" in listing and "Meadow &lt;Farms&gt;" in listing and "queued" in listing
    assert client.get(f"/mass-mail/{campaign_id}/recipients?status=sent").status_code == 200
    assert client.get(f"/mass-mail/{campaign_id}/recipients?status=bogus").status_code == 422
    assert client.get(f"/mass-mail/{campaign_id}/recipients?cursor=garbage").status_code == 422
    assert "Autumn &lt;news&gt;" in client.get("/mass-mail/").get_data(as_text=True)
    # started: the edit page sends back to the campaign, a second start is refused with a message
    assert client.get(f"/mass-mail/{campaign_id}/edit").status_code == 302
    again = client.post(f"/mass-mail/{campaign_id}/start", follow_redirects=True).get_data(as_text=True)
    assert "only a draft can be started" in again


def test_the_form_shows_each_error_beside_its_field(mm, client):
    response = client.post("/mass-mail/new", form(name="", throttle="0", audience="{not json"))
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="campaign-audience-err"' in body and "not JSON" in body
    response = client.post("/mass-mail/new", form(name="", throttle="20000", template_key="nope"))
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    for field in ("name", "throttle"):
        assert f'id="campaign-{field}-err"' in body
    assert "1 to 10,000" in body
    response = client.post("/mass-mail/new", form(template_key="nope"))
    assert response.status_code == 422 and 'id="campaign-template_key-err"' in response.get_data(as_text=True)
    response = client.post("/mass-mail/new", form(audience='{"kind": "alien"}', f_kind=""))
    assert response.status_code == 422 and 'id="campaign-audience-err"' in response.get_data(as_text=True)
    assert count(mm.crm, "select count(*) from mass_mail_campaigns") == 0


def test_the_form_keeps_the_audience_when_edited(mm, client):
    campaign = service.create_campaign(mm, {"name": "N", "template_key": "newsletter", "throttle": 5,
                                            "audience": {"is_customer": True, "tag": ["vip", "north"],
                                                         "language": "de"}})
    page = client.get(f"/mass-mail/{campaign.id}/edit").get_data(as_text=True)
    assert 'value="vip, north"' in page and "&#34;language&#34;: &#34;de&#34;" in page
    saved = client.post(f"/mass-mail/{campaign.id}/edit", form(f_tag="vip", f_is_customer="true",
                                                                   audience='{"language": "de"}'))
    assert saved.status_code == 302
    mm.session.rollback()
    assert service.get_campaign(mm, campaign.id).audience == {"language": "de", "tag": "vip", "is_customer": True,
                                                              "kind": "organisation"}


def test_a_post_without_the_csrf_token_is_refused(mm, client):
    response = client.raw.post("/mass-mail/new", data=form())
    assert response.status_code == 400
    assert count(mm.crm, "select count(*) from mass_mail_campaigns") == 0


def test_members_view_but_do_not_write(mm, app, business, make_user):
    campaign = service.create_campaign(mm, {"name": "N", "template_key": "newsletter", "throttle": 5})
    member = make_user(business, "member")
    c = CrmClient(app.test_client())
    assert c.login(member.user.email).status_code == 302
    assert c.get("/mass-mail/").status_code == 200
    assert "New campaign" not in c.get("/mass-mail/").get_data(as_text=True)
    assert c.get(f"/mass-mail/{campaign.id}").status_code == 200
    assert c.get(f"/mass-mail/{campaign.id}/recipients").status_code == 200
    assert c.get("/mass-mail/new").status_code == 403
    assert c.post("/mass-mail/new", form()).status_code == 403
    assert c.post(f"/mass-mail/{campaign.id}/start").status_code == 403
    assert count(mm.crm, "select status from mass_mail_campaigns") == "draft"


def test_another_business_campaign_is_404(mm, client, other_ctx):
    from crmcore.messaging import service as messaging
    from crmcore.plugins.service import enable_plugin

    from .conftest import NEWSLETTER  # noqa: TID252
    enable_plugin(other_ctx, "mass-mail")
    messaging.create_template(other_ctx, NEWSLETTER)
    theirs = service.create_campaign(other_ctx, {"name": "Theirs", "template_key": "newsletter", "throttle": 5})
    for url in (f"/mass-mail/{theirs.id}", f"/mass-mail/{theirs.id}/recipients", f"/mass-mail/{theirs.id}/edit"):
        assert client.get(url).status_code == 404
    for action in ("start", "cancel", "delete"):
        assert client.post(f"/mass-mail/{theirs.id}/{action}").status_code == 404
    assert "Theirs" not in client.get("/mass-mail/").get_data(as_text=True)
    other_ctx.session.rollback()
    assert service.get_campaign(other_ctx, theirs.id).status == "draft"


def test_the_pages_are_404_where_the_plugin_is_off(ctx, client):
    assert client.get("/mass-mail/").status_code == 404


def test_the_mass_mail_variables_are_not_a_rule_event(mm, client):
    """Campaigns send by themselves: their event only declares template variables, so the Rules
    page does not offer it and a rule for it is refused, while templates may still use them."""
    import pytest

    from crmcore.errors import ValidationFailed
    from crmcore.messaging import rules

    assert "mass_mail" in rules.events(mm) and "mass_mail" not in rules.rule_events(mm)
    page = client.get("/messages/rules").get_data(as_text=True)
    assert 'value="mass_mail"' not in page and 'value="deal.won"' in page
    template = messaging.list_templates(mm)[0]
    with pytest.raises(ValidationFailed) as refused:
        rules.create_rule(mm, {"event": "mass_mail", "recipient": "client_contact", "channel": "email",
                               "template_id": template.id, "active": True})
    assert "unknown event" in refused.value.errors["event"][0]
