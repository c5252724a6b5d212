"""What a person does in the admin, in a real browser (Playwright driving Debian's Chromium)."""

from __future__ import annotations

from crmcore import Veto, hookimpl
from crmcore.testing import TEST_PASSWORD


def login(page, email="owner@acme.example"):
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", TEST_PASSWORD)
    page.click("button[type=submit]")


def test_log_in_and_out(page, business):
    login(page, "owner@acme.example")
    page.wait_for_selector("header.topbar")
    assert "Acme Equipment" in page.inner_text("header.topbar")
    page.click("text=Log out")
    page.wait_for_url("**/login")


def test_wrong_password_shows_the_message(page, business):
    page.goto("/login")
    page.fill("#email", "owner@acme.example")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert "wrong email or password" in page.inner_text(".form-error")
    assert page.input_value("#email") == "owner@acme.example"


def test_create_a_party_with_a_custom_field(page, ctx):
    from crmcore.fields.service import define_field
    from crmcore.parties.service import list_parties

    define_field(ctx, "party", {"key": "fleet_size", "label": "Fleet size", "type": "integer"})
    login(page)
    page.goto("/parties/new")
    page.fill("#f-name", "Northfield Farms")
    assert page.get_attribute("[name='custom.fleet_size']", "type") == "number"
    page.fill("[name='custom.fleet_size']", "12")
    page.click("button:has-text('Create party')")
    page.wait_for_selector("text=Northfield Farms")
    assert "12" in page.inner_text("main")
    (party,) = list_parties(ctx, {"q": "northfield"}).items
    assert party.custom == {"fleet_size": 12}


def test_change_a_prospect_status_in_one_click_from_the_list(page, ctx):
    from crmcore.parties.service import create_party, get_party

    party = create_party(ctx, {"kind": "organisation", "name": "Quick Status Ltd", "prospect_status": "new"})
    login(page)
    page.goto("/parties/")
    url = page.url
    page.select_option(f"#status-{party.id}", "qualified")
    page.wait_for_selector("#live-message.flash-success")
    assert page.url == url  # never left the list
    assert page.input_value(f"#status-{party.id}") == "qualified"
    status = get_party(ctx, party.id).prospect_status_id
    from crmcore.lists.service import resolve_option

    assert status == resolve_option(ctx, "prospect_status", "qualified", field="s").id


class _NoWinWithoutAmount:
    from crmcore import PluginInfo as _Info

    PLUGIN = _Info(title="Browser veto")

    @hookimpl
    def crm_before_stage_change(self, ctx, record, from_stage, to_stage):
        if to_stage.name == "Negotiation" and record.amount is None:
            raise Veto("Give the deal an amount before negotiating.")


def _board_ids(ctx):
    from crmcore.pipelines.service import list_pipelines

    sales = next(p for p in list_pipelines(ctx, "deal") if p.is_default)
    return {s.name: s.id for s in sales.stages}


def test_drag_a_deal_to_the_next_stage_and_see_a_veto(page, ctx, register_plugin):
    from crmcore.parties.service import create_party
    from crmcore.records.service import create_record, get_record

    register_plugin(_NoWinWithoutAmount(), enable_for=ctx)
    party = create_party(ctx, {"kind": "organisation", "name": "Board Co"})
    deal = create_record(ctx, "deal", {"title": "Loader for Board Co", "party_id": party.id})
    stages = _board_ids(ctx)
    login(page)
    page.goto("/records/deal/board")
    card = f"[data-record-id='{deal.id}']"
    page.drag_and_drop(card, f"[data-stage-id='{stages['Needs analysis']}'] [data-cards]")
    page.wait_for_selector("#live-message.flash-success")
    assert get_record(ctx, deal.id).stage_id == stages["Needs analysis"]
    page.drag_and_drop(card, f"[data-stage-id='{stages['Negotiation']}'] [data-cards]")
    page.wait_for_selector("#live-message.flash-error")
    assert "Give the deal an amount" in page.inner_text("#live-message")
    # the card went back to its column, and the record did not move
    assert page.locator(f"[data-stage-id='{stages['Needs analysis']}'] {card}").count() == 1
    assert get_record(ctx, deal.id).stage_id == stages["Needs analysis"]


def test_qualify_a_lead_into_a_deal(page, ctx):
    from crmcore.parties.service import create_party
    from crmcore.records.service import create_record, get_record

    party = create_party(ctx, {"kind": "organisation", "name": "Lead Source GmbH"})
    lead = create_record(ctx, "lead", {"title": "Web enquiry: excavator", "party_id": party.id})
    login(page)
    page.goto(f"/records/{lead.id}")
    page.click("button:has-text('Qualify into a deal')")
    page.wait_for_url(lambda url: f"/records/{lead.id}" not in url)
    deal_id = int(page.url.rstrip("/").split("/")[-1])
    deal = get_record(ctx, deal_id)
    assert deal.type == "deal" and deal.party_id == party.id
    assert get_record(ctx, lead.id).status == "won"


class _MenuPlugin:
    from crmcore import PluginInfo as _Info

    PLUGIN = _Info(title="Trade-ins", version="1.0")

    @hookimpl
    def crm_admin_menu(self, ctx):
        return [{"label": "Trade-ins", "url": "/parties/", "order": 90}]


def test_enable_a_plugin_and_see_its_menu_entry(page, ctx, register_plugin):
    name = register_plugin(_MenuPlugin())
    login(page)
    page.goto("/settings/plugins")
    assert page.locator("nav.mainnav a:has-text('Trade-ins')").count() == 0
    page.click(f"#plugin-{name} button:has-text('Enable')")
    page.wait_for_selector(f"#plugin-{name} .badge:has-text('Enabled')")
    page.goto("/parties/")
    assert page.locator("nav.mainnav a:has-text('Trade-ins')").count() == 1


def test_the_party_list_fills_in_its_count_after_it_is_shown(page, ctx):
    from crmcore.parties.service import create_party

    for i in range(3):
        create_party(ctx, {"kind": "organisation", "name": f"Counted {i}", "tags": ["dealer"]})
    create_party(ctx, {"kind": "organisation", "name": "Not counted"})
    login(page)
    page.goto("/parties/?tag=dealer")
    status = page.locator(".toolbar [data-count-url]")
    status.filter(has_text="found").wait_for()
    assert status.inner_text() == "3 found"
    assert page.locator(".party-list [data-party-id]").count() == 3
