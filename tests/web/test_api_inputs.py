"""Bad input to every write endpoint of the API: malformed JSON, a body that is not an object,
unknown fields, wrong types, oversized strings, NUL characters and 65-bit numbers. Each is a
problem+json answer naming the field (400 for a body that is not JSON), and nothing is written."""

from __future__ import annotations

import pytest

from crmcore.audit.service import list_entries
from crmcore.auth.service import create_api_token
from crmcore.fields.service import define_field
from crmcore.parties.service import create_contact, create_party, party_details
from crmcore.pipelines.service import list_pipelines
from crmcore.records.service import create_record

PROBLEM = "application/problem+json"
HUGE = 2**70
LONG = "x" * 100_001  # past every text limit the API has (names: 300, notes: 20,000, ...)


@pytest.fixture
def ids(ctx):
    party = create_party(ctx, {"name": "Target", "mechanisms": [{"kind": "email", "value": "t@example.com"}],
                               "addresses": [{"line1": "Target St 1"}]})
    details = party_details(ctx, party.id)
    contact = create_contact(ctx, {"first_name": "Tia", "party_id": party.id})
    deal = create_record(ctx, "deal", {"title": "Target deal", "party_id": party.id})
    lead = create_record(ctx, "lead", {"title": "Target lead"})
    field = define_field(ctx, "party", {"key": "size", "label": "Size", "type": "integer"})
    stage = list_pipelines(ctx, "deal")[0].stages[1]
    return {"p": party.id, "m": details["mechanisms"][0].id, "a": details["addresses"][0].id, "c": contact.id,
            "r": deal.id, "lead": lead.id, "f": field.id, "stage": stage.id}


def write_endpoints(i):
    """(method, url, a valid body, a text field, a typed field with a value of the wrong type)."""
    return [
        ("post", "/parties", {"name": "X"}, "name", ("is_customer", [1])),
        ("patch", f"/parties/{i['p']}", {"name": "X"}, "name", ("tags", "vip")),
        ("put", f"/parties/{i['p']}/prospect-status", {"prospect_status": "new"}, "prospect_status",
         ("prospect_status", {"a": 1})),
        ("post", f"/parties/{i['p']}/archive", {}, None, None),
        ("post", f"/parties/{i['p']}/restore", {}, None, None),
        ("post", f"/parties/{i['p']}/mechanisms", {"kind": "email", "value": "n@example.com"}, "value",
         ("is_primary", [1])),
        ("patch", f"/mechanisms/{i['m']}", {"label": "Office"}, "label", ("is_primary", "sometimes")),
        ("post", f"/parties/{i['p']}/addresses", {"line1": "Elm St 2"}, "line1", ("is_default", {})),
        ("patch", f"/addresses/{i['a']}", {"city": "Bonn"}, "city", ("purpose", 7)),
        ("post", "/contacts", {"first_name": "New"}, "first_name", ("party_id", "abc")),
        ("patch", f"/contacts/{i['c']}", {"job_title": "Boss"}, "job_title", ("custom", "not an object")),
        ("post", f"/contacts/{i['c']}/move", {"party_id": None}, "party_id", ("party_id", 1.5)),
        ("post", f"/contacts/{i['c']}/mechanisms", {"kind": "phone", "value": "+49 30 123456"}, "value",
         ("kind", 3)),
        ("post", "/records", {"type": "deal", "title": "New"}, "title", ("amount", "lots")),
        ("patch", f"/records/{i['r']}", {"title": "Renamed"}, "title", ("expected_close_date", "soon")),
        ("post", f"/records/{i['r']}/moves", {"stage_id": i["stage"]}, "note", ("stage_id", "abc")),
        ("post", f"/records/{i['r']}/won", {}, "note", ("stage_id", [])),
        ("post", f"/records/{i['r']}/lost", {"lost_reason": "price"}, "lost_reason", ("stage_id", True)),
        ("post", f"/records/{i['r']}/reopen", {}, "note", ("stage_id", "first")),
        ("post", f"/records/{i['lead']}/qualify", {}, "title", ("amount", {"v": 1})),
        ("post", "/notes", {"body": "Hello", "party_id": i["p"]}, "body", ("pinned", [1])),
        ("post", "/fields", {"target": "party", "key": "extra", "label": "Extra", "type": "text"}, "label",
         ("required", [1])),
        ("patch", f"/fields/{i['f']}", {"label": "Size!"}, "label", ("position", "first")),
        ("post", f"/fields/{i['f']}/archive", {}, None, None),
        ("post", "/plugins/core-records/enable", {}, "settings", ("settings", 5)),
        ("post", "/plugins/core-records/disable", {}, None, None),
        ("put", "/plugins/core-records/settings", {"settings": {}}, "settings", ("settings", [1])),
    ]


@pytest.fixture
def send(app, ctx):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {create_api_token(ctx, 'inputs')[1]}"}

    def call(method, url, **kwargs):
        return getattr(client, method)(f"/api/v1{url}", headers=headers, **kwargs)

    return call


def last_audit_id(ctx):
    entries = list_entries(ctx, limit=1).items
    return entries[0].id if entries else None


def problem(response, status):
    assert response.status_code == status, (response.request.path, response.get_data(as_text=True)[:500])
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    return body


def test_every_write_endpoint_refuses_bad_input(ctx, ids, send):
    before = last_audit_id(ctx)
    endpoints = write_endpoints(ids)
    assert len(endpoints) == 27
    for method, url, valid, text_field, typed in endpoints:
        where = f"{method.upper()} {url}"
        # not JSON at all
        body = problem(send(method, url, data='{"name": ', content_type="application/json"), 400)
        assert body["code"] == "malformed", where
        problem(send(method, url, data=b'{"a": "\xff\xfe"}', content_type="application/json"), 400)
        problem(send(method, url, data="[" * 100_000, content_type="application/json"), 400)
        # JSON, but not an object
        assert "_schema" in problem(send(method, url, json=[valid]), 422)["errors"], where
        assert "_schema" in problem(send(method, url, json="text"), 422)["errors"], where
        # an unknown field, named
        assert "bogus_field" in problem(send(method, url, json={**valid, "bogus_field": 1}), 422)["errors"], where
        # values no database takes: NUL, 65-bit numbers, nesting beyond reason
        nul = problem(send(method, url, json={**valid, "bogus": "a\x00b"}), 422)
        assert "bogus" in nul["errors"] and "NUL" in str(nul["errors"]), where
        assert "bogus" in problem(send(method, url, json={**valid, "bogus": HUGE}), 422)["errors"], where
        deep: object = 1
        for _ in range(40):
            deep = [deep]
        assert "bogus" in problem(send(method, url, json={**valid, "bogus": deep}), 422)["errors"], where
        if typed:
            field, wrong = typed
            errors = problem(send(method, url, json={**valid, field: wrong}), 422)["errors"]
            assert field in errors, (where, errors)
        if text_field:
            errors = problem(send(method, url, json={**valid, text_field: LONG}), 422)["errors"]
            assert text_field in errors, (where, errors)
            errors = problem(send(method, url, json={**valid, text_field: "bad\x00text"}), 422)["errors"]
            assert text_field in errors, (where, errors)
    assert last_audit_id(ctx) == before, "a refused request wrote something"


def test_ten_thousand_character_names_are_refused(ctx, ids, send):
    before = last_audit_id(ctx)
    name = "N" * 10_000
    for method, url, body in [("post", "/parties", {"name": name}),
                              ("post", "/parties", {"kind": "person", "first_name": name}),
                              ("patch", f"/parties/{ids['p']}", {"name": name}),
                              ("post", "/contacts", {"first_name": "A", "last_name": name}),
                              ("post", "/records", {"type": "deal", "title": name}),
                              ("post", "/fields", {"target": "party", "key": "k", "label": name, "type": "text"})]:
        body = problem(send(method, url, json=body), 422)
        assert set(body["errors"]) & {"name", "first_name", "last_name", "title", "label"}, body
    assert last_audit_id(ctx) == before


def test_service_validation_has_the_same_shape(ctx, ids, send):
    """Rules only the service knows (list options, custom fields, members) answer like schema errors."""
    cases = [
        ("post", "/parties", {"name": "X", "prospect_status": "nonsense"}, "prospect_status"),
        ("post", "/parties", {"name": "X", "custom": {"size": "big"}}, "custom"),
        ("post", "/parties", {"name": "X", "sales_rep_ids": [999999]}, "sales_rep_ids"),
        ("post", "/parties", {"kind": "person"}, "first_name"),
        ("post", "/parties", {"name": "X", "mechanisms": [{"kind": "email", "value": "not an email"}]}, "mechanisms"),
        ("post", "/records", {"type": "spaceship", "title": "X"}, "type"),
        ("post", f"/records/{ids['r']}/moves", {"stage_id": 999999}, "stage_id"),
        ("post", f"/records/{ids['r']}/lost", {"lost_reason": "bored"}, "lost_reason"),
        ("post", "/fields", {"target": "party", "key": "x", "label": "X", "type": "hologram"}, "type"),
        ("post", "/notes", {"body": "   ", "party_id": ids["p"]}, "body"),
    ]
    for method, url, body, field in cases:
        answer = problem(send(method, url, json=body), 422)
        assert field in answer["errors"], (url, answer)
        assert answer["code"] == "invalid" and answer["detail"]
    nested = problem(send("post", "/parties", json={"name": "X", "mechanisms": [{"kind": "fax"}]}), 422)
    assert nested["errors"]["mechanisms"]["0"]["value"], nested


def test_query_strings_are_checked_too(send, ids):
    assert "q" in problem(send("get", "/parties?q=%00"), 422)["errors"]
    assert "party_id" in problem(send("get", f"/contacts?party_id={HUGE}"), 422)["errors"]
    assert "cursor" in problem(send("get", f"/notes?party_id={ids['p']}&cursor=W1sxXSwyXQ"), 422)["errors"]
    assert "bogus" in problem(send("get", "/pipelines?bogus=1"), 422)["errors"]


def test_deletes_refuse_malformed_bodies_and_keep_the_row(ctx, ids, send):
    for url, listing in [(f"/mechanisms/{ids['m']}", f"/parties/{ids['p']}/mechanisms"),
                         (f"/addresses/{ids['a']}", f"/parties/{ids['p']}/addresses")]:
        problem(send("delete", url, data="{nope", content_type="application/json"), 400)
        problem(send("delete", url, json={"x": "a\x00"}), 422)
        assert len(send("get", listing).get_json()) == 1
        assert send("delete", url).status_code == 204
        problem(send("delete", url), 404)
