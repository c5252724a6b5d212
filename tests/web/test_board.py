"""The deals board: columns and cards, the pipeline switcher, moves by drag and drop (crm.js's
fetch), by the cards' stage select, and what refuses a move."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from crmcore import hookimpl
from crmcore.errors import Veto
from crmcore.parties.service import create_party
from crmcore.pipelines import service as pipelines
from crmcore.records import service as records

XSS = "<script>alert(1)</script>"


@pytest.fixture
def party(ctx):
    return create_party(ctx, {"kind": "organisation", "name": "Initech", "currency": "USD"})


@pytest.fixture
def stages(ctx):
    """The default deal pipeline's stages: name -> id (and the pipeline as ``_pipeline``)."""
    pipeline = pipelines.list_pipelines(ctx, "deal")[0]
    out = {s.name: s.id for s in pipeline.active_stages()}
    out["_pipeline"] = pipeline.id
    return out


def deal(ctx, title="Deal", **data):
    return records.create_record(ctx, "deal", {"title": title, **data}).id


def columns(body: str) -> dict[str, list[int]]:
    """Stage id -> the record ids of the cards in its column, from the board's HTML."""
    out = {}
    for chunk in body.split('<section class="column')[1:]:
        stage = re.search(r'data-stage-id="(\d+)"', chunk).group(1)
        out[stage] = [int(i) for i in re.findall(r'data-card data-record-id="(\d+)"', chunk)]
    return out


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


def test_board_shows_every_stage_with_its_cards(client, ctx, party, stages):
    first = deal(ctx, "Forklifts for Initech", party_id=party.id, amount="12500.5")
    second = deal(ctx, "Racking")
    records.move_stage(ctx, second, stages["Proposal"])
    won = deal(ctx, "Pallets")
    records.close_won(ctx, won)
    response = client.get("/records/deal/board")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    cards = columns(body)
    assert set(cards) == {str(v) for k, v in stages.items() if k != "_pipeline"}
    assert cards[str(stages["Qualification"])] == [first]
    assert cards[str(stages["Proposal"])] == [second]
    assert cards[str(stages["Won"])] == [won]
    assert cards[str(stages["Lost"])] == []
    for name in ("Qualification", "Needs analysis", "Proposal", "Negotiation", "Won", "Lost"):
        assert f'data-stage-name="{name}"' in body
    # the card: title, party, amount in its currency, owner, days in stage, the move protocol
    assert "Forklifts for Initech" in body and "Initech" in body
    assert "$12,500.50" in body
    assert "Acme Equipment Owner" in body and "0 d" in body
    assert f'data-move-url="/records/{first}/move" draggable="true"' in body
    assert 'class="card-move" data-autosubmit' in body  # the stage select without drag and drop


def test_the_menu_leads_to_the_board_and_the_lists(client, business):
    body = client.get("/records/deal/board").get_data(as_text=True)
    nav = body[body.index('class="mainnav"'):body.index("</nav>")]
    assert 'href="/records/deal/board"' in nav and ">Deals<" in nav
    assert 'href="/records/lead/"' in nav and ">Leads<" in nav
    assert 'href="/records/incident/"' in nav and ">Incidents<" in nav


def test_pipeline_switcher(client, ctx, stages):
    service = pipelines.create_pipeline(ctx, "deal", {"name": "Service contracts", "stages": [
        {"name": "Offer", "kind": "open"}, {"name": "Signed", "kind": "won"}, {"name": "Dropped", "kind": "lost"}]})
    in_sales = deal(ctx, "In sales")
    in_service = records.create_record(ctx, "deal", {"title": "In service", "pipeline_id": service.id}).id
    default = client.get("/records/deal/board").get_data(as_text=True)
    assert "In sales" in default and "In service" not in default
    assert f'href="/records/deal/board?pipeline_id={service.id}"' in default
    other = client.get(f"/records/deal/board?pipeline_id={service.id}").get_data(as_text=True)
    assert "In service" in other and "In sales" not in other
    assert 'data-stage-name="Offer"' in other and 'data-stage-name="Qualification"' not in other
    assert in_sales != in_service
    # a pipeline of another type is not this board's
    lead_pipeline = pipelines.list_pipelines(ctx, "lead")[0].id
    assert client.get(f"/records/deal/board?pipeline_id={lead_pipeline}").status_code == 404
    assert client.get("/records/deal/board?pipeline_id=abc").status_code == 404


def test_other_types_have_boards_and_unknown_types_do_not(client, ctx):
    records.create_record(ctx, "incident", {"title": "Broken lift"})
    body = client.get("/records/incident/board").get_data(as_text=True)
    assert "Broken lift" in body and 'data-stage-name="Waiting for customer"' in body
    assert client.get("/records/spaceship/board").status_code == 404


def test_drag_and_drop_move_is_stored_in_the_history(client, ctx, stages):
    record_id = deal(ctx, "Moving deal")
    response = client.fetch(f"/records/{record_id}/move", {"stage_id": str(stages["Proposal"])})
    assert response.status_code == 200
    assert response.get_json() == {"record_id": record_id, "stage_id": stages["Proposal"], "status": "open"}
    history = records.stage_history(ctx, record_id)
    assert [(h.from_stage_id, h.to_stage_id) for h in history][-1] == (stages["Qualification"], stages["Proposal"])
    assert history[-1].user_id == ctx.user_id
    assert columns(client.get("/records/deal/board").get_data(as_text=True))[str(stages["Proposal"])] == [record_id]


def test_a_move_into_a_won_stage_closes_the_deal_as_won(client, ctx, stages):
    record_id = deal(ctx)
    response = client.fetch(f"/records/{record_id}/move", {"stage_id": str(stages["Won"])})
    assert response.status_code == 200 and response.get_json()["status"] == "won"
    record = records.get_record(ctx, record_id)
    assert record.status == "won" and record.closed_at is not None


def test_a_move_into_a_lost_stage_asks_for_the_reason(client, ctx, stages):
    record_id = deal(ctx)
    response = client.fetch(f"/records/{record_id}/move", {"stage_id": str(stages["Lost"])})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "lost reason" in body and "Lost" in body
    record = records.get_record(ctx, record_id)
    assert record.status == "open" and record.stage_id == stages["Qualification"]
    assert len(records.stage_history(ctx, record_id)) == 1


def test_a_bad_stage_is_refused(client, ctx, stages):
    record_id = deal(ctx)
    lead_stage = pipelines.list_pipelines(ctx, "lead")[0].active_stages()[0].id
    response = client.fetch(f"/records/{record_id}/move", {"stage_id": str(lead_stage)})
    assert response.status_code == 422 and "belongs to pipeline" in response.get_data(as_text=True)
    assert client.fetch(f"/records/{record_id}/move", {}).status_code == 422
    assert records.get_record(ctx, record_id).stage_id == stages["Qualification"]


class NeedsAnNda:
    @hookimpl
    def crm_before_stage_change(self, ctx, record, from_stage, to_stage):
        if to_stage.name == "Proposal":
            raise Veto("A proposal needs a signed NDA <first>")


def test_a_plugin_veto_answers_409_with_its_message(client, ctx, stages, register_plugin):
    register_plugin(NeedsAnNda(), enable_for=ctx)
    record_id = deal(ctx)
    response = client.fetch(f"/records/{record_id}/move", {"stage_id": str(stages["Proposal"])})
    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert "A proposal needs a signed NDA &lt;first&gt;" in body  # shown by crm.js, escaped
    record = records.get_record(ctx, record_id)
    assert record.stage_id == stages["Qualification"]
    assert len(records.stage_history(ctx, record_id)) == 1
    # other moves still go through
    assert client.fetch(f"/records/{record_id}/move", {"stage_id": str(stages["Negotiation"])}).status_code == 200


def test_the_stage_select_moves_without_javascript(client, ctx, stages):
    record_id = deal(ctx, "No script")
    response = client.post(f"/records/{record_id}/move", {"stage_id": str(stages["Negotiation"]),
                                                          "next": "/records/deal/board?pipeline_id=1"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/records/deal/board?pipeline_id=1")
    assert records.get_record(ctx, record_id).stage_id == stages["Negotiation"]
    # never off-site
    response = client.post(f"/records/{record_id}/move", {"stage_id": str(stages["Proposal"]),
                                                          "next": "https://evil.example/"})
    assert response.status_code == 303
    assert "evil.example" not in response.headers["Location"]


def test_the_board_runs_the_same_queries_for_5_or_40_deals(crm, client, ctx, party, stages):
    open_stages = [stages[n] for n in ("Qualification", "Needs analysis", "Proposal", "Negotiation")]

    def fill(n):
        for i in range(n):
            record_id = deal(ctx, f"Deal {i}", party_id=party.id if i % 2 else None, amount="10")
            if i % 4:
                records.move_stage(ctx, record_id, open_stages[i % 4])

    fill(5)
    client.get("/records/deal/board")  # warm caches (relays, templates)
    with count_queries(crm) as few:
        assert client.get("/records/deal/board").status_code == 200
    fill(35)
    with count_queries(crm) as many:
        body = client.get("/records/deal/board").get_data(as_text=True)
    assert body.count("data-card ") == 40
    assert len(many) == len(few), "\n".join(many)


def test_cards_per_column_are_capped_with_a_link_to_the_rest(client, ctx, stages):
    for i in range(51):  # the board shows 50 cards a column
        deal(ctx, f"Deal {i}")
    body = client.get("/records/deal/board").get_data(as_text=True)
    assert len(columns(body)[str(stages["Qualification"])]) == 50
    assert f"stage_id={stages['Qualification']}" in body and "All 51" in body


def test_another_business_cannot_see_or_move_our_deals(client, ctx, other_ctx, stages):
    theirs = records.create_record(other_ctx, "deal", {"title": "Their deal"}).id
    their_pipeline = pipelines.list_pipelines(other_ctx, "deal")[0]
    their_stage = their_pipeline.active_stages()[1].id
    assert client.get(f"/records/deal/board?pipeline_id={their_pipeline.id}").status_code == 404
    assert client.fetch(f"/records/{theirs}/move", {"stage_id": str(their_stage)}).status_code == 404
    assert client.post(f"/records/{theirs}/move", {"stage_id": str(their_stage)}).status_code == 404
    assert records.get_record(other_ctx, theirs).stage_id == their_pipeline.active_stages()[0].id
    assert "Their deal" not in client.get("/records/deal/board").get_data(as_text=True)
    # our deal into their stage: not found, as a stage of ours
    ours = deal(ctx)
    assert client.fetch(f"/records/{ours}/move", {"stage_id": str(their_stage)}).status_code == 422


def test_read_only_users_see_the_board_but_cannot_move(app, crm, ctx, business, make_user, stages):
    from crmcore.testing import CrmClient

    record_id = deal(ctx, "Look, do not touch")
    viewer = make_user(business, "read_only")
    c = CrmClient(app.test_client())
    c.login(viewer.user.email)
    body = c.get("/records/deal/board").get_data(as_text=True)
    assert "Look, do not touch" in body
    assert 'draggable="true"' not in body and "card-move" not in body
    assert c.fetch(f"/records/{record_id}/move", {"stage_id": str(stages["Proposal"])}).status_code == 403
    assert records.get_record(ctx, record_id).stage_id == stages["Qualification"]


def test_card_text_is_escaped(client, ctx):
    party = create_party(ctx, {"kind": "organisation", "name": f"Evil {XSS} Ltd"})
    deal(ctx, f"Deal {XSS}", party_id=party.id)
    body = client.get("/records/deal/board").get_data(as_text=True)
    assert XSS not in body
    assert "Deal &lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "Evil &lt;script&gt;alert(1)&lt;/script&gt; Ltd" in body
