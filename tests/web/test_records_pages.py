"""The records pages: lists with filters and keyset pages, the create and edit forms (smart
defaults, next steps, errors that keep the input), the record page and its actions, tenancy,
roles and escaping."""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from decimal import Decimal

import pytest
from markupsafe import Markup
from sqlalchemy import event

from crmcore import hookimpl
from crmcore.fields.service import define_field
from crmcore.lists.service import add_option, list_options
from crmcore.parties.contacts import create_contact
from crmcore.parties.service import create_party
from crmcore.pipelines import service as pipelines
from crmcore.records import service as records
from crmcore.testing import CrmClient

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


# ---------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture
def party(ctx):
    return create_party(ctx, {"kind": "organisation", "name": "Initech", "currency": "USD"})


@pytest.fixture
def stages(ctx):
    """The default deal pipeline's active stages: name -> id."""
    return {s.name: s.id for s in pipelines.list_pipelines(ctx, "deal")[0].active_stages()}


@pytest.fixture
def fields(ctx):
    """Custom fields of deals: a text, a choice, an integer and a checkbox."""
    define_field(ctx, "record:deal", {"key": "region", "label": "Region", "type": "text"})
    define_field(ctx, "record:deal", {"key": "tier", "label": "Tier", "type": "choice", "options": {
        "choices": [{"value": "gold", "label": "Gold"}, {"value": "silver", "label": "Silver"}]}})
    define_field(ctx, "record:deal", {"key": "units", "label": "Units", "type": "integer"})
    define_field(ctx, "record:deal", {"key": "nda", "label": "NDA signed", "type": "checkbox"})


def create(ctx, record_type="deal", title="Deal", **data):
    return records.create_record(ctx, record_type, {"title": title, **data}).id


def listed(body: str) -> list[int]:
    """Record ids in the rows of a list page, in order."""
    return [int(i) for i in re.findall(r'<td><a href="/records/(\d+)">', body)]


def next_link(body: str) -> str | None:
    found = re.search(r'<a rel="next" href="([^"]+)"', body)
    return html.unescape(found.group(1)) if found else None


@contextmanager
def count_queries(crm):
    statements: list[str] = []

    def on_execute(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(crm.db.engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(crm.db.engine, "before_cursor_execute", on_execute)


def login(app, ctx_of_user) -> CrmClient:
    c = CrmClient(app.test_client())
    assert c.login(ctx_of_user.user.email).status_code == 302
    return c


def option_id(ctx, list_key, value):
    return next(o.id for o in list_options(ctx, list_key) if o.value == value)


# ---------------------------------------------------------------------------------------------
# lists


def test_list_filters(client, ctx, party, stages, fields, make_user, business):
    member = make_user(business, "member")
    alpha = create(ctx, title="Alpha forklifts", party_id=party.id, custom={"region": "North", "tier": "gold"})
    beta = create(ctx, title="Beta racking", owner_id=member.user_id, custom={"region": "South"})
    records.move_stage(ctx, beta, stages["Proposal"])
    gamma = create(ctx, title="Gamma pallets")
    records.close_won(ctx, gamma)
    delta = create(ctx, title="Delta")
    records.close_lost(ctx, delta, "price")

    def ids(query):
        response = client.get(f"/records/deal/?{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return set(listed(response.get_data(as_text=True)))

    assert ids("") == {alpha, beta, gamma, delta}
    assert ids("status=won") == {gamma}
    assert ids("status=open") == {alpha, beta}
    assert ids(f"stage_id={stages['Proposal']}") == {beta}
    assert ids(f"owner_id={member.user_id}") == {beta}
    assert ids(f"party_id={party.id}") == {alpha}
    assert ids("q=alp") == {alpha}
    assert ids("custom.region=South") == {beta}
    assert ids("custom.tier=gold") == {alpha}
    assert ids("status=open&custom.region=North&q=Alpha") == {alpha}
    body = client.get("/records/deal/?status=open").get_data(as_text=True)
    assert "2 deals" in client.get("/records/deal/?status=open&count=1").get_data(as_text=True)  # the capped count
    assert "Initech" in body and "Proposal" in body
    # filters keep their values in the form
    assert '<option value="open" selected>' in body


def test_list_rejects_bad_filters_with_a_message(client, ctx, fields):
    create(ctx)
    response = client.get("/records/deal/?custom.units=many")
    assert response.status_code == 422
    assert "units" in response.get_data(as_text=True)
    response = client.get("/records/deal/?cursor=not-a-cursor")
    assert response.status_code == 422 and "invalid page cursor" in response.get_data(as_text=True)
    assert client.get("/records/deal/?status=maybe").status_code == 422
    assert client.get("/records/spaceship/").status_code == 404


def test_keyset_pages_walk_every_record_once_and_keep_the_filters(client, ctx):
    made = {create(ctx, title=f"Deal {i}") for i in range(7)}
    create(ctx, "lead", title="Not a deal")
    records.close_won(ctx, sorted(made)[0])
    url = "/records/deal/?status=open&limit=3"
    seen: list[int] = []
    pages = 0
    while url:
        body = client.get(url).get_data(as_text=True)
        seen += listed(body)
        pages += 1
        url = next_link(body)
        if url:
            assert "status=open" in url and "cursor=" in url
    assert pages == 2
    assert sorted(seen) == sorted(made - {sorted(made)[0]})
    assert len(seen) == len(set(seen))


def test_every_record_type_has_a_list(client, ctx):
    create(ctx, "lead", title="A lead")
    create(ctx, "incident", title="An incident")
    create(ctx, "action", title="An action")
    assert "A lead" in client.get("/records/lead/").get_data(as_text=True)
    assert "An incident" in client.get("/records/incident/").get_data(as_text=True)
    assert "An action" in client.get("/records/action/").get_data(as_text=True)


def test_the_list_runs_the_same_queries_for_5_or_40_records(crm, client, ctx, stages, make_user, business):
    member = make_user(business, "member")
    owners = [ctx.user_id, member.user_id]

    def fill(n, start):
        for i in range(start, start + n):
            party_id = create_party(ctx, {"kind": "organisation", "name": f"Party {i}"}).id
            record_id = create(ctx, title=f"Deal {i}", party_id=party_id, owner_id=owners[i % 2], amount="5")
            if i % 3 == 0:
                records.move_stage(ctx, record_id, stages["Proposal"])

    fill(5, 0)
    client.get("/records/deal/")
    with count_queries(crm) as few:
        assert client.get("/records/deal/").status_code == 200
    fill(35, 5)
    with count_queries(crm) as many:
        body = client.get("/records/deal/").get_data(as_text=True)
    assert len(listed(body)) == 40 and "Party 39" in body
    assert len(many) == len(few), "\n".join(many)


# ---------------------------------------------------------------------------------------------
# create


def test_create_form_is_prefilled_for_a_party_and_creates_the_record(client, ctx, party, stages, fields):
    body = client.get(f"/records/deal/new?party_id={party.id}").get_data(as_text=True)
    assert f'name="party_id" type="number" value="{party.id}"' in body
    assert 'name="currency" type="text" value="USD"' in body
    assert "Party: Initech" in body
    assert 'name="custom.region"' in body and 'name="custom.tier"' in body
    response = client.post("/records/deal/new", {
        "title": "  Forklifts  ", "party_id": str(party.id), "contact_id": "", "owner_id": "", "amount": "999.90",
        "currency": "", "expected_close_date": "2030-01-31", "stage_id": str(stages["Proposal"]),
        "description": "Two units", "proposed_solution": "",
        "custom.region": "North", "custom.tier": "gold", "custom.units": "3", "custom.nda": ["0", "1"],
    })
    assert response.status_code == 303, response.get_data(as_text=True)
    record_id = int(response.headers["Location"].rsplit("/", 1)[1])
    record = records.get_record(ctx, record_id)
    assert (record.title, record.party_id, record.amount, record.currency) == ("Forklifts", party.id,
                                                                               Decimal("999.90"), "USD")
    assert record.stage_id == stages["Proposal"] and record.owner_id == ctx.user_id
    assert str(record.expected_close_date) == "2030-01-31" and record.description == "Two units"
    assert record.custom == {"region": "North", "tier": "gold", "units": 3, "nda": True}
    page = client.get(f"/records/{record_id}").get_data(as_text=True)
    assert "Forklifts" in page and "North" in page and "Gold" in page and "$999.90" in page


def test_create_errors_keep_the_input(client, ctx, fields):
    response = client.post("/records/deal/new", {
        "title": "", "amount": "lots", "currency": "", "description": "Keep me", "party_id": "",
        "custom.region": "Kept region", "custom.units": "many", "custom.nda": ["0", "1"],
    })
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Keep me" in body and 'value="lots"' in body and 'value="Kept region"' in body
    assert 'value="many"' in body and "checked" in body
    assert "Missing data for required field." in body or "Field may not be null." in body
    assert "Not a valid" in body
    # custom values are checked once the record's own fields are right
    response = client.post("/records/deal/new", {"title": "Fine", "custom.units": "many", "custom.region": "Kept"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Units: Not a valid integer." in body and 'value="many"' in body and 'value="Kept"' in body
    assert records.list_records(ctx, record_type="deal").items == []


def test_unknown_stage_or_type_on_create(client, ctx):
    lead_stage = pipelines.list_pipelines(ctx, "lead")[0].active_stages()[0].id
    response = client.post("/records/deal/new", {"title": "X", "stage_id": str(lead_stage)})
    assert response.status_code == 422
    assert client.get("/records/spaceship/new").status_code == 404


def test_next_step_from_a_deal_is_prefilled_and_linked(client, ctx, party):
    deal = create(ctx, title="Big deal", party_id=party.id, amount="500")
    body = client.get(f"/records/{deal}").get_data(as_text=True)
    assert f'href="/records/action/new?source_id={deal}"' in body
    form = client.get(f"/records/action/new?source_id={deal}").get_data(as_text=True)
    assert 'value="Follow-up: Big deal"' in form
    assert f'name="party_id" type="number" value="{party.id}"' in form
    assert 'name="amount" type="text" value="500"' in form
    assert f'name="source_id" value="{deal}"' in form
    response = client.post(f"/records/action/new?source_id={deal}", {
        "title": "Follow-up: Big deal", "party_id": str(party.id), "amount": "500", "currency": "USD",
        "source_id": str(deal)})
    assert response.status_code == 303, response.get_data(as_text=True)
    action = int(response.headers["Location"].rsplit("/", 1)[1])
    created = records.get_record(ctx, action)
    assert created.type == "action" and created.party_id == party.id and created.amount == Decimal("500")
    links = records.record_details(ctx, deal)["links_out"]
    assert [(link["kind"], link["record"].id) for link in links] == [("next_step", action)]
    assert f'href="/records/{action}"' in client.get(f"/records/{deal}").get_data(as_text=True)


# ---------------------------------------------------------------------------------------------
# the record page


def test_record_page_shows_details_custom_values_progress_and_history(client, ctx, party, stages, fields):
    contact = create_contact(ctx, {"first_name": "Peter", "last_name": "Gibbons", "party_id": party.id})
    deal = create(ctx, title="Forklifts", party_id=party.id, contact_id=contact.id, amount="100",
                  custom={"region": "North", "nda": True})
    records.move_stage(ctx, deal, stages["Proposal"], note="sent the offer")
    body = client.get(f"/records/{deal}").get_data(as_text=True)
    assert "Forklifts" in body and "Initech" in body and "Peter Gibbons" in body
    assert "<dt>Region</dt><dd>North</dd>" in body and "<dt>NDA signed</dt><dd>Yes</dd>" in body
    assert 'class="step done">Qualification' in body
    assert 'aria-current="step">Proposal' in body
    history = body[body.index("Stage history"):]
    assert "Qualification" in history and "Proposal" in history and "sent the offer" in history
    assert "Acme Equipment Owner" in history
    # the timeline panel of the timeline feature, for this record
    assert f'name="record_id" value="{deal}"' in body
    assert "Moved from Qualification to Proposal" in body


def test_won_lost_and_reopen(client, ctx, stages):
    deal = create(ctx)
    response = client.post(f"/records/{deal}/lost", {"lost_reason": "", "note": "keep this note"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "a lost reason is required" in body and "keep this note" in body
    assert records.get_record(ctx, deal).status == "open"

    price = option_id(ctx, "lost_reason", "price")
    response = client.post(f"/records/{deal}/lost", {"lost_reason": str(price), "note": "too expensive"})
    assert response.status_code == 303
    record = records.get_record(ctx, deal)
    assert record.status == "lost" and record.lost_reason_id == price and record.lost_note == "too expensive"
    body = client.get(f"/records/{deal}").get_data(as_text=True)
    assert "Price" in body and "too expensive" in body and "Reopen" in body

    assert client.post(f"/records/{deal}/reopen", {"stage_id": ""}).status_code == 303
    record = records.get_record(ctx, deal)
    assert record.status == "open" and record.stage_id == stages["Qualification"]

    assert client.post(f"/records/{deal}/won", {"note": "signed"}).status_code == 303
    assert records.get_record(ctx, deal).status == "won"
    # won twice: the state says no
    assert client.post(f"/records/{deal}/won", {}).status_code == 409


def test_move_from_the_record_page_keeps_the_page_on_error(client, ctx, stages):
    deal = create(ctx)
    response = client.post(f"/records/{deal}/move", {"stage_id": str(stages["Lost"]), "return": "record",
                                                     "next": f"/records/{deal}"})
    assert response.status_code == 422
    assert "Stage history" in response.get_data(as_text=True)  # the record page, with the message
    response = client.post(f"/records/{deal}/move", {"stage_id": str(stages["Negotiation"]),
                                                     "return": "record", "next": f"/records/{deal}"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/records/{deal}")


def test_qualify_a_lead_opens_the_new_deal(client, ctx, party):
    lead = create(ctx, "lead", title="Warm lead", party_id=party.id, amount="750")
    body = client.get(f"/records/{lead}").get_data(as_text=True)
    assert f'action="/records/{lead}/qualify"' in body
    response = client.post(f"/records/{lead}/qualify")
    assert response.status_code == 303
    deal = int(response.headers["Location"].rsplit("/", 1)[1])
    created = records.get_record(ctx, deal)
    assert created.type == "deal" and created.title == "Warm lead" and created.party_id == party.id
    assert created.amount == Decimal("750")
    assert records.get_record(ctx, lead).status == "won"
    assert [(link["kind"], link["record"].id) for link in records.record_details(ctx, lead)["links_out"]] == [
        ("qualified_into", deal)]
    page = client.get(f"/records/{deal}").get_data(as_text=True)
    assert f'href="/records/{lead}"' in page and "Qualified from" in page
    # a deal is not qualified
    response = client.post(f"/records/{deal}/qualify")
    assert response.status_code == 422 and "only a lead can be qualified" in response.get_data(as_text=True)


def test_edit_and_archive(client, ctx, party, fields):
    deal = create(ctx, title="Old title", custom={"region": "North", "tier": "gold"})
    form = client.get(f"/records/{deal}/edit").get_data(as_text=True)
    assert 'value="Old title"' in form and 'value="North"' in form
    response = client.post(f"/records/{deal}/edit", {
        "title": "New title", "party_id": str(party.id), "contact_id": "", "owner_id": str(ctx.user_id),
        "amount": "20", "currency": "eur", "expected_close_date": "", "description": "", "proposed_solution": "",
        "custom.region": "", "custom.tier": "silver", "custom.units": "", "custom.nda": "0"})
    assert response.status_code == 303, response.get_data(as_text=True)
    record = records.get_record(ctx, deal)
    assert (record.title, record.party_id, record.amount, record.currency) == ("New title", party.id,
                                                                               Decimal("20"), "EUR")
    assert record.custom == {"tier": "silver", "nda": False}

    response = client.post(f"/records/{deal}/edit", {"title": "Newer", "currency": "EURO", "amount": "-1"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'value="EURO"' in body and 'value="Newer"' in body and "must not be negative" in body
    assert records.get_record(ctx, deal).title == "New title"

    response = client.post(f"/records/{deal}/archive")
    assert response.status_code == 303 and response.headers["Location"].endswith("/records/deal/")
    assert deal not in listed(client.get("/records/deal/").get_data(as_text=True))
    assert "archived" in client.get(f"/records/{deal}").get_data(as_text=True)
    assert client.post(f"/records/{deal}/restore").status_code == 303
    assert deal in listed(client.get("/records/deal/").get_data(as_text=True))


def test_team_stakeholders_competitors_and_solution(client, ctx, party, make_user, business):
    member = make_user(business, "member", email="sam@acme.example")
    contact = create_contact(ctx, {"first_name": "Joanna", "last_name": "Lumbergh", "party_id": party.id})
    add_option(ctx, "competitor", {"value": "globex", "label": "Globex Corp"})
    deal = create(ctx, party_id=party.id)
    page = client.get(f"/records/{deal}").get_data(as_text=True)
    assert "Joanna Lumbergh" in page  # offered as a stakeholder

    assert client.post(f"/records/{deal}/team", {"user_id": str(member.user_id),
                                                  "role": str(option_id(ctx, "team_role", "sales_engineer"))}
                       ).status_code == 303
    assert client.post(f"/records/{deal}/stakeholders", {
        "contact_id": str(contact.id), "role": str(option_id(ctx, "stakeholder_role", "champion")),
        "notes": "likes us"}).status_code == 303
    assert client.post(f"/records/{deal}/competitors", {"competitor": str(option_id(ctx, "competitor", "globex")),
                                                        "notes": "cheaper"}).status_code == 303
    assert client.post(f"/records/{deal}/solution", {"proposed_solution": "Two forklifts"}).status_code == 303
    body = client.get(f"/records/{deal}").get_data(as_text=True)
    for text in ("sam", "Sales engineer", "Joanna Lumbergh", "Champion", "likes us", "Globex Corp", "cheaper",
                 "Two forklifts"):
        assert text in body, text

    # refused input comes back beside its form
    response = client.post(f"/records/{deal}/team", {"user_id": "", "role": ""})
    assert response.status_code == 422 and "must be a positive whole number" in response.get_data(as_text=True)
    response = client.post(f"/records/{deal}/competitors", {"competitor": "", "notes": "kept notes"})
    assert response.status_code == 422 and "kept notes" in response.get_data(as_text=True)

    details = records.record_details(ctx, deal)
    stakeholder = details["stakeholders"][0]["stakeholder"].id
    entry = details["competitors"][0]["entry"].id
    other = create(ctx, title="Other deal")
    # a row is removed only through its own record's page
    assert client.post(f"/records/{other}/stakeholders/{stakeholder}/remove").status_code == 404
    assert client.post(f"/records/{deal}/team/{member.user_id}/remove").status_code == 303
    assert client.post(f"/records/{deal}/stakeholders/{stakeholder}/remove").status_code == 303
    assert client.post(f"/records/{deal}/competitors/{entry}/remove").status_code == 303
    details = records.record_details(ctx, deal)
    assert details["team"] == [] and details["stakeholders"] == [] and details["competitors"] == []


class Panels:
    @hookimpl
    def crm_record_panels(self, ctx, record):
        return [{"title": "Credit check", "html": Markup('<p class="credit">OK for {}</p>').format(record.title)},
                {"title": "Plain text", "html": "<b>not markup</b>", "order": 200}]


def test_plugin_panels(client, ctx, register_plugin):
    register_plugin(Panels(), enable_for=ctx)
    deal = create(ctx, title=f"Deal {XSS}")
    body = client.get(f"/records/{deal}").get_data(as_text=True)
    assert f'<p class="credit">OK for Deal {ESCAPED}</p>' in body
    assert "&lt;b&gt;not markup&lt;/b&gt;" in body
    assert body.index("Credit check") < body.index("Plain text")


# ---------------------------------------------------------------------------------------------
# tenancy, roles, escaping


@pytest.fixture
def theirs(other_ctx):
    """The other business's deal (with a stakeholder and a competitor), lead, party and pipeline."""
    party = create_party(other_ctx, {"kind": "organisation", "name": "Globex"})
    contact = create_contact(other_ctx, {"first_name": "Hank", "last_name": "Scorpio", "party_id": party.id})
    add_option(other_ctx, "competitor", {"value": "acme", "label": "Acme"})
    deal = create(other_ctx, title="Their deal", party_id=party.id)
    lead = create(other_ctx, "lead", title="Their lead")
    stakeholder = records.add_stakeholder(other_ctx, deal, contact.id).id
    entry = records.add_competitor(other_ctx, deal, "acme").id
    pipeline = pipelines.list_pipelines(other_ctx, "deal")[0]
    return {"deal": deal, "lead": lead, "party": party.id, "contact": contact.id, "stakeholder": stakeholder,
            "entry": entry, "pipeline": pipeline.id, "stage": pipeline.active_stages()[1].id,
            "user": other_ctx.user_id}


def write_routes(record_id, lead_id, stakeholder, entry, user_id, stage_id):
    return [
        (f"/records/{record_id}/move", {"stage_id": str(stage_id)}),
        (f"/records/{record_id}/won", {}),
        (f"/records/{record_id}/lost", {"lost_reason": "price"}),
        (f"/records/{record_id}/reopen", {}),
        (f"/records/{lead_id}/qualify", {}),
        (f"/records/{record_id}/solution", {"proposed_solution": "x"}),
        (f"/records/{record_id}/edit", {"title": "changed"}),
        (f"/records/{record_id}/archive", {}),
        (f"/records/{record_id}/restore", {}),
        (f"/records/{record_id}/team", {"user_id": str(user_id)}),
        (f"/records/{record_id}/team/{user_id}/remove", {}),
        (f"/records/{record_id}/stakeholders", {"contact_id": "1"}),
        (f"/records/{record_id}/stakeholders/{stakeholder}/remove", {}),
        (f"/records/{record_id}/competitors", {"competitor": "acme"}),
        (f"/records/{record_id}/competitors/{entry}/remove", {}),
        (f"/records/deal/new?source_id={record_id}", {"title": "next"}),
    ]


def test_another_business_s_ids_are_not_found_on_every_route(client, ctx, other_ctx, theirs):
    for url in (f"/records/{theirs['deal']}", f"/records/{theirs['deal']}/edit",
                f"/records/deal/new?source_id={theirs['deal']}", f"/records/deal/new?party_id={theirs['party']}",
                f"/records/deal/board?pipeline_id={theirs['pipeline']}"):
        assert client.get(url).status_code == 404, url
    routes = write_routes(theirs["deal"], theirs["lead"], theirs["stakeholder"], theirs["entry"], theirs["user"],
                          theirs["stage"])
    for url, data in routes:
        assert client.post(url, data).status_code == 404, url
    # their rows through our record's URLs
    ours = create(ctx)
    assert client.post(f"/records/{ours}/stakeholders/{theirs['stakeholder']}/remove").status_code == 404
    assert client.post(f"/records/{ours}/competitors/{theirs['entry']}/remove").status_code == 404
    # nothing of theirs changed
    details = records.record_details(other_ctx, theirs["deal"])
    assert details["record"].title == "Their deal" and details["record"].status == "open"
    assert len(details["stakeholders"]) == 1 and len(details["competitors"]) == 1
    assert details["record"].archived_at is None and details["links_out"] == []
    assert records.get_record(other_ctx, theirs["lead"]).status == "open"


def test_read_only_users_read_but_every_write_is_forbidden(app, ctx, business, make_user, party, stages):
    viewer = make_user(business, "read_only")
    contact = create_contact(ctx, {"first_name": "Peter", "last_name": "Gibbons", "party_id": party.id})
    add_option(ctx, "competitor", {"value": "globex", "label": "Globex"})
    deal = create(ctx, title="Read me", party_id=party.id)
    lead = create(ctx, "lead", title="A lead")
    stakeholder = records.add_stakeholder(ctx, deal, contact.id).id
    entry = records.add_competitor(ctx, deal, "globex").id
    records.add_team_member(ctx, deal, ctx.user_id)
    c = login(app, viewer)
    body = c.get(f"/records/{deal}").get_data(as_text=True)
    assert "Read me" in body
    assert f'action="/records/{deal}/won"' not in body and f"/records/{deal}/edit" not in body
    assert "New deal" not in c.get("/records/deal/").get_data(as_text=True)
    for url, data in write_routes(deal, lead, stakeholder, entry, ctx.user_id, stages["Proposal"]):
        assert c.post(url, data).status_code == 403, url
    details = records.record_details(ctx, deal)
    assert details["record"].title == "Read me" and details["record"].stage_id == stages["Qualification"]
    assert len(details["team"]) == len(details["stakeholders"]) == len(details["competitors"]) == 1


def test_user_text_is_escaped_everywhere(client, ctx, fields, stages):
    party = create_party(ctx, {"kind": "organisation", "name": f"Party {XSS}"})
    contact = create_contact(ctx, {"first_name": "Eve", "last_name": XSS, "party_id": party.id})
    add_option(ctx, "competitor", {"value": "evil", "label": f"Evil {XSS}"})
    deal = create(ctx, title=f"Title {XSS}", description=f"Description {XSS}", party_id=party.id,
                  proposed_solution=f"Solution {XSS}", custom={"region": f"Region {XSS}"})
    records.add_stakeholder(ctx, deal, contact.id, notes=f"Stakeholder {XSS}")
    records.add_competitor(ctx, deal, "evil", notes=f"Competitor {XSS}")
    records.move_stage(ctx, deal, stages["Proposal"], note=f"Move {XSS}")
    next_step = create(ctx, "action", title=f"Next {XSS}")
    pages = {
        "record": client.get(f"/records/{deal}").get_data(as_text=True),
        "list": client.get("/records/deal/").get_data(as_text=True),
        "edit": client.get(f"/records/{deal}/edit").get_data(as_text=True),
        "next step": client.get(f"/records/action/new?source_id={deal}").get_data(as_text=True),
        "list with filter": client.get(f"/records/deal/?q={XSS}").get_data(as_text=True),
        "action": client.get(f"/records/{next_step}").get_data(as_text=True),
    }
    for name, body in pages.items():
        assert XSS not in body, name
    record_page = pages["record"]
    for prefix in ("Title", "Description", "Party", "Solution", "Region", "Stakeholder", "Evil", "Competitor",
                   "Move"):
        assert f"{prefix} {ESCAPED}" in record_page, prefix
    assert f"Title {ESCAPED}" in pages["list"] and f"Party {ESCAPED}" in pages["list"]
    assert f"Description {ESCAPED}" in pages["edit"] and f"Region {ESCAPED}" in pages["edit"]
    assert f"Follow-up: Title {ESCAPED}" in pages["next step"]
    created = client.post("/records/deal/new", {"title": f"Posted {XSS}", "custom.units": "x"})
    assert created.status_code == 422 and XSS not in created.get_data(as_text=True)
