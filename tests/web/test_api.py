"""The JSON API: token auth, round trips over every resource, business isolation, roles, the
OpenAPI document and problem+json errors."""

from __future__ import annotations

import datetime as dt

import pytest

from crmcore import Veto, hookimpl
from crmcore.auth.service import create_api_token, revoke_api_token
from crmcore.db import utcnow

PROBLEM = "application/problem+json"


@pytest.fixture
def headers(ctx):
    return {"Authorization": f"Bearer {create_api_token(ctx, 'tests')[1]}"}


@pytest.fixture
def api(app, headers):
    """Requests to the API as the owner of acme: ``api.get(url)``, ``api.post(url, json)``, ..."""
    return Api(app.test_client(), headers)


class Api:
    def __init__(self, client, headers):
        self.client, self.headers = client, headers

    def __getattr__(self, method):
        def call(url, json=None, **kwargs):
            kwargs.setdefault("headers", self.headers)
            if json is not None:
                kwargs["json"] = json
            return getattr(self.client, method)(f"/api/v1{url}", **kwargs)

        return call


def assert_problem(response, status, *fields):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status and body["type"] == "about:blank" and body["title"]
    for field in fields:
        assert field in body.get("errors", {}), body
    return body


# --------------------------------------------------------------------------------------------
# authentication


def test_no_token_is_401_with_a_bearer_challenge(app, business):
    response = app.test_client().get("/api/v1/parties")
    body = assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error=" not in response.headers["WWW-Authenticate"]
    assert "Authorization: Bearer" in body["detail"]


@pytest.mark.parametrize("value", [
    "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer crm_abcdef123456_notarealsecret", "Bearer ",
    "Bearer crm_\x00_x", "Bearer crm_" + "a" * 500 + "_x",
])
def test_bad_tokens_are_401(app, business, value):
    response = app.test_client().get("/api/v1/parties", headers={"Authorization": value})
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_revoked_and_expired_tokens_are_401(app, ctx):
    row, token = create_api_token(ctx, "to revoke")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/parties", headers=auth).status_code == 200
    revoke_api_token(ctx, row.id)
    assert_problem(client.get("/api/v1/parties", headers=auth), 401)
    _row, expired = create_api_token(ctx, "old", expires_at=utcnow() - dt.timedelta(seconds=1))
    assert_problem(client.get("/api/v1/parties", headers={"Authorization": f"Bearer {expired}"}), 401)


def test_token_of_a_removed_member_is_401(app, ctx, make_user):
    from crmcore.tenancy.service import remove_member

    member = make_user(ctx.business, "member")
    _row, token = create_api_token(member, "mine")
    remove_member(ctx, member.user_id)
    assert_problem(app.test_client().get("/api/v1/parties", headers={"Authorization": f"Bearer {token}"}), 401)


def test_read_only_token_reads_but_gets_403_on_writes(app, ctx, make_user):
    from crmcore.parties.service import create_party
    from crmcore.tenancy.service import set_role

    member = make_user(ctx.business, "member")
    _row, token = create_api_token(member, "reader")
    set_role(ctx, member.user_id, "read_only")
    party = create_party(ctx, {"name": "Readable"})
    api = Api(app.test_client(), {"Authorization": f"Bearer {token}"})
    assert api.get(f"/parties/{party.id}").status_code == 200
    assert api.get("/parties").status_code == 200
    for method, url, body in [
        ("post", "/parties", {"name": "Nope"}),
        ("patch", f"/parties/{party.id}", {"name": "Nope"}),
        ("post", f"/parties/{party.id}/archive", None),
        ("post", "/contacts", {"first_name": "Nope"}),
        ("post", "/records", {"type": "deal", "title": "Nope"}),
        ("post", "/notes", {"body": "Nope", "party_id": party.id}),
        ("post", "/fields", {"target": "party", "key": "nope", "label": "Nope", "type": "text"}),
    ]:
        response = getattr(api, method)(url, json=body)
        body = assert_problem(response, 403)
        assert "read-only" in body["detail"] and body["code"] == "forbidden"


def test_members_cannot_configure(app, ctx, make_user):
    member = make_user(ctx.business, "member")
    _row, token = create_api_token(member, "member")
    api = Api(app.test_client(), {"Authorization": f"Bearer {token}"})
    assert_problem(api.post("/fields", json={"target": "party", "key": "k", "label": "K", "type": "text"}), 403)
    assert_problem(api.get("/plugins/core-records/settings"), 403)
    assert api.get("/plugins").status_code == 200


def test_the_api_needs_no_csrf_token_and_ignores_the_session(client, api):
    # a logged-in browser session without a token is not an API caller
    assert_problem(client.raw.post("/api/v1/parties", json={"name": "x"}), 401)
    assert api.post("/parties", json={"name": "Token Co"}).status_code == 201


# --------------------------------------------------------------------------------------------
# the OpenAPI document


def test_openapi_document_is_valid(app):
    from openapi_spec_validator import validate

    import crmcore

    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    validate(spec)
    assert spec["info"]["title"] == "crmcore API" and spec["info"]["version"] == crmcore.__version__
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "an API token: crm_<prefix>_<secret>"}
    assert spec["security"] == [{"bearerAuth": []}]
    problem_ref = spec["components"]["responses"]["NOT_FOUND"]["content"][PROBLEM]["schema"]
    assert problem_ref == {"$ref": "#/components/schemas/Problem"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            codes = set(operation["responses"])
            assert "401" in codes and "default" not in codes, (method, path)
            if method in ("post", "patch", "put", "delete"):
                assert {"400", "403", "404", "409", "422"} <= codes, (method, path)


def test_openapi_documents_every_api_route(app):
    import re

    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops
                  if method != "parameters"}
    routes = {(re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), method)
              for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert len(routes) > 40 and routes == documented


# --------------------------------------------------------------------------------------------
# round trips


def test_party_round_trip(api, ctx):
    response = api.post("/parties", json={
        "kind": "organisation", "name": "  Acme Trading  ", "is_customer": True, "tags": ["VIP", "Export"],
        "prospect_status": "contacted", "potential": "high", "language": "de", "currency": "usd",
        "mechanisms": [{"kind": "email", "value": "Sales@Acme-Trading.example"}],
        "addresses": [{"purpose": "shipping", "line1": "1 Dock Road", "city": "Hamburg", "country": "de"}],
        "sales_rep_ids": [ctx.user_id],
    })
    assert response.status_code == 201, response.get_json()
    party = response.get_json()
    assert party["name"] == "Acme Trading" and party["is_customer"] is True
    assert party["tags"] == ["Export", "VIP"] and party["prospect_status"] == "contacted"
    assert party["potential"] == "high" and party["currency"] == "USD" and party["sales_rep_ids"] == [ctx.user_id]
    assert party["mechanisms"][0]["value"] == "sales@acme-trading.example" and party["mechanisms"][0]["is_primary"]
    assert party["addresses"][0]["country"] == "DE" and party["addresses"][0]["is_default"]
    assert party["reference"] and party["created_at"].endswith("+00:00")
    pid = party["id"]

    assert api.get(f"/parties/{pid}").get_json() == party
    changed = api.patch(f"/parties/{pid}", json={"tags": ["VIP"], "tax_id": "DE123"}).get_json()
    assert changed["tags"] == ["VIP"] and changed["tax_id"] == "DE123" and changed["name"] == "Acme Trading"
    status = api.put(f"/parties/{pid}/prospect-status", json={"prospect_status": "qualified"})
    assert status.get_json()["prospect_status"] == "qualified"
    assert api.put(f"/parties/{pid}/prospect-status", json={"prospect_status": None}).get_json()[
        "prospect_status"] is None
    archived = api.post(f"/parties/{pid}/archive").get_json()
    assert archived["archived_at"] is not None
    assert pid not in [p["id"] for p in api.get("/parties").get_json()["items"]]
    assert pid in [p["id"] for p in api.get("/parties?archived=true").get_json()["items"]]
    assert api.post(f"/parties/{pid}/restore").get_json()["archived_at"] is None


def test_person_party(api):
    person = api.post("/parties", json={"kind": "person", "first_name": "Ada", "last_name": "Lovelace"})
    assert person.status_code == 201
    assert person.get_json()["name"] == "Ada Lovelace"


def test_mechanisms_and_addresses_round_trip(api):
    pid = api.post("/parties", json={"name": "Mech Co"}).get_json()["id"]
    first = api.post(f"/parties/{pid}/mechanisms", json={"kind": "phone", "value": "+49 30 1234567"})
    assert first.status_code == 201 and first.get_json()["is_primary"] is True
    second = api.post(f"/parties/{pid}/mechanisms", json={"kind": "phone", "value": "+49 30 7654321",
                                                         "is_primary": True}).get_json()
    listed = api.get(f"/parties/{pid}/mechanisms").get_json()
    assert [m["is_primary"] for m in listed] == [False, True]
    patched = api.patch(f"/mechanisms/{second['id']}", json={"label": "Office"}).get_json()
    assert patched["label"] == "Office"
    assert api.delete(f"/mechanisms/{second['id']}").status_code == 204
    assert [m["is_primary"] for m in api.get(f"/parties/{pid}/mechanisms").get_json()] == [True]

    address = api.post(f"/parties/{pid}/addresses", json={"line1": "Main St 1", "purpose": "ship-to"})
    assert address.status_code == 201 and address.get_json()["purpose"] == "shipping"
    aid = address.get_json()["id"]
    assert api.patch(f"/addresses/{aid}", json={"city": "Berlin"}).get_json()["city"] == "Berlin"
    assert [a["id"] for a in api.get(f"/parties/{pid}/addresses").get_json()] == [aid]
    assert api.delete(f"/addresses/{aid}").status_code == 204
    assert api.get(f"/parties/{pid}/addresses").get_json() == []
    assert_problem(api.delete(f"/addresses/{aid}"), 404)


def test_contacts_round_trip(api):
    pid = api.post("/parties", json={"name": "Contact Co"}).get_json()["id"]
    loose = api.post("/contacts", json={"first_name": "Lou", "last_name": "Loose",
                                        "mechanisms": [{"kind": "email", "value": "lou@example.com"}]})
    assert loose.status_code == 201 and loose.get_json()["party_id"] is None
    cid = loose.get_json()["id"]
    unassigned = api.get("/contacts?unassigned=true").get_json()
    assert [c["id"] for c in unassigned["items"]] == [cid]
    assert unassigned["items"][0]["mechanisms"][0]["value"] == "lou@example.com"
    moved = api.post(f"/contacts/{cid}/move", json={"party_id": pid}).get_json()
    assert moved["party_id"] == pid
    assert api.get("/contacts?unassigned=true").get_json()["items"] == []
    assert [c["id"] for c in api.get(f"/contacts?party_id={pid}").get_json()["items"]] == [cid]
    assert api.patch(f"/contacts/{cid}", json={"job_title": "Buyer"}).get_json()["job_title"] == "Buyer"
    got = api.get(f"/contacts/{cid}").get_json()
    assert got["name"] == "Lou Loose" and got["job_title"] == "Buyer"
    added = api.post(f"/contacts/{cid}/mechanisms", json={"kind": "mobile", "value": "+49 151 2345678"})
    assert added.status_code == 201 and added.get_json()["contact_id"] == cid
    assert api.post(f"/contacts/{cid}/move", json={"party_id": None}).get_json()["party_id"] is None


def _stage(api, name, record_type="deal"):
    pipelines = api.get(f"/pipelines?type={record_type}").get_json()
    return next(s for s in pipelines[0]["stages"] if s["name"] == name)


def test_records_round_trip_with_moves(api):
    pid = api.post("/parties", json={"name": "Deal Co", "currency": "GBP"}).get_json()["id"]
    created = api.post("/records", json={"type": "deal", "title": "Big one", "party_id": pid, "amount": "1250.50"})
    assert created.status_code == 201, created.get_json()
    deal = created.get_json()
    assert deal["amount"] == "1250.50" and deal["currency"] == "GBP" and deal["status"] == "open"
    assert deal["stage_id"] == _stage(api, "Qualification")["id"]
    rid = deal["id"]
    assert api.get(f"/records/{rid}").get_json() == deal
    assert api.patch(f"/records/{rid}", json={"title": "Bigger one"}).get_json()["title"] == "Bigger one"
    body = assert_problem(api.patch(f"/records/{rid}", json={"stage_id": 1}), 422, "stage_id")
    assert "move" in str(body["errors"]["stage_id"])

    moved = api.post(f"/records/{rid}/moves", json={"stage_id": _stage(api, "Proposal")["id"], "note": "sent"})
    assert moved.get_json()["stage_id"] == _stage(api, "Proposal")["id"]
    lost = api.post(f"/records/{rid}/lost", json={"lost_reason": "price", "note": "too dear"}).get_json()
    assert lost["status"] == "lost" and lost["lost_note"] == "too dear" and lost["closed_at"]
    assert_problem(api.post(f"/records/{rid}/lost", json={"lost_reason": "price"}), 409)
    reopened = api.post(f"/records/{rid}/reopen").get_json()
    assert reopened["status"] == "open" and reopened["stage_id"] == _stage(api, "Proposal")["id"]
    won = api.post(f"/records/{rid}/won", json={}).get_json()
    assert won["status"] == "won" and won["lost_reason_id"] is None

    follow = api.post("/records", json={"type": "action", "source_id": rid}).get_json()
    assert follow["title"] == "Follow-up: Bigger one" and follow["party_id"] == pid
    listed = api.get(f"/records?type=deal&party_id={pid}").get_json()
    assert [r["id"] for r in listed["items"]] == [rid] and listed["total"] == {"count": 1, "capped": False}


def test_lead_qualification(api):
    lead = api.post("/records", json={"type": "lead", "title": "Inbound", "amount": 500}).get_json()
    deal = api.post(f"/records/{lead['id']}/qualify", json={"title": "Inbound deal"})
    assert deal.status_code == 201, deal.get_json()
    assert deal.get_json()["type"] == "deal" and deal.get_json()["amount"] == "500.00"
    assert api.get(f"/records/{lead['id']}").get_json()["status"] == "won"
    assert_problem(api.post(f"/records/{lead['id']}/qualify"), 409)
    body = assert_problem(api.post(f"/records/{deal.get_json()['id']}/qualify"), 422, "lead_id")
    assert "not a lead" in body["detail"]


def test_a_plugin_veto_is_a_409_with_its_message(api, ctx, register_plugin):
    class Gate:
        @hookimpl
        def crm_before_stage_change(self, ctx, record, from_stage, to_stage):
            if to_stage.name == "Negotiation":
                raise Veto("legal must approve first")

    register_plugin(Gate(), enable_for=ctx)
    rid = api.post("/records", json={"type": "deal", "title": "Gated"}).get_json()["id"]
    body = assert_problem(api.post(f"/records/{rid}/moves", json={"stage_id": _stage(api, "Negotiation")["id"]}),
                          409)
    assert body["detail"] == "legal must approve first" and body["code"] == "vetoed"
    assert api.get(f"/records/{rid}").get_json()["stage_id"] == _stage(api, "Qualification")["id"]


def test_pipelines_and_stages(api):
    pipelines = api.get("/pipelines").get_json()
    assert {p["record_type"] for p in pipelines} == {"lead", "deal", "incident", "action"}
    deal = next(p for p in pipelines if p["record_type"] == "deal")
    assert [s["kind"] for s in deal["stages"]][-2:] == ["won", "lost"]
    assert api.get(f"/pipelines/{deal['id']}").get_json() == deal
    assert api.get(f"/pipelines/{deal['id']}/stages").get_json() == deal["stages"]
    assert_problem(api.get("/pipelines?type=spaceship"), 422, "type")


def test_notes(api):
    pid = api.post("/parties", json={"name": "Noted"}).get_json()["id"]
    rid = api.post("/records", json={"type": "deal", "title": "Noted deal", "party_id": pid}).get_json()["id"]
    first = api.post("/notes", json={"body": "On the party", "party_id": pid})
    assert first.status_code == 201 and first.get_json()["pinned"] is False
    second = api.post("/notes", json={"body": "On the deal", "record_id": rid, "pinned": True}).get_json()
    assert second["party_id"] == pid
    on_party = api.get(f"/notes?party_id={pid}").get_json()
    assert [n["body"] for n in on_party["items"]] == ["On the deal", "On the party"]
    assert [n["id"] for n in api.get(f"/notes?record_id={rid}").get_json()["items"]] == [second["id"]]
    assert_problem(api.get("/notes"), 422, "party_id")
    assert_problem(api.post("/notes", json={"body": "nowhere"}), 422, "party_id")


def test_custom_fields(api):
    created = api.post("/fields", json={"target": "party", "key": "industry", "label": "Industry", "type": "text"})
    assert created.status_code == 201, created.get_json()
    field = created.get_json()
    assert field["options"] == {} and field["required"] is False
    assert api.get("/fields?target=party").get_json() == [field]
    assert api.patch(f"/fields/{field['id']}", json={"label": "Sector"}).get_json()["label"] == "Sector"
    body = assert_problem(api.patch(f"/fields/{field['id']}", json={"type": "integer"}), 409, "type")
    assert "cannot be changed" in body["detail"]
    assert_problem(api.post("/fields", json={"target": "party", "key": "industry", "label": "X", "type": "text"}),
                   409, "key")
    assert api.post(f"/fields/{field['id']}/archive").get_json()["archived_at"] is not None
    assert api.get("/fields?target=party").get_json() == []
    assert len(api.get("/fields?target=party&include_archived=true").get_json()) == 1
    assert_problem(api.get("/fields?target=nowhere"), 422, "target")
    assert_problem(api.get("/fields"), 422, "target")


def test_plugins(api, ctx, register_plugin):
    import marshmallow as ma

    from crmcore import PluginInfo

    class Settings(ma.Schema):
        api_key = ma.fields.String(required=True, metadata={"secret": True})
        region = ma.fields.String(load_default="eu")

    class Gateway:
        pass

    name = register_plugin(Gateway(), info=PluginInfo(title="Gateway", version="2.1", settings_schema=Settings))
    listed = {p["name"]: p for p in api.get("/plugins").get_json()}
    assert listed[name]["enabled"] is False and listed[name]["version"] == "2.1"
    assert listed["core-records"]["essential"] is True
    body = assert_problem(api.post(f"/plugins/{name}/enable"), 422, "api_key")
    enabled = api.post(f"/plugins/{name}/enable", json={"settings": {"api_key": "sk_live_123"}})
    assert enabled.status_code == 200 and enabled.get_json()["enabled"] is True
    settings = api.get(f"/plugins/{name}/settings").get_json()
    assert settings["plugin"] == name and settings["settings"]["region"] == "eu"
    assert "sk_live" not in str(settings) and settings["settings"]["api_key"].startswith("•")
    saved = api.put(f"/plugins/{name}/settings", json={"settings": {"api_key": "", "region": "us"}}).get_json()
    assert saved["settings"]["region"] == "us" and "sk_live" not in str(saved)
    assert ctx.plugin_settings(name)["api_key"] == "sk_live_123"
    body = assert_problem(api.put(f"/plugins/{name}/settings", json={"settings": {"region": 5}}), 422, "region")
    assert body["code"] == "invalid"
    assert api.post(f"/plugins/{name}/disable").get_json()["enabled"] is False
    assert_problem(api.post("/plugins/core-records/disable"), 409)
    assert_problem(api.post("/plugins/no-such-plugin/enable"), 404)
    assert_problem(api.get("/plugins/no-such-plugin/settings"), 404)


# --------------------------------------------------------------------------------------------
# business isolation


@pytest.fixture
def foreign(other_ctx):
    """One of everything in business globex."""
    from crmcore.fields.service import define_field
    from crmcore.parties import service as parties
    from crmcore.pipelines.service import list_pipelines
    from crmcore.records import service as records
    from crmcore.timeline.service import add_note

    party = parties.create_party(other_ctx, {
        "name": "Globex Secret", "mechanisms": [{"kind": "email", "value": "boss@globex.example"}],
        "addresses": [{"line1": "Secret St 1"}]})
    details = parties.party_details(other_ctx, party.id)
    contact = parties.create_contact(other_ctx, {"first_name": "Hidden", "party_id": party.id})
    lead = records.create_record(other_ctx, "lead", {"title": "Their lead", "party_id": party.id})
    deal = records.create_record(other_ctx, "deal", {"title": "Their deal", "party_id": party.id})
    pipeline = list_pipelines(other_ctx, "deal")[0]
    field = define_field(other_ctx, "party", {"key": "secret", "label": "Secret", "type": "text"})
    add_note(other_ctx, body="their note", party_id=party.id)
    return {"party": party.id, "mechanism": details["mechanisms"][0].id, "address": details["addresses"][0].id,
            "contact": contact.id, "lead": lead.id, "deal": deal.id, "pipeline": pipeline.id,
            "stage": pipeline.stages[1].id, "field": field.id}


def foreign_requests(ids):
    p, r = ids["party"], ids["deal"]
    return [
        ("get", f"/parties/{p}", None), ("patch", f"/parties/{p}", {"name": "Mine now"}),
        ("post", f"/parties/{p}/archive", None), ("post", f"/parties/{p}/restore", None),
        ("put", f"/parties/{p}/prospect-status", {"prospect_status": "new"}),
        ("get", f"/parties/{p}/mechanisms", None),
        ("post", f"/parties/{p}/mechanisms", {"kind": "email", "value": "x@example.com"}),
        ("patch", f"/mechanisms/{ids['mechanism']}", {"label": "mine"}),
        ("delete", f"/mechanisms/{ids['mechanism']}", None),
        ("get", f"/parties/{p}/addresses", None), ("post", f"/parties/{p}/addresses", {"line1": "x"}),
        ("patch", f"/addresses/{ids['address']}", {"city": "x"}), ("delete", f"/addresses/{ids['address']}", None),
        ("get", f"/contacts?party_id={p}", None), ("get", f"/contacts/{ids['contact']}", None),
        ("patch", f"/contacts/{ids['contact']}", {"job_title": "x"}),
        ("post", f"/contacts/{ids['contact']}/move", {"party_id": None}),
        ("post", f"/contacts/{ids['contact']}/mechanisms", {"kind": "email", "value": "y@example.com"}),
        ("get", f"/records/{r}", None), ("patch", f"/records/{r}", {"title": "x"}),
        ("post", f"/records/{r}/moves", {"stage_id": ids["stage"]}), ("post", f"/records/{r}/won", None),
        ("post", f"/records/{r}/lost", {"lost_reason": "price"}), ("post", f"/records/{r}/reopen", None),
        ("post", f"/records/{ids['lead']}/qualify", None),
        ("get", f"/pipelines/{ids['pipeline']}", None), ("get", f"/pipelines/{ids['pipeline']}/stages", None),
        ("get", f"/notes?party_id={p}", None), ("get", f"/notes?record_id={r}", None),
        ("patch", f"/fields/{ids['field']}", {"label": "x"}), ("post", f"/fields/{ids['field']}/archive", None),
    ]


def test_other_businesses_ids_are_404_everywhere(api, foreign, other_ctx):
    from crmcore.parties.service import get_party
    from crmcore.records.service import get_record

    missing = {k: 10**9 for k in foreign}
    for (method, url, body), (_m, missing_url, _b) in zip(foreign_requests(foreign), foreign_requests(missing),
                                                          strict=True):
        response = getattr(api, method)(url, json=body)
        problem = assert_problem(response, 404)
        # the same answer as for an id that does not exist at all
        other = getattr(api, method)(missing_url, json=body)
        assert other.status_code == 404 and "globex" not in response.get_data(as_text=True).lower(), url
        assert problem["code"] == other.get_json()["code"] == "not_found"
    assert get_party(other_ctx, foreign["party"]).name == "Globex Secret"
    assert get_record(other_ctx, foreign["deal"]).title == "Their deal"


def test_references_to_other_businesses_in_bodies_are_refused(api, foreign):
    body = assert_problem(api.post("/records", json={"type": "deal", "title": "x", "party_id": foreign["party"]}),
                          422, "party_id")
    assert "not found" in str(body["errors"])
    assert_problem(api.post("/contacts", json={"first_name": "x", "party_id": foreign["party"]}), 404)
    assert_problem(api.post("/notes", json={"body": "x", "party_id": foreign["party"]}), 404)
    own = api.post("/contacts", json={"first_name": "Mine"}).get_json()["id"]
    assert_problem(api.post(f"/contacts/{own}/move", json={"party_id": foreign["party"]}), 404)
    assert api.get(f"/records?party_id={foreign['party']}").get_json()["items"] == []


# --------------------------------------------------------------------------------------------
# errors


def test_unknown_routes_and_methods_are_problems(api):
    assert_problem(api.get("/nothing-here"), 404)
    assert_problem(api.get("/parties/0"), 404)
    assert_problem(api.get(f"/parties/{2**63}"), 404)
    assert_problem(api.put("/parties"), 405)
