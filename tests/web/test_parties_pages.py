"""The party pages: list with filters and keyset pages, one-click status, create/edit forms,
the sheet, merge, archive; isolation between businesses, roles, escaping, query counts."""

from __future__ import annotations

import html
import re

import pytest
from markupsafe import Markup
from sqlalchemy import event

from crmcore import PluginInfo, Veto, hookimpl
from crmcore.fields.service import define_field
from crmcore.parties import service as parties
from crmcore.testing import TEST_PASSWORD, CrmClient

XSS = "<script>alert(1)</script>"


# --------------------------------------------------------------------------------------------
# helpers


def party_ids(page_html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-party-id="(\d+)"', page_html)]


def text_of(response) -> str:
    return response.get_data(as_text=True)


def next_link(page_html: str) -> str | None:
    found = re.search(r'<a rel="next" href="([^"]+)"', page_html)
    return html.unescape(found.group(1)) if found else None


def define_party_fields(ctx) -> None:
    define_field(ctx, "party", {"key": "industry", "label": "Industry", "type": "choice", "options": {
        "choices": [{"value": "farm", "label": "Farm"}, {"value": "build", "label": "Construction"}]}})
    define_field(ctx, "party", {"key": "remark", "label": "Remark", "type": "text", "options": {"max_length": 40}})
    define_field(ctx, "party", {"key": "fleet_size", "label": "Fleet size", "type": "integer", "options": {"min": 0}})


def make_party(ctx, name: str, **values):
    return parties.create_party(ctx, {"name": name, **values})


def status_of(ctx, party_id: int) -> str | None:
    option = parties.party_details(ctx, party_id)["prospect_status"]
    return option.value if option else None


def count_statements(crm, fn) -> int:
    seen: list[str] = []

    def before(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(crm.db.engine, "before_cursor_execute", before)
    try:
        fn()
    finally:
        event.remove(crm.db.engine, "before_cursor_execute", before)
    return len(seen)


def login(app, email: str) -> CrmClient:
    c = CrmClient(app.test_client())
    assert c.login(email, TEST_PASSWORD).status_code == 302
    return c


@pytest.fixture
def fields(ctx):
    define_party_fields(ctx)


# --------------------------------------------------------------------------------------------
# pages render


def test_every_page_renders_with_demo_data(app, crm):
    from crmcore.demo import DEMO_OWNER, DEMO_PASSWORD, seed_demo

    seed_demo(crm, parties=6)
    c = CrmClient(app.test_client())
    assert c.login(DEMO_OWNER, DEMO_PASSWORD).status_code == 302
    home = c.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/parties/")
    listing = text_of(c.get("/parties/"))
    ids = party_ids(listing)
    assert len(ids) == 6
    for pid in ids:
        sheet = c.get(f"/parties/{pid}")
        assert sheet.status_code == 200, pid
        assert 'class="sheet"' in text_of(sheet)
        assert c.get(f"/parties/{pid}/edit").status_code == 200
    assert c.get(f"/parties/{ids[0]}/merge?q=a&duplicate_id={ids[1]}").status_code == 200
    assert c.get("/parties/new").status_code == 200
    contacts = text_of(c.get("/contacts/"))
    contact_ids = re.findall(r'data-contact-id="(\d+)"', contacts)
    assert contact_ids
    for cid in contact_ids[:4]:
        assert c.get(f"/contacts/{cid}").status_code == 200
        assert c.get(f"/contacts/{cid}/edit").status_code == 200
        assert c.get(f"/contacts/{cid}/move?q=a").status_code == 200
    assert c.get("/contacts/new").status_code == 200
    assert c.get("/contacts/?unassigned=1").status_code == 200


def test_menu_lists_parties_and_contacts(client, business):
    page = text_of(client.get("/parties/"))
    nav = page.split('<nav class="mainnav"', 1)[1].split("</nav>", 1)[0]
    assert nav.index(">Parties<") < nav.index(">Contacts<")


# --------------------------------------------------------------------------------------------
# the list


def test_filters_narrow_the_list(client, ctx, fields):
    wanted = make_party(ctx, "Alpha Farms", prospect_status="qualified", tags=["vip"], custom={"industry": "farm"})
    make_party(ctx, "Beta Build", prospect_status="qualified", tags=["vip"], custom={"industry": "build"})
    make_party(ctx, "Gamma Farms", prospect_status="new", tags=["vip"], custom={"industry": "farm"})
    make_party(ctx, "Delta Farms", prospect_status="qualified", custom={"industry": "farm"})
    assert len(party_ids(text_of(client.get("/parties/")))) == 4
    page = text_of(client.get("/parties/?prospect_status=qualified&tag=vip&custom.industry=farm"))
    assert party_ids(page) == [wanted.id]
    assert party_ids(text_of(client.get("/parties/?custom.industry=farm"))) != [wanted.id]
    assert len(party_ids(text_of(client.get("/parties/?tag=vip")))) == 3
    # the chosen filters stay selected
    assert '<option value="qualified" selected>' in page


def test_more_filters_and_sorts(client, ctx, make_user, fields):
    rep = make_user(ctx.business, "member")
    customer = make_party(ctx, "Customer Co", is_customer=True, language="de", sales_rep_ids=[rep.user_id],
                          potential="high", custom={"fleet_size": 12})
    person = parties.create_party(ctx, {"kind": "person", "first_name": "Ada", "last_name": "Lovelace"})
    archived = make_party(ctx, "Old Co")
    parties.archive_party(ctx, archived.id)
    assert party_ids(text_of(client.get("/parties/?is_customer=yes"))) == [customer.id]
    assert customer.id not in party_ids(text_of(client.get("/parties/?is_customer=no")))
    assert party_ids(text_of(client.get("/parties/?kind=person"))) == [person.id]
    assert party_ids(text_of(client.get("/parties/?language=de"))) == [customer.id]
    assert party_ids(text_of(client.get(f"/parties/?sales_rep_id={rep.user_id}"))) == [customer.id]
    assert party_ids(text_of(client.get("/parties/?potential=high"))) == [customer.id]
    assert party_ids(text_of(client.get("/parties/?custom.fleet_size=12"))) == [customer.id]
    assert party_ids(text_of(client.get("/parties/?q=cust"))) == [customer.id]
    assert party_ids(text_of(client.get("/parties/?archived=archived"))) == [archived.id]
    assert archived.id in party_ids(text_of(client.get("/parties/?archived=all")))
    assert archived.id not in party_ids(text_of(client.get("/parties/")))
    newest = party_ids(text_of(client.get("/parties/?sort=-created")))
    assert newest[0] == person.id


def test_a_bad_filter_is_shown_beside_the_filter(client, ctx, fields):
    make_party(ctx, "Alpha")
    response = client.get("/parties/?custom.fleet_size=lots")
    assert response.status_code == 422
    page = text_of(response)
    assert "has-error" in page and "Not a valid integer" in page
    assert client.get("/parties/?prospect_status=nonsense").status_code == 422
    assert client.get("/parties/?cursor=garbage").status_code == 422


def test_keyset_pages_walk_every_party_exactly_once(client, ctx):
    made = {make_party(ctx, f"Party {i:02d}").id for i in range(11)}
    url: str | None = "/parties/?limit=3"
    seen: list[int] = []
    pages = 0
    while url:
        page = text_of(client.get(url))
        seen += party_ids(page)
        url = next_link(page)
        pages += 1
        assert pages < 10
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen))
    assert pages == 4
    assert "11 parties" in text_of(client.get("/parties/?limit=3&count=1"))


def test_the_list_does_not_wait_for_its_count(client, ctx, other_ctx, fields):
    """The page comes without its count and says where to fetch it; the count answers the same
    filters, capped, for this business only; ``?count=1`` puts it in the page (no JavaScript)."""
    for i in range(3):
        make_party(ctx, f"Farm {i}", tags=["vip"], custom={"industry": "farm"})
    make_party(ctx, "Builder", custom={"industry": "build"})
    for i in range(5):
        make_party(other_ctx, f"Farm {i}", tags=["vip"])
    page = text_of(client.get("/parties/?tag=vip&custom.industry=farm"))
    assert " found<" not in page and "parties</span>" not in page
    url = html.unescape(re.search(r'data-count-url="([^"]+)"', page).group(1))
    assert url == "/parties/count?tag=vip&custom.industry=farm"
    counted = client.get(url)
    assert counted.status_code == 200
    assert counted.get_json() == {"count": 3, "capped": False, "text": "3 found"}
    assert client.get("/parties/count").get_json()["count"] == 4
    assert "3 found" in text_of(client.get("/parties/?tag=vip&custom.industry=farm&count=1"))


def test_the_count_refuses_bad_filters_clearly(client, ctx, fields):
    response = client.get("/parties/count?custom.fleet_size=lots", headers={"Accept": "application/json"})
    assert response.status_code == 422
    assert "Not a valid integer" in str(response.get_json())
    page = text_of(client.get("/parties/?custom.fleet_size=lots"))
    assert "data-count-url" not in page  # nothing to count while the filters are wrong


def test_the_count_caps(client, ctx, monkeypatch):
    from crmcore import paging

    monkeypatch.setattr(paging, "COUNT_CAP", 3)
    monkeypatch.setattr(paging.capped_count, "__defaults__", (3,))
    for i in range(5):
        make_party(ctx, f"P{i}")
    assert client.get("/parties/count").get_json() == {"count": 3, "capped": True, "text": "3+ found"}


def test_list_queries_do_not_grow_with_the_rows(crm, client, ctx, fields):
    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            make_party(ctx, f"Party {i:03d}", prospect_status="contacted", potential="low",
                       tags=["vip", f"t{i % 3}"], custom={"industry": "farm"})

    add(5, 0)
    client.get("/parties/")  # warm caches (hook relays, plugin enablement)
    few = count_statements(crm, lambda: client.get("/parties/"))
    add(35, 5)
    many = count_statements(crm, lambda: client.get("/parties/"))
    assert len(party_ids(text_of(client.get("/parties/")))) == 40
    assert many == few


# --------------------------------------------------------------------------------------------
# one-click status


def test_one_click_status_answers_the_row_for_fetch(client, ctx):
    party = make_party(ctx, "Alpha", tags=["vip"], prospect_status="new")
    listing = text_of(client.get("/parties/"))
    row = listing.split(f'id="party-{party.id}"', 1)[1].split('<div class="party-row', 1)[0]
    assert "data-inline" in row and 'name="status"' in row and "<noscript>" in row
    response = client.fetch(f"/parties/{party.id}/status", {"status": "proposal", "next": "/parties/?tag=vip"})
    assert response.status_code == 200
    fragment = text_of(response)
    assert fragment.lstrip().startswith('<div class="party-row')
    assert "data-swap" in fragment and f'data-party-id="{party.id}"' in fragment
    assert '<option value="proposal" selected>' in fragment
    assert "<html" not in fragment and "vip" in fragment
    assert status_of(ctx, party.id) == "proposal"


def test_one_click_status_without_javascript_returns_to_the_list(client, ctx):
    party = make_party(ctx, "Alpha")
    response = client.post(f"/parties/{party.id}/status", {"status": "dormant", "next": "/parties/?q=al"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/parties/?q=al")
    assert status_of(ctx, party.id) == "dormant"
    # an outside "next" is not followed
    response = client.post(f"/parties/{party.id}/status", {"status": "new", "next": "https://evil.example/"})
    assert response.headers["Location"].endswith("/parties/")


def test_one_click_status_refusals(client, ctx, register_plugin):
    party = make_party(ctx, "Alpha", prospect_status="new")
    response = client.fetch(f"/parties/{party.id}/status", {"status": "nonsense"})
    assert response.status_code == 422
    assert "not in the prospect status list" in text_of(response)
    assert status_of(ctx, party.id) == "new"

    class NoDormant:
        PLUGIN = PluginInfo(title="No dormant")

        @hookimpl
        def crm_before_party_save(self, party, changes, created):
            if changes.get("prospect_status", [None, None])[1] == "dormant":
                raise Veto("a party is never dormant here")

    register_plugin(NoDormant(), enable_for=ctx)
    response = client.fetch(f"/parties/{party.id}/status", {"status": "dormant"})
    assert response.status_code == 409 and "never dormant" in text_of(response)
    response = client.post(f"/parties/{party.id}/status", {"status": "dormant"})
    assert response.status_code == 302
    assert "never dormant" in text_of(client.get("/parties/"))
    assert status_of(ctx, party.id) == "new"


# --------------------------------------------------------------------------------------------
# create and edit


def test_create_party_with_everything(client, ctx, make_user, fields):
    rep = make_user(ctx.business, "member")
    form = {
        "kind": "organisation", "name": "Northfield Farms", "is_prospect": ["", "1"], "is_customer": "",
        "is_supplier": "", "prospect_status": "qualified", "potential": "high", "tags": "vip, spring fair",
        "sales_rep_ids": [str(rep.user_id)], "language": "nl", "currency": "eur", "tax_id": "NL123",
        "custom.industry": "farm", "custom.remark": "big fleet", "custom.fleet_size": "12",
        "mechanisms.0.kind": "email", "mechanisms.0.value": "info@northfield.example",
        "mechanisms.1.kind": "phone", "mechanisms.1.value": "",
        "addresses.0.purpose": "billing", "addresses.0.line1": "Main street 1", "addresses.0.city": "Utrecht",
        "addresses.0.country": "NL",
    }
    response = client.post("/parties/new", form)
    assert response.status_code == 302, text_of(response)
    pid = int(response.headers["Location"].rsplit("/", 1)[1])
    d = parties.party_details(ctx, pid)
    party = d["party"]
    assert party.name == "Northfield Farms" and party.language == "nl" and party.currency == "EUR"
    assert d["prospect_status"].value == "qualified" and d["potential"].value == "high"
    assert sorted(t.name for t in d["tags"]) == ["spring fair", "vip"]
    assert [u.id for u in d["sales_reps"]] == [rep.user_id]
    assert party.custom == {"industry": "farm", "remark": "big fleet", "fleet_size": 12}
    assert [m.value for m in d["mechanisms"]] == ["info@northfield.example"]
    assert [a.city for a in d["addresses"]] == ["Utrecht"]
    sheet = text_of(client.get(f"/parties/{pid}"))
    for shown in ("Northfield Farms", "spring fair", "info@northfield.example", "Main street 1", "big fleet",
                  "Farm", rep.user.name):
        assert shown in sheet


def test_create_person(client, ctx):
    response = client.post("/parties/new", {"kind": "person", "name": "ignored", "first_name": "Ada",
                                            "last_name": "Lovelace", "is_prospect": ["", "1"]})
    assert response.status_code == 302
    pid = int(response.headers["Location"].rsplit("/", 1)[1])
    assert parties.get_party(ctx, pid).name == "Ada Lovelace"
    assert status_of(ctx, pid) == "new"  # the first status, for a new prospect


def test_create_errors_keep_the_input_beside_the_fields(client, ctx, fields):
    form = {"kind": "organisation", "name": "Keep Me", "tags": "a, b", "custom.remark": "typed",
            "custom.fleet_size": "-3",
            "mechanisms.0.kind": "email", "mechanisms.0.value": "",
            "mechanisms.1.kind": "email", "mechanisms.1.value": "not an email",
            "addresses.0.purpose": "billing", "addresses.0.city": "Nowhere", "addresses.0.line1": "Road 1"}
    response = client.post("/parties/new", form)
    assert response.status_code == 422
    page = text_of(response)
    assert 'value="Keep Me"' in page and 'value="a, b"' in page and 'value="typed"' in page
    assert 'value="not an email"' in page and 'value="Nowhere"' in page
    # each message sits beside its control (the row numbers are the form's, empty rows skipped)
    assert 'id="err-mechanisms-1-value"' in page and 'id="err-mechanisms-0-value"' not in page
    assert re.search(r'name="custom.fleet_size".*?</div>\s*<span class="field-error"[^>]*>[^<]*at least 0', page, re.S)
    # an address without its street is refused beside the street
    response = client.post("/parties/new", {**form, "mechanisms.1.value": "", "addresses.0.line1": ""})
    assert response.status_code == 422
    assert 'id="err-addresses-0-line1"' in text_of(response)
    assert parties.list_parties(ctx).total.value == 0


def test_invalid_custom_value_on_edit_is_422_and_nothing_is_written(client, ctx, fields):
    party = make_party(ctx, "Alpha", custom={"remark": "before"})
    form = {"kind": "organisation", "name": "Renamed", "custom.remark": "x" * 41, "custom.industry": "farm"}
    response = client.post(f"/parties/{party.id}/edit", form)
    assert response.status_code == 422
    page = text_of(response)
    assert "Use at most 40 characters." in page
    block = page.split('name="custom.remark"', 1)[1].split('<div class="custom-field', 1)[0]
    assert "Use at most 40 characters." in block
    assert 'value="Renamed"' in page and "x" * 41 in page
    stored = parties.get_party(ctx, party.id)
    assert stored.name == "Alpha" and stored.custom == {"remark": "before"}


def test_edit_form_shows_and_saves_every_field(client, ctx, make_user, fields):
    rep = make_user(ctx.business, "member")
    party = make_party(ctx, "Alpha", tags=["vip"], sales_rep_ids=[rep.user_id], prospect_status="contacted",
                       custom={"industry": "build", "fleet_size": 3})
    page = text_of(client.get(f"/parties/{party.id}/edit"))
    assert 'value="Alpha"' in page and 'value="vip"' in page
    assert f'<option value="{rep.user_id}" selected>' in page
    assert '<option value="contacted" selected>' in page
    assert re.search(r'<option[^>]*value="build"[^>]*selected', page) or 'selected value="build"' in page
    form = {"kind": "organisation", "name": "Alpha Two", "is_prospect": "", "is_customer": ["", "1"],
            "is_supplier": "", "prospect_status": "", "potential": "low", "tags": "", "language": "",
            "currency": "", "tax_id": "", "custom.industry": "", "custom.remark": "note", "custom.fleet_size": "7"}
    response = client.post(f"/parties/{party.id}/edit", form)
    assert response.status_code == 302
    d = parties.party_details(ctx, party.id)
    assert d["party"].name == "Alpha Two" and d["party"].is_customer and not d["party"].is_prospect
    assert d["prospect_status"] is None and d["potential"].value == "low"
    assert d["tags"] == [] and d["sales_reps"] == []
    assert d["party"].custom == {"remark": "note", "fleet_size": 7}


def test_a_plugin_veto_shows_on_the_edit_form_with_the_input_kept(client, ctx, register_plugin):
    class NoShouting:
        PLUGIN = PluginInfo(title="No shouting")

        @hookimpl
        def crm_before_party_save(self, party, changes, created):
            if party.name.isupper():
                raise Veto("party names may not be in capitals")

    register_plugin(NoShouting(), enable_for=ctx)
    party = make_party(ctx, "Quiet Co")
    response = client.post(f"/parties/{party.id}/edit", {"kind": "organisation", "name": "LOUD CO",
                                                         "tags": "typed tag"})
    assert response.status_code == 409
    page = text_of(response)
    assert "party names may not be in capitals" in page
    assert 'value="LOUD CO"' in page and 'value="typed tag"' in page
    assert parties.get_party(ctx, party.id).name == "Quiet Co"
    response = client.post("/parties/new", {"kind": "organisation", "name": "NEW LOUD"})
    assert response.status_code == 409 and "may not be in capitals" in text_of(response)


# --------------------------------------------------------------------------------------------
# the sheet


class _Panels:
    PLUGIN = PluginInfo(title="Panels")

    @hookimpl
    def crm_party_panels(self, ctx, party):
        return [{"title": "Credit check", "html": Markup('<p class="credit">{} is fine</p>').format(party.name),
                 "order": 5},
                {"title": "First panel", "html": "<b>plain text is escaped</b>", "order": 1}]


def test_sheet_shows_everything_in_two_columns(client, ctx, register_plugin, fields):
    from crmcore.records.service import create_record
    from crmcore.timeline.service import add_note

    register_plugin(_Panels(), enable_for=ctx)
    party = make_party(ctx, "Alpha", tags=["vip"], custom={"industry": "farm"},
                       mechanisms=[{"kind": "email", "value": "a@alpha.example"}],
                       addresses=[{"line1": "Road 1", "city": "Ghent"}])
    parties.create_contact(ctx, {"party_id": party.id, "first_name": "Eva", "last_name": "Stone",
                                 "mechanisms": [{"kind": "phone", "value": "+32 9 123 45 67"}]})
    deal = create_record(ctx, "deal", {"title": "Loader for Alpha", "party_id": party.id, "amount": "1200"})
    add_note(ctx, body="Called about the loader", party_id=party.id)
    page = text_of(client.get(f"/parties/{party.id}"))
    main, side = page.split('<aside class="sheet-side">', 1)
    for shown in ("Alpha", "vip", "Farm", "a@alpha.example", "Road 1", "Eva Stone", "+32 9 123 45 67",
                  "Called about the loader"):
        assert shown in main
    assert "Loader for Alpha" in side and f"/records/{deal.id}" in side
    assert f"/records/deal/new?party_id={party.id}" in side
    assert side.index("First panel") < side.index("Credit check")
    assert '<p class="credit">Alpha is fine</p>' in side
    assert "&lt;b&gt;plain text is escaped&lt;/b&gt;" in side


def test_mechanisms_and_addresses_on_the_sheet(client, ctx):
    party = make_party(ctx, "Alpha", mechanisms=[{"kind": "email", "value": "one@alpha.example"}],
                       addresses=[{"line1": "Road 1"}])
    assert client.post(f"/parties/{party.id}/mechanisms", {"kind": "email", "value": "two@alpha.example",
                                                           "label": "sales"}).status_code == 302
    mechanisms = parties.party_details(ctx, party.id)["mechanisms"]
    second = next(m for m in mechanisms if m.value == "two@alpha.example")
    assert not second.is_primary
    client.post(f"/parties/{party.id}/mechanisms/{second.id}/primary")
    assert next(m for m in parties.party_details(ctx, party.id)["mechanisms"] if m.id == second.id).is_primary
    client.post(f"/parties/{party.id}/mechanisms/{second.id}/delete")
    assert [m.value for m in parties.party_details(ctx, party.id)["mechanisms"]] == ["one@alpha.example"]
    bad = client.post(f"/parties/{party.id}/mechanisms", {"kind": "email", "value": "nope"})
    assert bad.status_code == 302
    assert "invalid contact mechanism" in text_of(client.get(f"/parties/{party.id}"))

    client.post(f"/parties/{party.id}/addresses", {"purpose": "billing", "line1": "Road 2", "city": "Lyon"})
    addresses = parties.party_details(ctx, party.id)["addresses"]
    road2 = next(a for a in addresses if a.line1 == "Road 2")
    client.post(f"/parties/{party.id}/addresses/{road2.id}/default")
    assert next(a for a in parties.party_details(ctx, party.id)["addresses"] if a.id == road2.id).is_default
    client.post(f"/parties/{party.id}/addresses/{road2.id}/delete")
    assert [a.line1 for a in parties.party_details(ctx, party.id)["addresses"]] == ["Road 1"]
    client.post(f"/parties/{party.id}/addresses", {"purpose": "billing", "line1": ""})
    assert "must not be empty" in text_of(client.get(f"/parties/{party.id}"))


def test_a_mechanism_or_address_of_another_party_is_not_found_here(client, ctx):
    alpha = make_party(ctx, "Alpha", mechanisms=[{"kind": "email", "value": "a@alpha.example"}],
                       addresses=[{"line1": "Road 1"}])
    beta = make_party(ctx, "Beta")
    d = parties.party_details(ctx, alpha.id)
    mid, aid = d["mechanisms"][0].id, d["addresses"][0].id
    assert client.post(f"/parties/{beta.id}/mechanisms/{mid}/delete").status_code == 404
    assert client.post(f"/parties/{beta.id}/addresses/{aid}/delete").status_code == 404
    assert len(parties.party_details(ctx, alpha.id)["mechanisms"]) == 1


def test_add_contact_archive_and_restore_from_the_sheet(client, ctx):
    party = make_party(ctx, "Alpha")
    response = client.post(f"/parties/{party.id}/contacts", {"first_name": "Eva", "last_name": "Stone",
                                                             "job_title": "Buyer", "email": "eva@alpha.example"})
    assert response.status_code == 302
    contacts = parties.party_details(ctx, party.id)["contacts"]
    assert [c["contact"].name for c in contacts] == ["Eva Stone"]
    assert [m.value for m in contacts[0]["mechanisms"]] == ["eva@alpha.example"]
    client.post(f"/parties/{party.id}/contacts", {"first_name": "", "last_name": ""})
    assert "give a first name or a last name" in text_of(client.get(f"/parties/{party.id}"))

    assert client.post(f"/parties/{party.id}/archive").status_code == 302
    assert parties.get_party(ctx, party.id).archived_at is not None
    assert "Restore" in text_of(client.get(f"/parties/{party.id}"))
    assert party.id not in party_ids(text_of(client.get("/parties/")))
    client.post(f"/parties/{party.id}/unarchive")
    assert parties.get_party(ctx, party.id).archived_at is None


# --------------------------------------------------------------------------------------------
# merge


def test_merge_preview_and_merge(client, ctx, fields):
    kept = make_party(ctx, "Northfield Farms", tags=["vip"], custom={"remark": "kept says", "industry": "farm"})
    dup = make_party(ctx, "Northfield Farms BV", tags=["vip", "fair"], custom={"remark": "dup says"},
                     mechanisms=[{"kind": "email", "value": "info@northfield.example"}])
    contact = parties.create_contact(ctx, {"party_id": dup.id, "first_name": "Eva"})
    search = text_of(client.get(f"/parties/{kept.id}/merge?q=northfield"))
    assert f"duplicate_id={dup.id}" in search
    assert f"duplicate_id={kept.id}" not in search  # never itself
    preview = text_of(client.get(f"/parties/{kept.id}/merge?duplicate_id={dup.id}"))
    assert "1 contacts" in preview and "1 contact mechanisms" in preview.replace("_", " ")
    assert "kept says" in preview and "dup says" in preview and "Remark" in preview
    assert 'name="custom_rule" value="duplicate"' in preview
    response = client.post(f"/parties/{kept.id}/merge", {"duplicate_id": str(dup.id), "custom_rule": "duplicate"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/parties/{kept.id}")
    sheet = text_of(client.get(f"/parties/{kept.id}"))
    assert "was merged into this one" in sheet and "Eva" in sheet
    assert parties.get_party(ctx, dup.id).merged_into_id == kept.id
    assert parties.get_contact(ctx, contact.id).party_id == kept.id
    assert parties.get_party(ctx, kept.id).custom["remark"] == "dup says"
    # the retired duplicate says where it went, and offers no edits
    retired = text_of(client.get(f"/parties/{dup.id}"))
    assert "was merged into" in retired and f"/parties/{dup.id}/edit" not in retired


def test_merge_refusals(client, ctx):
    kept = make_party(ctx, "Alpha")
    page = client.get(f"/parties/{kept.id}/merge?duplicate_id={kept.id}")
    assert page.status_code == 422 and "pick another party" in text_of(page)
    assert client.get(f"/parties/{kept.id}/merge?duplicate_id=abc").status_code == 422
    response = client.post(f"/parties/{kept.id}/merge", {"duplicate_id": str(kept.id)})
    assert response.status_code == 302
    assert "pick another party" in text_of(client.get(response.headers["Location"]))


# --------------------------------------------------------------------------------------------
# isolation, roles, escaping


@pytest.fixture
def foreign(other_ctx):
    """Another business's party (with a mechanism and an address) and contact."""
    party = parties.create_party(other_ctx, {"name": "Globex Secret", "prospect_status": "new",
                                             "mechanisms": [{"kind": "email", "value": "x@globex.example"}],
                                             "addresses": [{"line1": "Hidden 1"}]})
    d = parties.party_details(other_ctx, party.id)
    contact = parties.create_contact(other_ctx, {"party_id": party.id, "first_name": "Hidden",
                                                 "mechanisms": [{"kind": "email", "value": "h@globex.example"}]})
    cm = parties.contact_details(other_ctx, contact.id)["mechanisms"][0]
    return {"party": party.id, "mechanism": d["mechanisms"][0].id, "address": d["addresses"][0].id,
            "contact": contact.id, "contact_mechanism": cm.id}


def party_routes(own: int, ids: dict) -> tuple[list[str], list[tuple[str, dict]]]:
    p, m, a = ids["party"], ids["mechanism"], ids["address"]
    gets = [f"/parties/{p}", f"/parties/{p}/edit", f"/parties/{p}/merge", f"/parties/{own}/merge?duplicate_id={p}",
            f"/parties/{p}/merge?duplicate_id={own}", f"/contacts/?party_id={p}", f"/contacts/new?party_id={p}"]
    posts = [
        (f"/parties/{p}/status", {"status": "qualified"}),
        (f"/parties/{p}/edit", {"kind": "organisation", "name": "Taken"}),
        (f"/parties/{p}/archive", {}), (f"/parties/{p}/unarchive", {}),
        (f"/parties/{p}/merge", {"duplicate_id": str(own)}),
        (f"/parties/{own}/merge", {"duplicate_id": str(p)}),
        (f"/parties/{p}/mechanisms", {"kind": "email", "value": "new@x.example"}),
        (f"/parties/{p}/mechanisms/{m}/primary", {}), (f"/parties/{p}/mechanisms/{m}/delete", {}),
        (f"/parties/{own}/mechanisms/{m}/primary", {}), (f"/parties/{own}/mechanisms/{m}/delete", {}),
        (f"/parties/{p}/addresses", {"line1": "New road"}),
        (f"/parties/{p}/addresses/{a}/default", {}), (f"/parties/{p}/addresses/{a}/delete", {}),
        (f"/parties/{own}/addresses/{a}/default", {}), (f"/parties/{own}/addresses/{a}/delete", {}),
        (f"/parties/{p}/contacts", {"first_name": "Spy"}),
        ("/contacts/new", {"party_id": str(p), "first_name": "Spy"}),
    ]
    return gets, posts


def test_another_businesses_parties_are_not_found(client, ctx, other_ctx, foreign):
    own = make_party(ctx, "Own Co").id
    gets, posts = party_routes(own, foreign)
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url, data in posts:
        assert client.post(url, data).status_code == 404, url
        assert client.fetch(url, data).status_code == 404, url
    d = parties.party_details(other_ctx, foreign["party"])
    assert d["party"].name == "Globex Secret" and d["party"].archived_at is None
    assert d["prospect_status"].value == "new" and d["party"].merged_into_id is None
    assert len(d["mechanisms"]) == 1 and len(d["addresses"]) == 1 and len(d["contacts"]) == 1
    assert parties.get_party(ctx, own).merged_into_id is None
    assert "Globex" not in text_of(client.get("/parties/?q=globex"))


def test_read_only_users_can_look_but_every_post_is_403(app, ctx, make_user, fields):
    viewer = make_user(ctx.business, "read_only")
    party = make_party(ctx, "Alpha", prospect_status="new", mechanisms=[{"kind": "email", "value": "a@a.example"}],
                       addresses=[{"line1": "Road 1"}])
    other = make_party(ctx, "Beta")
    d = parties.party_details(ctx, party.id)
    c = login(app, viewer.user.email)
    listing = c.get("/parties/")
    assert listing.status_code == 200
    assert "data-inline" not in text_of(listing) and "New party" not in text_of(listing)
    sheet = c.get(f"/parties/{party.id}")
    assert sheet.status_code == 200 and f"/parties/{party.id}/edit" not in text_of(sheet)
    assert c.get("/parties/new").status_code == 403
    assert c.get(f"/parties/{party.id}/edit").status_code == 403
    ids = {"party": party.id, "mechanism": d["mechanisms"][0].id, "address": d["addresses"][0].id}
    _gets, posts = party_routes(other.id, ids)
    posts.append(("/parties/new", {"kind": "organisation", "name": "Sneaky"}))
    for url, data in posts:
        assert c.post(url, data).status_code == 403, url
        assert c.fetch(url, data).status_code == 403, url
    assert status_of(ctx, party.id) == "new"
    assert parties.list_parties(ctx).total.value == 2


def test_user_text_is_escaped_everywhere(client, ctx, fields):
    from crmcore.timeline.service import add_note

    define_field(ctx, "party", {"key": "story", "label": "Story", "type": "long_text"})
    party = make_party(ctx, XSS, tags=[XSS], custom={"remark": XSS, "story": XSS},
                       mechanisms=[{"kind": "email", "value": "a@b.example", "label": XSS}],
                       addresses=[{"line1": XSS, "city": XSS, "label": XSS}])
    other = make_party(ctx, "Other")
    parties.create_contact(ctx, {"party_id": party.id, "first_name": XSS, "job_title": XSS, "notes": XSS})
    add_note(ctx, body=XSS, party_id=party.id)
    pages = [f"/parties/?q={party.name[:3]}", "/parties/", f"/parties/{party.id}", f"/parties/{party.id}/edit",
             f"/parties/{other.id}/merge?q=%3C&duplicate_id={party.id}"]
    for url in pages:
        page = text_of(client.get(url))
        assert XSS not in page, url
        assert "&lt;script&gt;" in page, url
    fragment = text_of(client.fetch(f"/parties/{party.id}/status", {"status": "new"}))
    assert XSS not in fragment and "&lt;script&gt;" in fragment
    response = client.post("/parties/new", {"kind": "organisation", "name": XSS, "custom.fleet_size": "bad"})
    assert response.status_code == 422
    assert XSS not in text_of(response) and "&lt;script&gt;" in text_of(response)


class _PanelWithUseCase:
    """A panel that runs a use case of its own, as the invoicing plugin's party panel does: the
    use case commits and expires what the sheet had loaded before it."""

    PLUGIN = PluginInfo(title="Use-case panel")

    @hookimpl
    def crm_party_panels(self, ctx, party):
        from crmcore.records.service import list_records

        page = list_records(ctx, record_type="deal", filters={"party_id": party.id}, limit=5)
        return [{"title": "Open deals", "html": Markup("<p>{} deals</p>").format(len(page.items))}]


def test_a_panel_running_a_use_case_does_not_break_the_sheet(client, ctx, register_plugin):
    register_plugin(_PanelWithUseCase(), enable_for=ctx)
    party = make_party(ctx, "Beta", mechanisms=[{"kind": "email", "value": "b@beta.example"}],
                       addresses=[{"line1": "Lane 2", "city": "Bruges"}])
    parties.create_contact(ctx, {"party_id": party.id, "first_name": "Bo", "last_name": "Lind",
                                 "mechanisms": [{"kind": "phone", "value": "+32 9 765 43 21"}]})
    response = client.get(f"/parties/{party.id}")
    assert response.status_code == 200
    page = text_of(response)
    for shown in ("b@beta.example", "Lane 2", "Bo Lind", "+32 9 765 43 21", "0 deals"):
        assert shown in page
